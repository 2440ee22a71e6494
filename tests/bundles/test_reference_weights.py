"""The reference weights mednet ships: present with their records, and they work on data they never saw.

Each disease's two bundles carry ``models/model.pt`` (float16), ``models/reference.json``
(how they were trained) and, for grading, ``models/ood.json``. Through ``mednet predict``'s
own path they find the lesion in synthetic patients of a seed the training never used,
and the glioma localiser finds the real tumour of TCGA-DU-7294 (skipped without
``../shared/realdata``). The thresholds are well below the figures the model cards report,
so a broken loader, a wrong orientation or lost weights fail, not a last-digit change.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from mednet.bundles import BundleSpec, bundle_path, load_state_dict
from mednet.io import read_image
from mednet.pipeline import predict_cohort
from mednet.pipeline.diseases import DISEASES, disease_spec
from mednet.synthetic import generate_cohort

pytestmark = pytest.mark.bundle

#: Lowest lesion Dice accepted per disease on unseen phantoms (model cards, held out: glioma 0.91, CPA 0.90,
#: neuroblastoma 0.74 with the weights of release 0.6.0).
#: Untrained or wrongly loaded weights give about 0.
MIN_LESION_DICE = {"glioma": 0.5, "cpa": 0.4, "neuroblastoma": 0.4}


@pytest.mark.parametrize("name", [n for names in DISEASES.values() for n in names])
def test_every_bundle_ships_float16_weights_with_their_record(name):
    spec = BundleSpec.load(bundle_path(name))
    assert spec.weights.is_file(), f"{name}: no shipped weights"
    state = load_state_dict(spec.weights)
    floats = [t for t in state.values() if torch.is_tensor(t) and t.is_floating_point()]
    assert floats and all(t.dtype == torch.float16 for t in floats)
    record = json.loads((spec.weights.parent / "reference.json").read_text())
    cohorts = record["data"].get("parts", [record["data"]])  # one cohort, or several merged by partition
    assert {c["disease"] for c in cohorts} == {name.split("_mri_")[0]} and record["epochs"] > 0
    assert record["bundle"] == name and record["data"]["synthetic_only"] is True
    assert record["weights_sha256"] == hashlib.sha256(spec.weights.read_bytes()).hexdigest()
    if "classification" in name:
        assert (spec.weights.parent / "ood.json").is_file(), f"{name}: no feature-distance check fitted"


def test_the_shipped_weights_fit_the_budget_of_60_mb_for_all_six_bundles():
    """Issue 15's budget: every bundle's models/model.pt together at most 60 MB (width and precision chosen for it)."""
    sizes = {n: bundle_path(n).joinpath("models", "model.pt").stat().st_size for ns in DISEASES.values() for n in ns}
    assert len(sizes) == 6
    assert sum(sizes.values()) <= 60 * 2**20, {n: round(b / 2**20, 1) for n, b in sizes.items()}


@pytest.mark.parametrize("disease", sorted(DISEASES))
def test_shipped_weights_find_lesions_in_unseen_phantoms(disease, tmp_path):
    cohort = generate_cohort(disease, 2, tmp_path / "data", size="demo", seed=303,
                             balance=dict.fromkeys(disease_spec(disease).classes, 1.0))  # fmt: skip
    result = predict_cohort(cohort.datalist, disease, tmp_path / "out", device="cpu", partition="all",
                            progress=lambda line: None)  # fmt: skip
    assert result["failed"] == 0 and result["ok"] == 2
    metrics = json.loads(result["metrics"].read_text())
    dice = metrics["headline"]["localisation"]["lesion Dice"]["value"]
    assert dice >= MIN_LESION_DICE[disease], f"{disease}: lesion Dice {dice:.2f} on unseen phantoms"
    ids = [case["case_id"] for case in cohort.cases]
    records = [json.loads((tmp_path / "out" / c / f"{c}.json").read_text()) for c in ids]
    assert all(r["lesions"] for r in records), "a phantom's lesion was not found"
    assert all(r["call"] in (*disease_spec(disease).classes, "indeterminate") for r in records)


def test_shipped_glioma_localiser_finds_a_real_tumour(realdata, tmp_path):
    from mednet.pipeline.case import Predictors, predict_case

    folder = realdata / "tcga_lgg_du7294_atlas"
    truth = np.asarray(read_image(folder / "TCGA-DU-7294_seg_fused.nii.gz", "label")[0]) > 0
    names = {"t1": "t1_bet", "t1c": "t1c_bet", "t2": "t2_bet", "flair": "fla_bet"}
    case = {"case_id": "DU7294", **{k: str(folder / f"TCGA-DU-7294_{v}.nii.gz") for k, v in names.items()}}
    record = predict_case(case, Predictors.build(disease_spec("glioma"), "cpu"), tmp_path)
    found = np.asarray(read_image(tmp_path / "DU7294" / "DU7294_labels.nii.gz", "label")[0]) > 0
    dice = 2.0 * np.logical_and(found, truth).sum() / (found.sum() + truth.sum())
    assert dice >= 0.7, f"whole-tumour Dice {dice:.2f} against the consensus label map"  # 0.81 (release 0.4.0)
    assert record["lesions"]


@pytest.mark.parametrize("disease", sorted(DISEASES))
def test_a_reoriented_copy_gets_the_same_map_in_world_space(disease, tmp_path):
    """Each sequence stored with its axes permuted and flipped (same voxels, same world space, another
    voxel order, e.g. LPS against RAS): the shipped weights give the same label map in world space."""
    import nibabel as nib

    cohort = generate_cohort(disease, 1, tmp_path / "data", size="demo", seed=404,
                             balance=dict.fromkeys(disease_spec(disease).classes, 1.0))  # fmt: skip
    entry = next(c for p in ("training", "validation", "testing") for c in json.loads(cohort.datalist.read_text())[p])
    case = {k: (str(tmp_path / "data" / v) if k not in ("case_id", "patient_id", "class", "clinicians") else v)
            for k, v in entry.items() if k != "label"}  # fmt: skip
    ornt = np.array([[1, -1], [0, 1], [2, -1]])  # new x = old y flipped, new y = old x, new z = old z flipped
    copy = {"case_id": "reoriented", "patient_id": "reoriented"}
    for key in disease_spec(disease).sequences:
        if key not in case:
            continue
        image = nib.load(case[key])
        data = nib.orientations.apply_orientation(np.asarray(image.dataobj), ornt)
        affine = image.affine @ nib.orientations.inv_ornt_aff(ornt, image.shape)
        copy[key] = str(tmp_path / f"reoriented_{key}.nii.gz")
        nib.save(nib.Nifti1Image(data, affine), copy[key])
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": [], "validation": [], "testing": [{**case, "case_id": "original"}, copy]}))
    result = predict_cohort(datalist, disease, tmp_path / "out", device="cpu", progress=lambda line: None)
    assert result["failed"] == 0
    maps = {c: nib.as_closest_canonical(nib.load(tmp_path / "out" / c / f"{c}_labels.nii.gz"))
            for c in ("original", "reoriented")}  # fmt: skip
    np.testing.assert_allclose(maps["original"].affine, maps["reoriented"].affine, atol=1e-4)
    a, b = (np.asarray(m.dataobj) for m in maps.values())
    assert a.shape == b.shape and (a > 0).any()
    dice = 2.0 * np.logical_and(a > 0, b > 0).sum() / ((a > 0).sum() + (b > 0).sum())
    assert dice >= 0.99, f"{disease}: Dice {dice:.3f} between the maps of a case and its reoriented copy"
    assert (a == b).mean() >= 0.999  # and the same labels, organ by organ


@pytest.mark.parametrize("disease", ["glioma", pytest.param("neuroblastoma", marks=pytest.mark.slow)])
def test_bfloat16_gives_the_float32_maps_but_for_a_few_boundary_voxels(disease, tmp_path):
    """``--precision bfloat16`` (CPUs with bfloat16 units): the shipped weights' maps stay those of float32."""
    import nibabel as nib

    cohort = generate_cohort(disease, 1, tmp_path / "data", size="demo", seed=404,
                             balance=dict.fromkeys(disease_spec(disease).classes, 1.0))  # fmt: skip
    maps = {}
    for precision in ("auto", "bfloat16"):
        out = tmp_path / precision
        result = predict_cohort(cohort.datalist, disease, out, device="cpu", partition="all", precision=precision,
                                progress=lambda line: None)  # fmt: skip
        assert result["ok"] == 1 and result["precision"] == ("float32" if precision == "auto" else "bfloat16")
        case = cohort.cases[0]["case_id"]
        record = json.loads((out / case / f"{case}.json").read_text())
        assert record["precision"] == result["precision"]
        maps[precision] = np.asarray(nib.load(out / case / record["labels"]).dataobj)
    a, b = maps["auto"], maps["bfloat16"]
    lesions = list(disease_spec(disease).localisation.lesion_values)
    la, lb = np.isin(a, lesions), np.isin(b, lesions)
    assert la.any() and 2.0 * (la & lb).sum() / (la.sum() + lb.sum()) >= 0.99
    assert (a == b).mean() >= 0.999


