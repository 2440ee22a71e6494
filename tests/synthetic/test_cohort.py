"""Synthetic cohorts: files, geometry, determinism, labels, classes, MRI contrast rules."""

from __future__ import annotations

import csv
import hashlib
import json

import nibabel as nib
import numpy as np
import pytest

from mednet.io import load_datalist, read_image
from mednet.synthetic import DISEASES, SIZES, generate_cohort
from mednet.synthetic.preview import write_preview
from mednet.synthetic.shapes import Cut, Ellipsoid, Tube

EXPECTED = {
    "glioma": (["t1", "t1c", "t2", "flair"], {"HGG", "LGG"}, {1, 2, 3}),
    "cpa": (["t1c", "t2"], {"AN", "MG"}, {1}),
    "neuroblastoma": (["t2w", "t1c"], {"L1", "L2", "M"}, {12, 13}),
}


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def cohort(request, tmp_path_factory):
    disease = request.param
    classes = EXPECTED[disease][1]
    out = tmp_path_factory.mktemp(disease)
    return disease, generate_cohort(disease, 2 * len(classes), out, seed=3, balance={c: 1 for c in classes})


def manifest_rows(cohort):
    with open(cohort.manifest, newline="") as stream:
        return list(csv.DictReader(stream))


def test_files_manifest_label_table_and_datalist(cohort):
    disease, result = cohort
    sequences, classes, lesions = EXPECTED[disease]
    rows = manifest_rows(result)
    extra = ["radiology", "radiotherapy"] if disease == "cpa" else []
    assert list(rows[0]) == ["case_id", "patient_id", *sequences, "label", "class", *extra]
    assert {r["class"] for r in rows} == classes  # every class present
    table = json.loads(result.labels.read_text())
    assert table[0] == {"value": 0, "name": "background", "colour": "#000000"}
    assert lesions <= {e["value"] for e in table}
    datalist = load_datalist(result.datalist)
    assert sum(len(datalist[p]) for p in ("training", "validation", "testing")) == len(rows)
    for row in rows:
        for key in [*sequences, "label"]:
            assert (result.root / row[key]).is_file()
        if disease == "cpa":
            assert {row["radiology"], row["radiotherapy"]} <= classes


def test_geometry_and_label_consistency(cohort):
    disease, result = cohort
    sequences, _, lesions = EXPECTED[disease]
    values = {e["value"] for e in json.loads(result.labels.read_text())}
    for row in manifest_rows(result):
        label = read_image(result.root / row["label"], "label")
        grid = nib.load(result.root / row[sequences[0]])
        assert "".join(nib.aff2axcodes(grid.affine)) in {"RAS", "LPS", "LAS"}
        assert not np.allclose(grid.affine, np.diag(np.diag(grid.affine)))  # oblique, non-identity
        for key in sequences:  # one grid per case by default
            image = nib.load(result.root / row[key])
            assert image.shape == label.shape[1:] and np.allclose(image.affine, label.affine.numpy())
            assert image.get_data_dtype() == np.int16
        present = set(np.unique(label.numpy()).astype(int))
        assert present <= values
        assert present & lesions, f"{row['case_id']}: no lesion in the label map"


def test_mri_contrast_follows_the_physics(cohort):
    disease, result = cohort
    rows = manifest_rows(result)
    load = lambda row, key: nib.load(result.root / row[key]).get_fdata()  # noqa: E731
    for row in rows:
        seg = load(row, "label").astype(int)
        if disease == "glioma" and row["class"] == "HGG":
            t1c, flair = load(row, "t1c"), load(row, "flair")
            assert t1c[seg == 3].mean() > 1.2 * t1c[seg == 1].mean()  # enhancing rim vs necrotic core
            assert flair[seg == 2].mean() > 1.2 * flair[(seg == 0) & (flair > 0.2 * flair.max())].mean()
        if disease == "neuroblastoma":
            t2w, t1c = load(row, "t2w"), load(row, "t1c")
            aorta, liver = seg == 7, seg == 1
            if aorta.sum() > 5 and liver.sum() > 5:
                assert t2w[aorta].mean() < t2w[liver].mean()  # flow void
                assert t1c[aorta].mean() > t1c[liver].mean()  # contrast in the blood pool
        if disease == "cpa":
            t1c = load(row, "t1c")
            assert t1c[seg == 1].mean() > np.median(t1c[t1c > 0.1 * t1c.max()])  # enhancing tumour


@pytest.mark.parametrize("disease", sorted(EXPECTED))
def test_demo_size_has_thick_slices(disease):
    model = DISEASES[disease]
    in_plane = model.FOV_MM[0] / SIZES["demo"]
    assert model.SLICE_MM["demo"][0] > 1.2 * in_plane


