"""The three classification bundles: every config runs through MONAI's bundle machinery.

Tiny settings (one epoch, four 16 x 16 slices per case, ``small`` synthetic cases with
every class in every partition): these tests check wiring, files and the leakage guard,
not accuracy (``scripts/benchmark_grading.py`` measures that).
"""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch

from mednet.errors import PatientLeakageError
from mednet.fusion import dl_mdt, reading_votes
from mednet.grading import lesion_slices
from tests.bundles.helpers import BUNDLES, CLASSIFICATION, TINY_GRADING, config, run_bundle, torchrun_train

pytestmark = pytest.mark.bundle

SHARED_KEYS = ("sequences", "lesion_values", "classes", "num_logits", "network_name", "network_kwargs", "in_channels",
               "n_slices", "slice_size", "margin_fraction", "min_area_fraction", "input_keys")  # fmt: skip


@pytest.mark.parametrize("bundle", CLASSIFICATION)
def test_configs_agree(bundle):
    """What training and inference must share is the same in both configs and in the metadata."""
    train, infer = config(bundle, "train"), config(bundle, "inference")
    for key in SHARED_KEYS:
        assert train[key] == infer[key], key
    # the same network; only training loads pretrained weights (inference loads the checkpoint)
    assert train["network_def"].replace("pretrained=@pretrained, ", "") == infer["network_def"]
    meta = json.loads((BUNDLES / bundle / "configs" / "metadata.json").read_text())
    # metadata describes export_network_def: the sequences stacked as channels, in the config's order
    image = meta["network_data_format"]["inputs"]["image"]
    assert [s.lower() for s in image["channel_def"].values()] == train["sequences"]
    assert image["spatial_shape"] == train["slice_size"] and image["num_channels"] == len(train["sequences"])
    pred = meta["network_data_format"]["outputs"]["pred"]
    per_sequence = 1 if train["num_logits"] == 1 else len(train["classes"])
    assert pred["num_channels"] == len(train["sequences"]) * per_sequence
    assert train["classes"] == CLASSIFICATION[bundle][1]
    for name in ("LICENSE", "docs/README.md", "configs/logging.conf", "configs/multi_gpu_train.json"):
        assert (BUNDLES / bundle / name).is_file(), name