def test_a_reformatted_copys_zero_corners_are_filled_and_labelled_background(tmp_path):
    """A CPA phantom reformatted onto RAS axes (``resample_to_output``: its oblique field of view's corners
    zero-filled): the corners are found, filled for the network and left background in the map, the record
    counts them; the original has none. Measured over six phantoms per disease with
    ``scripts/benchmark_resampled_copies.py``."""
    import nibabel as nib
    from nibabel.processing import resample_to_output

    cohort = generate_cohort("cpa", 1, tmp_path / "data", size="demo", seed=406,
                             balance=dict.fromkeys(disease_spec("cpa").classes, 1.0))  # fmt: skip
    entry = next(c for p in ("training", "validation", "testing") for c in json.loads(cohort.datalist.read_text())[p])
    case = {k: (str(tmp_path / "data" / v) if k not in ("case_id", "patient_id", "class", "clinicians") else v)
            for k, v in entry.items() if k != "label"}  # fmt: skip
    copy = {"case_id": "reformatted", "patient_id": "reformatted"}
    for key in disease_spec("cpa").sequences:
        if key in case:
            copy[key] = str(tmp_path / f"reformatted_{key}.nii.gz")
            nib.save(resample_to_output(nib.load(case[key]), order=1), copy[key])
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": [], "validation": [], "testing": [{**case, "case_id": "original"}, copy]}))
    result = predict_cohort(datalist, "cpa", tmp_path / "out", device="cpu", progress=lambda line: None)
    assert result["failed"] == 0
    records = {c: json.loads((tmp_path / "out" / c / f"{c}.json").read_text()) for c in ("original", "reformatted")}
    assert records["original"]["outside_field_of_view_voxels"] == 0
    assert "field of view" not in records["original"]["note"]
    reference = nib.load(copy[records["reformatted"]["reference_sequence"]])
    zero = np.asarray(reference.dataobj) == 0
    outside = records["reformatted"]["outside_field_of_view_voxels"]
    assert 0.01 * zero.size < outside and 0.95 * zero.sum() <= outside <= zero.sum()  # the corners: their zeros
    assert "field of view: filled for the network, background in the map" in records["reformatted"]["note"]
    labels = np.asarray(nib.load(tmp_path / "out" / "reformatted" / "reformatted_labels.nii.gz").dataobj)
    assert labels.shape == zero.shape and not labels[zero].any() and labels.any()
    assert records["reformatted"]["lesions"] and records["original"]["lesions"]