def test_same_seed_identical_files_other_seed_different(tmp_path):
    def digest(folder):
        return {
            p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }

    first = generate_cohort("cpa", 2, tmp_path / "a", seed=11)
    again = generate_cohort("cpa", 2, tmp_path / "b", seed=11)
    other = generate_cohort("cpa", 2, tmp_path / "c", seed=12)
    assert digest(first.root) == digest(again.root)
    assert digest(first.root)["CPA_0000/CPA_0000_t2.nii.gz"] != digest(other.root)["CPA_0000/CPA_0000_t2.nii.gz"]
    # case i does not depend on the cohort size
    bigger = generate_cohort("cpa", 3, tmp_path / "d", seed=11, balance={"AN": 1, "MG": 0})
    assert (
        digest(bigger.root)["CPA_0000/CPA_0000_t1c.nii.gz"]
        == digest(generate_cohort("cpa", 1, tmp_path / "e", seed=11, balance={"AN": 1, "MG": 0}).root)[
            "CPA_0000/CPA_0000_t1c.nii.gz"
        ]
    )


def test_mixed_grids_and_optional_dwi(tmp_path):
    result = generate_cohort("neuroblastoma", 1, tmp_path, seed=1, mixed_grids=True, optional=("dwi",))
    row = manifest_rows(result)[0]
    grids = {k: nib.load(result.root / row[k]) for k in ("t2w", "t1c", "dwi")}
    assert not np.allclose(grids["t1c"].affine, grids["t2w"].affine)
    assert nib.load(result.root / row["label"]).shape == grids["t2w"].shape  # labels on the reference grid
    record = json.loads((result.root / "cases.json").read_text())[0]
    assert set(record["grids"]) == {"t2w", "t1c", "dwi"}


def test_optional_native_t1_for_neuroblastoma(tmp_path):
    """A native T1 abdomen (what many real examinations have): fat bright, liver above spleen and kidneys."""
    result = generate_cohort("neuroblastoma", 1, tmp_path, size="small", seed=3, optional=("t1",))
    row = manifest_rows(result)[0]
    seg = np.asarray(nib.load(result.root / row["label"]).dataobj)
    t1, t2 = (np.asarray(nib.load(result.root / row[k]).dataobj) for k in ("t1", "t2w"))
    assert t1.shape == seg.shape
    median = {name: float(np.median(t1[seg == value])) for name, value in [("liver", 1), ("spleen", 2), ("kidney", 3)]}
    assert median["liver"] > 1.2 * max(median["spleen"], median["kidney"])  # native T1: liver brighter
    assert float(np.median(t2[seg == 1])) < float(np.median(t2[seg == 2]))  # T2: the order inverted


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="glioma"):
        generate_cohort("gliomma", 1, tmp_path)
    with pytest.raises(ValueError, match=r"optional sequences for cpa: expected some of none, found dwi"):
        generate_cohort("cpa", 1, tmp_path, optional=("dwi",))
    with pytest.raises(ValueError, match=r"balance for glioma: expected weights for HGG, LGG"):
        generate_cohort("glioma", 1, tmp_path, balance={"GBM": 1})


def test_preview_png(tmp_path):
    result = generate_cohort("glioma", 2, tmp_path / "g", seed=0)
    png = write_preview(result.root, tmp_path / "preview.png", n_cases=2)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_shapes():
    points = np.array([[0.0, 0, 0], [9.0, 0, 0], [11.0, 0, 0], [0, 0, 4.9]])
    ball = Ellipsoid([0, 0, 0], [10, 10, 5])
    assert ball.contains(points).tolist() == [True, True, False, True]
    assert Cut(ball, [0, 0, 0], [1, 0, 0]).contains(np.array([[5.0, 0, 0], [-5.0, 0, 0]])).tolist() == [True, False]
    tube = Tube([[0, 0, 0], [0, 0, 10]], 2.0)
    assert tube.contains(np.array([[1.0, 1, 5], [0, 0, 11.5], [3, 0, 5]])).tolist() == [True, True, False]
    rough = Ellipsoid([0, 0, 0], [10, 10, 10], wobble=0.2, seed=4)
    inside = rough.contains(np.random.default_rng(0).uniform(-12, 12, (20000, 3)))
    assert 0.15 < inside.mean() < 0.45  # about a sphere's share of the cube, with an irregular margin


def test_parallel_workers_write_the_same_files(tmp_path):
    serial = generate_cohort("glioma", 3, tmp_path / "serial", seed=2)
    parallel = generate_cohort("glioma", 3, tmp_path / "parallel", seed=2, workers=2)
    for path in sorted(serial.root.rglob("*.nii.gz")):
        assert path.read_bytes() == (parallel.root / path.relative_to(serial.root)).read_bytes()
    assert serial.manifest.read_bytes() == parallel.manifest.read_bytes()


@pytest.mark.slow
def test_full_size_glioma_is_brats_like(tmp_path):
    result = generate_cohort("glioma", 1, tmp_path, size="full", seed=0)
    image = nib.load(result.root / manifest_rows(result)[0]["t1"])
    assert image.shape == (240, 240, 155)
    np.testing.assert_allclose(image.header.get_zooms(), (0.9167, 0.9167, 1.03), atol=1e-3)
