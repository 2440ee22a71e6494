"""The prediction engine: predictors built once from a bundle give what ``monai.bundle run`` gives.

Uses the tiny checkpoints of tests/bundles/conftest.py: the outputs are not meaningful
as diagnoses, only as the same outputs by two paths.
"""

from __future__ import annotations

import json
import pickle
import shutil
import warnings

import nibabel as nib
import numpy as np
import pytest
import torch

from mednet.bundles import BundleSpec, UnsafeCheckpointError, load_state_dict
from mednet.inference import GradingPredictor, LocalisationPredictor, choose_device
from mednet.io import read_image
from mednet.pipeline.case import Predictors, predict_case
from mednet.pipeline.diseases import disease_spec
from tests.bundles.helpers import BUNDLES, CLASSIFICATION, SEGMENTATION, TINY, TINY_GRADING, run_bundle

pytestmark = pytest.mark.bundle

SEG_OVERRIDES = {"roi_size": TINY["roi_size"]}
GRADING_OVERRIDES = {k: TINY_GRADING[k] for k in ("n_slices", "slice_size", "batch_size")}


@pytest.mark.parametrize("bundle", SEGMENTATION)
def test_localisation_predictor_gives_the_bundles_label_map(bundle, tiny_cohorts, tiny_checkpoints, tmp_path):
    datalist = tiny_cohorts[bundle]
    weights = tiny_checkpoints[bundle] / "models" / "model.pt"
    run_bundle(bundle, ["inference"], datalist=str(datalist), ckpt_path=str(weights), output_dir=str(tmp_path),
               **SEG_OVERRIDES)  # fmt: skip
    case = json.loads(datalist.read_text())["testing"][0]
    spec = BundleSpec.load(BUNDLES / bundle)
    predictor = LocalisationPredictor(spec, "cpu", weights, **SEG_OVERRIDES)
    found = predictor({"case_id": case["case_id"], **{k: str(datalist.parent / case[k]) for k in spec.sequences}})
    written = nib.load(tmp_path / case["case_id"] / f"{case['case_id']}_labels.nii.gz")
    np.testing.assert_array_equal(found.array, np.asarray(written.dataobj))  # identical by construction
    np.testing.assert_allclose(found.labels.affine.numpy(), written.affine, atol=1e-5)
    lesions = json.loads((tmp_path / case["case_id"] / f"{case['case_id']}_lesions.json").read_text())["lesions"]
    assert [lesion["voxels"] for lesion in found.lesions] == [lesion["voxels"] for lesion in lesions]
    assert found.sequences_used == list(spec.sequences) and found.reference == spec.sequences[0]
    # the same images already read give the same map: the engine reads each file once
    held = predictor({"case_id": case["case_id"],
                      **{k: read_image(datalist.parent / case[k]) for k in spec.sequences}})  # fmt: skip
    np.testing.assert_array_equal(held.array, found.array)
    # and the whole pipeline (mednet's readers and validation, then the same predictor) writes the same map
    disease = bundle.split("_mri_")[0]
    predictors = Predictors.build(disease_spec(disease), "cpu", {bundle: weights}, {bundle: SEG_OVERRIDES})
    entry = {"case_id": case["case_id"], "patient_id": case["patient_id"],
             **{k: str(datalist.parent / case[k]) for k in predictors.spec.sequences if k in case}}  # fmt: skip
    record = predict_case(entry, predictors, tmp_path / "predict")
    piped = nib.load(tmp_path / "predict" / case["case_id"] / record["labels"])
    np.testing.assert_array_equal(np.asarray(piped.dataobj), np.asarray(written.dataobj))
    np.testing.assert_array_equal(piped.affine, written.affine)


def test_localisation_without_the_first_sequence_is_on_the_next_ones_grid(tiny_cohorts, tiny_checkpoints):
    bundle = "glioma_mri_segmentation"
    datalist = tiny_cohorts[bundle]
    case = json.loads(datalist.read_text())["testing"][0]
    spec = BundleSpec.load(BUNDLES / bundle)
    predictor = LocalisationPredictor(spec, "cpu", tiny_checkpoints[bundle] / "models" / "model.pt", **SEG_OVERRIDES)
    found = predictor({"case_id": "x", "t1c": str(datalist.parent / case["t1c"]),
                       "flair": str(datalist.parent / case["flair"])})  # fmt: skip
    assert found.sequences_used == ["t1c", "flair"] and found.reference == "t1c"
    reference = nib.load(datalist.parent / case["t1c"])
    assert found.array.shape == reference.shape
    np.testing.assert_allclose(found.labels.affine.numpy(), reference.affine, atol=1e-5)