@pytest.mark.parametrize("bundle", CLASSIFICATION)
def test_train_writes_checkpoint_and_per_branch_curves(bundle, grading_checkpoints):
    """train.json: a weights-only checkpoint and TensorBoard curves for each branch and the fusion."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    work = grading_checkpoints[bundle]
    state = torch.load(work / "models" / "model.pt", map_location="cpu", weights_only=True)
    sequences = config(bundle, "train")["sequences"]
    assert {k.split(".")[1] for k in state} == set(sequences)  # branches.<sequence>.*: one model per sequence
    record = json.loads((work / "models" / "model_branches.json").read_text())["branches"]
    assert set(record) == set(sequences) and all(r["epoch"] >= 1 and 0 <= r["metric"] <= 1 for r in record.values())
    tags = set()
    for events in (work / "eval").glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    assert {"train_loss", "val_slice_auc_fused"} <= tags
    assert {f"val_slice_auc_{s}" for s in sequences} <= tags
    assert {f"train_loss_{s}" for s in sequences} <= tags


@pytest.mark.parametrize("bundle", CLASSIFICATION)
def test_inference_and_evaluate(bundle, grading_cohorts, grading_checkpoints, tmp_path):
    """inference.json writes per-slice and per-case predictions; evaluate.json the patient-level metrics."""
    datalist = grading_cohorts[bundle]
    out = tmp_path / "eval"
    tiny = {k: TINY_GRADING[k] for k in ("n_slices", "slice_size", "num_workers")}
    run_bundle(bundle, ["inference", "evaluate"], datalist=str(datalist), output_dir=str(out), n_boot=50,
               ckpt_path=str(grading_checkpoints[bundle] / "models" / "model.pt"), **tiny)  # fmt: skip
    classes = CLASSIFICATION[bundle][1]
    doc = json.loads((out / "grading.json").read_text())
    assert doc["classes"] == classes
    assert [c["case_id"] for c in doc["cases"]] == [c["case_id"] for c in json.loads(datalist.read_text())["testing"]]
    train = config(bundle, "train")
    assert train["min_area_fraction"] == 0.0  # only slices showing the lesion
    testing = {c["case_id"]: c for c in json.loads(datalist.read_text())["testing"]}
    for case in doc["cases"]:
        label = np.asarray(nib.load(datalist.parent / testing[case["case_id"]]["label"]).dataobj)
        showing = lesion_slices(label, train["lesion_values"], TINY_GRADING["n_slices"], 0.0)
        assert case["slices"] == len(showing) and case["fused_class"] in classes
        for probabilities in case["branches"].values():
            assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    inference = config(bundle, "inference")
    method = inference["fusion"] if inference["case_fusion"] == "@fusion" else inference["case_fusion"]
    for case in doc["cases"]:
        assert case["fusion"]["method"] == method
        if method == "dl_mdt":  # paper A: both models and both clinicians vote, 0.25 each
            readings = testing[case["case_id"]]["clinicians"]
            expected = dl_mdt({s: case["branches"][s][classes[1]] for s in train["sequences"]},
                              reading_votes(readings, classes))  # fmt: skip
            assert case["fusion"]["weights"] == expected.weights and set(expected.weights) == {
                *train["sequences"],
                "radiology",
                "radiotherapy",
            }
            assert case["fused_class"] == classes[int(expected.positive)]
            assert case["fused"][classes[1]] == pytest.approx(expected.score)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["patients"] == len(classes)
    assert set(metrics["patient_level"]) == {*config(bundle, "train")["sequences"], "fused"}
    assert all(s["level"] == "slice" for s in metrics["slice_level"].values())
    assert (out / "roc_fused.png").is_file() and (out / "confusion_fused.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("bundle", ["glioma_mri_classification", "neuroblastoma_mri_classification"])
def test_a_case_lacking_a_sequence_is_graded_by_the_others(bundle, grading_cohorts, grading_checkpoints, tmp_path):
    """``python -m monai.bundle run``: a case without one sequence, batched with complete ones, is graded by the
    sequences it has, each with the probabilities it gets when complete; the absent one is said and left blank."""
    datalist = grading_cohorts[bundle]
    tiny = {k: TINY_GRADING[k] for k in ("n_slices", "slice_size", "num_workers")}
    ckpt = str(grading_checkpoints[bundle] / "models" / "model.pt")
    sequences = config(bundle, "inference")["sequences"]
    dropped, kept = sequences[0], sequences[1:]
    doc = json.loads(datalist.read_text())
    lacking_id = doc["testing"][0]["case_id"]
    doc["testing"][0] = {k: v for k, v in doc["testing"][0].items() if k != dropped}
    lacking = datalist.parent / f"lacking_{bundle}.json"
    lacking.write_text(json.dumps(doc))
    for name, source in (("complete", datalist), ("lacking", lacking)):
        run_bundle(bundle, ["inference", "evaluate"], datalist=str(source), ckpt_path=ckpt, n_boot=20,
                   output_dir=str(tmp_path / name), batch_size=len(doc["testing"]), **tiny)  # fmt: skip
    complete, graded = ({c["case_id"]: c for c in json.loads((tmp_path / n / "grading.json").read_text())["cases"]}
                        for n in ("complete", "lacking"))  # fmt: skip
    assert set(graded) == set(complete)
    for case_id, case in graded.items():
        assert list(case["branches"]) == (kept if case_id == lacking_id else sequences)
        for name, probabilities in case["branches"].items():  # zeros in its place change nothing else
            assert probabilities == pytest.approx(complete[case_id]["branches"][name], abs=1e-5)
    with (tmp_path / "lacking" / "grading.csv").open(newline="") as f:
        rows = {r["case_id"]: r for r in csv.DictReader(f)}
    assert rows[lacking_id]["sequences"] == " ".join(kept) and rows[lacking_id][f"p_{dropped}_{CLASSIFICATION[bundle][1][0]}"] == ""
    with (tmp_path / "lacking" / "grading_slices.csv").open(newline="") as f:
        slices = [r for r in csv.DictReader(f) if r["case_id"] == lacking_id]
    assert slices and all(r[f"p_{dropped}_{CLASSIFICATION[bundle][1][0]}"] == "" for r in slices)
    metrics = json.loads((tmp_path / "lacking" / "metrics.json").read_text())
    assert metrics["patient_level"][dropped]["n"] == metrics["patients"] - 1
    assert metrics["patient_level"][kept[0]]["n"] == metrics["patients"]
    doc["testing"][0] = {k: v for k, v in doc["testing"][0].items() if k not in sequences}
    lacking.write_text(json.dumps(doc))
    with pytest.raises(Exception) as error:  # none of the sequences: refused by name before any work
        run_bundle(bundle, ["inference"], datalist=str(lacking), ckpt_path=ckpt, output_dir=str(tmp_path / "none"),
                   **tiny)  # fmt: skip
    assert any(f"{lacking_id} (no {', '.join(sequences[:-1])} or {sequences[-1]})" in str(e)
               for e in _chain(error.value))


@pytest.mark.parametrize("bundle", ["glioma_mri_classification", "neuroblastoma_mri_classification"])
def test_stacking_fitted_on_validation_then_applied(bundle, grading_cohorts, grading_checkpoints, tmp_path):
    """fit_stacking.json fits on the validation partition only; inference then fuses with it."""
    datalist = grading_cohorts[bundle]
    tiny = {k: TINY_GRADING[k] for k in ("n_slices", "slice_size", "num_workers")}
    ckpt = str(grading_checkpoints[bundle] / "models" / "model.pt")
    stacking = tmp_path / "stacking.json"
    run_bundle(bundle, ["inference", "fit_stacking"], datalist=str(datalist), ckpt_path=ckpt,
               output_dir=str(tmp_path / "validation"), stacking_path=str(stacking), **tiny)  # fmt: skip
    model = json.loads(stacking.read_text())
    validation = json.loads(datalist.read_text())["validation"]
    assert model["fitted_on"]["partition"] == "validation" and model["fitted_on"]["cases"] == len(validation)
    assert model["sources"] == config(bundle, "train")["sequences"]
    run_bundle(bundle, ["inference"], datalist=str(datalist), ckpt_path=ckpt, output_dir=str(tmp_path / "test"),
               case_fusion="stacking", stacking_path=str(stacking), **tiny)  # fmt: skip
    cases = json.loads((tmp_path / "test" / "grading.json").read_text())["cases"]
    assert all(c["fusion"]["method"] == "stacking" and sum(c["fused"].values()) == pytest.approx(1.0) for c in cases)
    with pytest.raises(Exception) as error:  # predictions on the test partition may not be fitted on
        run_bundle(bundle, ["inference", "fit_stacking"], datalist=str(datalist), ckpt_path=ckpt, partition="testing",
                   output_dir=str(tmp_path / "leak"), stacking_path=str(tmp_path / "leak.json"), **tiny)  # fmt: skip
    leak = next(e for e in _chain(error.value) if isinstance(e, PatientLeakageError))
    assert "validation cases only" in str(leak) and not (tmp_path / "leak.json").exists()


def test_training_refuses_a_leaking_datalist(grading_cohorts, tmp_path):
    """A patient in training and in validation stops training before it starts."""
    doc = json.loads(grading_cohorts["cpa_mri_classification"].read_text())
    doc["validation"] = [*doc["validation"], doc["training"][0]]
    leaking = grading_cohorts["cpa_mri_classification"].parent / "leaking.json"
    leaking.write_text(json.dumps(doc))
    with pytest.raises(Exception) as error:  # MONAI wraps the error while instantiating the dataset
        run_bundle("cpa_mri_classification", ["train"], datalist=str(leaking), ckpt_dir=str(tmp_path / "m"),
                   output_dir=str(tmp_path / "e"), **TINY_GRADING)  # fmt: skip
    assert any(isinstance(e, PatientLeakageError) for e in _chain(error.value))


def _chain(error: BaseException) -> list[BaseException]:
    """An error and its causes (MONAI wraps errors raised inside config expressions)."""
    chain = []
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


@pytest.mark.slow
@pytest.mark.parametrize("bundle", ["neuroblastoma_mri_classification"])
def test_multi_gpu_train_runs_under_torchrun(bundle, grading_cohorts, tmp_path):
    """multi_gpu_train.json under torchrun: two CPU processes (gloo) with a DistributedSampler."""
    result = torchrun_train(bundle, grading_cohorts[bundle], tmp_path, TINY_GRADING)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "models" / "model.pt").is_file()


@pytest.mark.slow
def test_multi_node_train_runs_under_torchrun(grading_cohorts, tmp_path):
    """Two torchrun launches as two nodes (``--nnodes 2 --node_rank 0/1``, one process each) train one model."""
    bundle = "glioma_mri_classification"
    result = torchrun_train(bundle, grading_cohorts[bundle], tmp_path, TINY_GRADING, nodes=2)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "models" / "model.pt").is_file()
