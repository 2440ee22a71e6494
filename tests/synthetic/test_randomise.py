"""Domain-randomised cohorts: every case draws its look, lesions of many kinds, honest and reproducible."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from mednet.synthetic import generate_cohort
from mednet.synthetic.phantom import PLANE_AXES, acquisition_grid
from mednet.synthetic.randomise import PRESETS, Randomisation, ghosting
from mednet.synthetic.shapes import Ellipsoid, Within


@pytest.fixture(scope="module")
def glioma(tmp_path_factory):
    """Nine randomised small glioma cases, HGG, LGG and metastases."""
    out = tmp_path_factory.mktemp("dr_glioma")
    return generate_cohort("glioma", 9, out, seed=4, randomise="full", balance={"HGG": 1, "LGG": 1, "MET": 1})


def rows_and_records(cohort):
    with open(cohort.manifest, newline="") as stream:
        rows = list(csv.DictReader(stream))
    records = {r["case_id"]: r for r in json.loads((cohort.root / "cases.json").read_text())}
    return [(row, records[row["case_id"]]) for row in rows]


def test_cases_draw_their_look_and_their_lesion(glioma):
    pairs = rows_and_records(glioma)
    styles = [record["style"] for _, record in pairs]
    assert {s["contrast"] for s in styles} == {"random", "physics"}
    assert len({s["noise"] for s in styles}) > len(styles) // 2
    assert {record["class"] for _, record in pairs} == {"HGG", "LGG", "MET"}
    assert {record["kind"] for _, record in pairs if record["class"] == "MET"} == {"metastases"}
    spacings = [tuple(g["spacing_mm"]) for _, record in pairs for g in record["grids"].values()]
    assert len(set(spacings)) > 6 and max(max(s) for s in spacings) > 3.0
    made = json.loads((glioma.root / "cohort.json").read_text())
    assert made["randomise"] == "full" and made["seed"] == 4 and made["generator"] == "mednet.synthetic"
    for row, _ in pairs:  # every case keeps a lesion in its label map, on the first sequence's grid
        label = nib.load(glioma.root / row["label"])
        assert np.isin(np.asarray(label.dataobj), [1, 2, 3]).any(), row["case_id"]
        assert label.shape == nib.load(glioma.root / row["t1"]).shape


def test_skull_stripped_and_brats_look(glioma):
    stripped = brats = 0
    for row, record in rows_and_records(glioma):
        style = record["style"]
        if not style["strip"]:
            continue
        stripped += 1
        image = nib.load(glioma.root / row["t1"])
        data = np.asarray(image.dataobj)
        assert (data[0] == 0).all() and (data[-1] == 0).all()  # zero outside the brain, noise included
        if style["brats"]:
            brats += 1
            assert "".join(nib.aff2axcodes(image.affine)) == "LPS"
            zooms = image.header.get_zooms()
            assert np.allclose(zooms, zooms[0]) and np.allclose(image.affine[:3, :3], np.diag(np.diag(image.affine[:3, :3])))
            assert all(record["grids"][s]["shape"] == record["grids"]["t1"]["shape"] for s in record["grids"])
            if style["zscore"]:
                assert image.get_data_dtype() == np.float32
                inside = data[data != 0]
                assert abs(inside.mean()) < 0.1 and abs(inside.std() - 1) < 0.1
    assert stripped >= 2, "the fixture's seed should give skull-stripped cases"


def test_brats_zscored_case(tmp_path, monkeypatch):
    monkeypatch.setitem(PRESETS, "brats", Randomisation("brats", brats=1.0, zscore=1.0))
    cohort = generate_cohort("glioma", 1, tmp_path, seed=0, randomise="brats")
    assert cohort.cases[0]["style"]["zscore"] and cohort.cases[0]["style"]["brats"]
    row = rows_and_records(cohort)[0][0]
    image = nib.load(cohort.root / row["flair"])
    data = np.asarray(image.dataobj)
    assert image.get_data_dtype() == np.float32 and (data < 0).any()
    assert abs(data[data != 0].mean()) < 0.05 and abs(data[data != 0].std() - 1) < 0.05
    assert (data[:, :, 0] == 0).all()  # background exactly zero
    assert image.shape == (48, 48, 31)  # the atlas's 240 x 240 x 155 mm at 5 mm for the small size


def test_same_seed_same_files(tmp_path):
    first = generate_cohort("neuroblastoma", 2, tmp_path / "a", seed=7, randomise="full")
    again = generate_cohort("neuroblastoma", 2, tmp_path / "b", seed=7, randomise="full", workers=2)
    for path in sorted(first.root.rglob("*.nii.gz")):
        assert path.read_bytes() == (again.root / path.relative_to(first.root)).read_bytes()
    plain = generate_cohort("neuroblastoma", 2, tmp_path / "c", seed=7)
    assert (plain.root / "NB_0000" / "NB_0000_t2w.nii.gz").read_bytes() != (
        first.root / "NB_0000" / "NB_0000_t2w.nii.gz"
    ).read_bytes()


def test_plausible_preset_keeps_physics_contrast(tmp_path):
    cohort = generate_cohort("cpa", 4, tmp_path, seed=2, randomise="plausible")
    assert {record["style"]["contrast"] for record in cohort.cases} == {"physics"}
    assert PRESETS["plausible"].random_contrast == 0.0


def test_acquisition_planes_put_the_slice_axis_where_they_say():
    rng = np.random.default_rng(0)
    for plane, axes in PLANE_AXES.items():
        grid = acquisition_grid(rng, np.zeros(3), (200.0, 180.0, 160.0), 64, 6.0, "RAS", tilt_deg=0.0, plane=plane)
        slice_axis = int(np.argmax(grid.spacing))
        direction = grid.affine[:3, slice_axis] / np.linalg.norm(grid.affine[:3, slice_axis])
        assert int(np.argmax(np.abs(direction))) == axes[2], plane
        assert grid.shape[2] == round((200.0, 180.0, 160.0)[axes[2]] / 6.0)


def test_ghosting_copies_the_object_a_fraction_of_the_field_of_view_away():
    image = np.zeros((128, 8, 4), np.float32)
    image[60:64] = 100.0
    ghosted = ghosting(image, axis=0, n=4, strength=0.5)
    assert ghosted.shape == image.shape and ghosted.dtype == np.float32
    assert ghosted[60 + 32 : 64 + 32].mean() > 8.0  # a ghost 128 / 4 voxels away
    assert ghosted[20:28].mean() < 3.0  # not everywhere
    assert ghosted[60:64].mean() > 80.0
    np.testing.assert_allclose(ghosting(image, axis=0, n=4, strength=0.0), image, atol=1e-3)


def test_within_keeps_a_shape_inside_its_container():
    ball = Ellipsoid([8.0, 0, 0], [6, 6, 6])
    brain = Ellipsoid([0.0, 0, 0], [10, 10, 10])
    points = np.array([[8.0, 0, 0], [13.0, 0, 0], [0.0, 0, 0]])
    assert Within(ball, brain).contains(points).tolist() == [True, False, False]


def test_unknown_preset_and_class(tmp_path):
    with pytest.raises(ValueError, match="full"):
        generate_cohort("cpa", 1, tmp_path, randomise="ful")
    with pytest.raises(ValueError, match=r"expected weights for AN, MG, found \{'MET': 1\}"):
        generate_cohort("cpa", 1, tmp_path, balance={"MET": 1})


def _tissue_map(phantom, spacing=2.0):
    """Tissue names and the tissue index painted on a ``spacing`` mm grid around the head; the brain mask."""
    from mednet.io.grid import Grid

    shape = tuple(int(n / spacing) for n in (200, 220, 170))
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = [-100.0, -110.0, -85.0]
    grid = Grid(shape, affine)
    names = phantom.tissues()
    tissue = phantom.paint_grid(grid, np.zeros(3), names)
    points = np.stack(np.meshgrid(*[np.arange(n) * spacing for n in shape], indexing="ij"), -1).reshape(-1, 3)
    brain = phantom.foreground.contains(points + affine[:3, 3]).reshape(shape)
    return names, tissue, brain


def test_randomised_brains_hold_the_csf_spaces_of_real_brains_of_varied_size():
    """Ventricles with horns, third ventricle, cisterns, fissures and sulci: CSF inside the brain mask, unlabelled."""
    from mednet.synthetic import glioma

    fractions, ventricles, flair = [], [], []
    for seed in range(4):
        phantom, _ = glioma.build(np.random.default_rng(seed), "LGG", varied=PRESETS["moderate"])
        flair.append(phantom.signal(phantom.tissues(), "flair")[phantom.tissues().index("csf")])
        names, tissue, brain = _tissue_map(phantom)
        csf = np.isin(tissue, [i for i, n in enumerate(names) if n.split(":")[0] == "csf"])
        fractions.append((csf & brain).sum() / brain.sum())
        centre = ((np.asarray(tissue.shape) - 1) / 2).astype(int)  # around the head's centre: the ventricles
        ventricles.append(csf[centre[0] - 15 : centre[0] + 15, centre[1] - 25 : centre[1] + 25,
                              centre[2] : centre[2] + 20].sum())  # fmt: skip
        lut = np.array([phantom.labels.get(n, 0) for n in names])
        assert not lut[tissue][csf].any()  # CSF is never tumour
        assert "csf:flow" in names  # cisterns, fourth and third ventricles
        surface = Ellipsoid(phantom.foreground.centre, phantom.foreground.radii - 1.5, phantom.foreground.rot)  # the brain
        on_surface = [shape for t, shape in phantom.layers if t == "csf" and isinstance(shape, Ellipsoid)
                      and abs(np.linalg.norm((shape.centre - surface.centre) @ surface.rot / surface.radii) - 1) < 1e-6]
        sulci = [shape for shape in on_surface if shape.radii[0] < 2.0 and shape.radii[1] > 4 * shape.radii[0]]
        assert 15 <= len(sulci) == len(on_surface) <= 45  # thin sheets
        for sulcus in sulci:  # from the brain's surface inwards
            depth = sulcus.rot[:, 2] * sulcus.radii[2]
            assert surface.inside((sulcus.centre - 0.8 * depth)[None])[0]
            assert not surface.inside((sulcus.centre + 0.8 * depth)[None])[0]
    assert min(fractions) > 0.04 and max(fractions) < 0.3, fractions
    assert max(ventricles) > 2 * min(ventricles), ventricles  # young brains and atrophic ones
    assert max(flair) > 2 * min(flair), flair  # FLAIR's suppression of CSF: scanners differ


def test_grading_cohorts_and_plain_phantoms_keep_their_two_ventricles():
    """``plausible`` (grading weights) and plain phantoms draw what they drew before: the released weights reproduce."""
    from mednet.synthetic import glioma

    plain, _ = glioma.build(np.random.default_rng(3), "HGG", varied=True)
    plausible, _ = glioma.build(np.random.default_rng(3), "HGG", varied=PRESETS["plausible"])
    moderate, _ = glioma.build(np.random.default_rng(3), "HGG", varied=PRESETS["moderate"])
    for phantom in (plain, plausible):
        assert [t for t, _ in phantom.layers].count("csf") == 4  # outer CSF, fissure, two ventricles
        assert "csf:flow" not in phantom.tissues()
    assert [t for t, _ in plain.layers] == [t for t, _ in plausible.layers]
    assert all(np.array_equal(a.centre, b.centre) for (_, a), (_, b) in zip(plain.layers, plausible.layers, strict=True)
               if isinstance(a, Ellipsoid))  # fmt: skip
    assert [t for t, _ in moderate.layers].count("csf") > 20


def test_no_phantom_look_has_zeros_taken_for_beyond_its_field_of_view(glioma):
    """Skull-stripped and BraTS-look phantoms are zero outside the brain: kept as zeros by the segmentation
    bundles' FieldOfViewFilld (their maps are those of the network alone); the others have no zero region."""
    from mednet.io import load_case
    from mednet.io.field_of_view import outside_field_of_view

    looks = set()
    for row, record in rows_and_records(glioma):
        case = {k: str(glioma.root / row[k]) for k in ("t1", "t1c", "t2", "flair")}
        loaded = load_case({"case_id": row["case_id"], **case}, ["t1", "t1c", "t2", "flair"])
        stacked = loaded.stacked(["t1", "t1c", "t2", "flair"])
        assert outside_field_of_view(stacked.numpy(), loaded.grid.spacing) is None, record["style"]
        looks.add((record["style"]["strip"], record["style"]["brats"]))
    assert {(True, True), (False, False)} <= looks  # BraTS-look and plain phantoms both checked