@pytest.mark.parametrize("bundle", sorted(CLASSIFICATION))
def test_grading_predictor_gives_the_bundles_grading(bundle, grading_cohorts, grading_checkpoints, tmp_path):
    datalist = grading_cohorts[bundle]
    weights = grading_checkpoints[bundle] / "models" / "model.pt"
    run_bundle(bundle, ["inference"], datalist=str(datalist), ckpt_path=str(weights), output_dir=str(tmp_path),
               overwrite=True, **GRADING_OVERRIDES)  # fmt: skip
    written = {c["case_id"]: c for c in json.loads((tmp_path / "grading.json").read_text())["cases"]}
    spec = BundleSpec.load(BUNDLES / bundle)
    predictor = GradingPredictor(spec, "cpu", weights, **GRADING_OVERRIDES)
    for case in json.loads(datalist.read_text())["testing"]:
        images = {s: read_image(datalist.parent / case[s]) for s in spec.sequences}
        labels = read_image(datalist.parent / case["label"], "label")
        graded = predictor(images, labels, case["case_id"], case.get("clinicians"))
        expected = written[case["case_id"]]
        assert graded.fused_class == expected["fused_class"] and graded.slices == expected["slices"]
        for name, probabilities in expected["branches"].items():
            assert graded.sequences[name] == pytest.approx(probabilities, abs=1e-5)
        assert graded.fused == pytest.approx(expected["fused"], abs=1e-5)
        # a sequence missing: the others are graded and fused
        first = spec.sequences[0]
        fewer = predictor({s: images[s] for s in spec.sequences if s != first}, labels, case["case_id"])
        assert set(fewer.sequences) == set(spec.sequences) - {first}
        assert fewer.fused_class in spec.classes


def test_checkpoints_load_weights_only(tmp_path):
    state = {"weight": torch.ones(2)}
    torch.save(state, tmp_path / "plain.pt")
    torch.save({"model": state}, tmp_path / "monai.pt")
    assert torch.equal(load_state_dict(tmp_path / "plain.pt")["weight"], state["weight"])
    assert torch.equal(load_state_dict(tmp_path / "monai.pt")["weight"], state["weight"])

    class Payload:
        def __reduce__(self):
            return (print, ("this would run on load",))

    with (tmp_path / "pickled.pt").open("wb") as stream:
        pickle.dump({"weight": Payload()}, stream)
    with pytest.raises(UnsafeCheckpointError, match=r"pickled.pt: refused: not a plain state dict"):
        load_state_dict(tmp_path / "pickled.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint here"):
        load_state_dict(tmp_path / "absent.pt")


def test_device_is_chosen_once_and_checked_before_work():
    assert choose_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert choose_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="expected one of auto, cpu, cuda"):
        choose_device("gpu")
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda:N with N a GPU number"):
            choose_device("cuda:x")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="PyTorch finds no CUDA GPU"):
            choose_device("cuda")


def test_bundle_spec_reads_each_bundle_once():
    glioma = BundleSpec.load(BUNDLES / "glioma_mri_segmentation")
    assert glioma.task == "segmentation" and glioma.sequences == ("t1", "t1c", "t2", "flair")
    assert glioma.label_table == ({"value": 1, "name": "tumour", "colour": "#ff7f0e"},)
    assert glioma.lesion_values == (1,) and glioma.version
    nb = BundleSpec.load(BUNDLES / "neuroblastoma_mri_classification")
    assert nb.task == "classification" and nb.classes == ("L1", "L2", "M")
    assert nb.lesion_values == (12,) and nb.metastasis_values == (13,) and nb.roi_key == "label"
    with pytest.raises(FileNotFoundError, match="not a bundle"):
        BundleSpec.load(BUNDLES / "no_such_bundle")


def test_a_bundle_without_a_lesion_floor_bound_has_none(tmp_path):
    assert BundleSpec.load(BUNDLES / "cpa_mri_segmentation").max_lesion_floor_mm3 == 50.0
    copy = tmp_path / "cpa_mri_segmentation"
    shutil.copytree(BUNDLES / "cpa_mri_segmentation", copy, ignore=shutil.ignore_patterns("models"))
    evaluate = json.loads((copy / "configs" / "evaluate.json").read_text())
    del evaluate["max_lesion_floor_mm3"]
    (copy / "configs" / "evaluate.json").write_text(json.dumps(evaluate))
    spec = BundleSpec.load(copy)
    assert spec.max_lesion_floor_mm3 == float("inf") and spec.min_reference_mm3 == 50.0
    for value, expected in ((None, float("inf")), (-5.0, None), (0, None)):
        (copy / "configs" / "evaluate.json").write_text(json.dumps({**evaluate, "max_lesion_floor_mm3": value}))
        if expected is None:
            with pytest.raises(ValueError, match=r"max_lesion_floor_mm3: expected a positive volume in mm\^3, found"):
                BundleSpec.load(copy)
        else:
            assert BundleSpec.load(copy).max_lesion_floor_mm3 == expected


def test_an_ood_fit_for_other_weights_is_not_applied(grading_checkpoints, tmp_path):
    from mednet.checksum import file_sha256
    from mednet.grading import FeatureOOD

    weights = tmp_path / "model.pt"
    shutil.copy(grading_checkpoints["cpa_mri_classification"] / "models" / "model.pt", weights)
    spec = BundleSpec.load(BUNDLES / "cpa_mri_classification")
    rng = np.random.default_rng(0)
    fit = {s: rng.normal(0, 1, (20, 4)) for s in spec.sequences}
    FeatureOOD.fit(fit, weights_sha256="0" * 64).save(tmp_path / "ood.json")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictor = GradingPredictor(spec, "cpu", weights, **GRADING_OVERRIDES)
    assert any("was fitted for other weights: not applied" in str(w.message) for w in caught)
    assert predictor.ood is None and "not applied" in predictor.ood_check
    FeatureOOD.fit(fit, weights_sha256=file_sha256(weights)).save(tmp_path / "ood.json")
    predictor = GradingPredictor(spec, "cpu", weights, **GRADING_OVERRIDES)
    assert predictor.ood is not None and predictor.ood_check.startswith("feature-distance check fitted on 20")


def test_corrupt_checkpoints_and_weights_of_another_network_are_named(tmp_path, tiny_checkpoints):
    good = tiny_checkpoints["cpa_mri_segmentation"] / "models" / "model.pt"
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"cut.pt: not a readable PyTorch checkpoint"):
        load_state_dict(cut)
    spec = BundleSpec.load(BUNDLES / "glioma_mri_segmentation")  # four input channels, not CPA's two
    with pytest.raises(ValueError, match=r"model.pt: not weights of bundle glioma_mri_segmentation's network"):
        LocalisationPredictor(spec, "cpu", good)


def test_a_bundle_run_applies_the_feature_distance_check_as_predict_does(grading_cohorts, grading_checkpoints, tmp_path):
    """``ood.json`` beside the weights: ``monai.bundle run`` calls the cases unlike the training cases
    indeterminate, with the predictor's ratios; a fit for other weights or none: it says that no check applied."""
    from mednet.checksum import file_sha256
    from mednet.grading import FeatureOOD

    bundle = "glioma_mri_classification"
    datalist = grading_cohorts[bundle]
    weights = tmp_path / "models" / "model.pt"
    weights.parent.mkdir()
    shutil.copy(grading_checkpoints[bundle] / "models" / "model.pt", weights)
    spec = BundleSpec.load(BUNDLES / bundle)
    cases = json.loads(datalist.read_text())["testing"]
    inputs = {c["case_id"]: ({s: read_image(datalist.parent / c[s]) for s in spec.sequences},
                             read_image(datalist.parent / c["label"], "label")) for c in cases}  # fmt: skip
    dims = {s: len(f) for s, f in GradingPredictor(spec, "cpu", weights, **GRADING_OVERRIDES)
            .features(*inputs[cases[0]["case_id"]]).items()}  # fmt: skip
    rng = np.random.default_rng(0)  # "training cases" far from anything these weights make of a phantom
    far = {s: 100.0 + rng.normal(0, 0.1, (20, d)) for s, d in dims.items()}
    FeatureOOD.fit(far, weights_sha256=file_sha256(weights)).save(weights.parent / "ood.json")
    predictor = GradingPredictor(spec, "cpu", weights, **GRADING_OVERRIDES)
    run_bundle(bundle, ["inference"], datalist=str(datalist), ckpt_path=str(weights), output_dir=str(tmp_path / "a"),
               **GRADING_OVERRIDES)  # fmt: skip
    doc = json.loads((tmp_path / "a" / "grading.json").read_text())
    assert doc["ood_check"] == predictor.ood_check == "feature-distance check fitted on 20 training cases"
    for written in doc["cases"]:
        graded = predictor(*inputs[written["case_id"]], written["case_id"])
        assert written["fusion"]["call"] == graded.call == "indeterminate"
        assert set(written["fusion"]["ood"]) == set(spec.sequences)
        assert written["fusion"]["ood"] == pytest.approx(graded.fusion["ood"], rel=1e-3)
        assert min(written["fusion"]["ood"].values()) > 1
    FeatureOOD.fit(far, weights_sha256="0" * 64).save(weights.parent / "ood.json")  # a fit for other weights
    run_bundle(bundle, ["inference"], datalist=str(datalist), ckpt_path=str(weights), output_dir=str(tmp_path / "b"),
               **GRADING_OVERRIDES)  # fmt: skip
    doc = json.loads((tmp_path / "b" / "grading.json").read_text())
    assert doc["ood_check"].endswith("ood.json was fitted for other weights: not applied")
    assert all(c["fusion"]["ood"] == {} for c in doc["cases"])
    (weights.parent / "ood.json").unlink()
    run_bundle(bundle, ["inference"], datalist=str(datalist), ckpt_path=str(weights), output_dir=str(tmp_path / "c"),
               **GRADING_OVERRIDES)  # fmt: skip
    doc = json.loads((tmp_path / "c" / "grading.json").read_text())
    assert doc["ood_check"].startswith("no feature-distance check (no ood.json")
    assert all(c["fusion"]["ood"] == {} for c in doc["cases"])


def test_precision_is_chosen_once_and_checked_before_work(tmp_path):
    from mednet.inference import choose_precision
    from mednet.pipeline import predict_cohort

    cpu = torch.device("cpu")
    assert choose_precision(cpu, "auto") == choose_precision(cpu, None) == "float32"  # the plain path's maps
    assert choose_precision(torch.device("cuda"), "auto") == "float16"
    assert choose_precision(cpu, "BFloat16") == "bfloat16"
    with pytest.raises(ValueError, match="float16 needs a GPU"):
        choose_precision(cpu, "float16")
    with pytest.raises(ValueError, match="expected one of auto, float32, bfloat16, float16, found 'fp8'"):
        choose_precision(cpu, "fp8")
    with pytest.raises(ValueError, match="float16 needs a GPU"):  # before the cohort is read or OUT made
        predict_cohort(tmp_path / "absent", "glioma", tmp_path / "out", device="cpu", precision="float16")
    assert not (tmp_path / "out").exists()


def test_weights_of_another_width_are_named_with_the_channels_to_give(tmp_path):
    """A 16..256 checkpoint given to a bundle whose network is wider: the error says so and names the channels."""
    from monai.networks.nets import UNet

    spec = BundleSpec.load(BUNDLES / "cpa_mri_segmentation")
    narrow = spec.parser(**{"network_def#channels": [4, 8, 16, 32, 64]}).get_parsed_content("network_def")
    torch.save(narrow.state_dict(), tmp_path / "narrow.pt")
    wide = {"network_def#channels": [6, 12, 24, 48, 96]}
    with pytest.raises(ValueError, match=r"first layer has 4 filters where this network has 6: weights of another "
                       r"width; give the channels they were trained with, e.g. --network_def#channels \"\[4,8,16,32,64\]\""):
        LocalisationPredictor(spec, "cpu", tmp_path / "narrow.pt", **wide)
    assert isinstance(narrow, UNet)
    LocalisationPredictor(spec, "cpu", tmp_path / "narrow.pt", **{"network_def#channels": [4, 8, 16, 32, 64]})
