"""Segmentation, detection and bootstrap metrics on volumes with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from mednet.metrics import bootstrap_ci, detection_counts, detection_summary, mean_ci, segmentation_scores


def test_dice_and_hd95_in_mm():
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[5:10, 5:10, 5:10] = 1
    pred = np.zeros_like(ref)
    pred[5:10, 5:10, 6:11] = 1  # shifted one slice
    scores = segmentation_scores(pred, ref, {1: "tumour"}, spacing=(1.0, 1.0, 3.0))
    assert scores["tumour"]["dice"] == pytest.approx(2 * 100 / 250)
    assert scores["tumour"]["hd95_mm"] == pytest.approx(3.0)  # one slice of 3 mm


def test_grouped_classes_and_empty_cases():
    ref = np.zeros((10, 10, 10), np.uint8)
    ref[2:4, 2:4, 2:4] = 1
    ref[4:6, 2:4, 2:4] = 3
    pred = np.where(ref > 0, 3, 0)
    scores = segmentation_scores(pred, ref, {1: "tumour", 3: "tumour", 5: "cyst", 7: "liver"}, (1, 1, 1))
    assert scores["tumour"]["dice"] == pytest.approx(1.0) and scores["tumour"]["hd95_mm"] == pytest.approx(0.0)
    assert np.isnan(scores["cyst"]["dice"]) and np.isnan(scores["liver"]["hd95_mm"])
    missed = segmentation_scores(np.zeros_like(ref), ref, {1: "core"}, (1, 1, 1))["core"]
    assert missed["dice"] == 0.0 and np.isnan(missed["hd95_mm"])
    with pytest.raises(ValueError, match="differs from reference"):
        segmentation_scores(ref[:5], ref, {1: "core"}, (1, 1, 1))


def test_detection_counts():
    ref = np.zeros((30, 30, 30), np.uint8)
    ref[2:5, 2:5, 2:5] = 12  # found
    ref[10:13, 10:13, 10:13] = 13  # found by a prediction of another lesion class
    ref[20:23, 20:23, 20:23] = 12  # missed
    pred = np.zeros_like(ref)
    pred[3:6, 3:6, 3:6] = 12
    pred[11:12, 11:12, 11:12] = 12
    pred[25:27, 2:4, 2:4] = 12  # false
    pred[2:4, 25:27, 2:4] = 13  # false
    assert detection_counts(pred, ref, [12, 13]) == {"reference": 3, "detected": 2, "predicted": 4, "false": 2}
    assert detection_counts(pred, ref, [12, 13], min_overlap_voxels=2)["detected"] == 1
    # the detection floor: a two-voxel fragment beside the first lesion is not a lesion to find,
    # and a prediction touching only it is not a false detection
    ref[7, 2:4, 2] = 12
    pred[7, 3, 2] = 12
    assert detection_counts(pred, ref, [12, 13]) == {"reference": 4, "detected": 3, "predicted": 5, "false": 2}
    floored = detection_counts(pred, ref, [12, 13], min_reference_voxels=3)
    assert floored == {"reference": 3, "detected": 2, "predicted": 5, "false": 2}


def test_detection_summary_pools_lesions_and_bootstraps_patients():
    scans = [
        {"reference": 2, "detected": 2, "predicted": 3, "false": 1},
        {"reference": 1, "detected": 0, "predicted": 0, "false": 0},
        {"reference": 1, "detected": 1, "predicted": 1, "false": 0},
    ]
    summary = detection_summary(scans, n_boot=500)
    assert summary["sensitivity"]["value"] == pytest.approx(3 / 4)
    assert summary["missed_detection_rate"]["value"] == pytest.approx(1 / 4)
    assert summary["false_positives_per_scan"]["value"] == pytest.approx(1 / 3)
    assert summary["false_detection_rate"]["value"] == pytest.approx(1 / 4)
    assert summary["lesion_f1"]["value"] == pytest.approx(0.75)
    s = summary["sensitivity"]
    assert s["n"] == 3 and 0 <= s["ci_low"] <= s["value"] <= s["ci_high"] <= 1


def test_bootstrap_interval_narrows_with_more_patients():
    rng = np.random.default_rng(0)
    few = mean_ci(rng.normal(0.8, 0.1, 10), n_boot=1000)
    many = mean_ci(rng.normal(0.8, 0.1, 400), n_boot=1000)
    assert few["ci_high"] - few["ci_low"] > 3 * (many["ci_high"] - many["ci_low"])
    assert many["ci_low"] < 0.8 < many["ci_high"]
    assert mean_ci([0.5, float("nan"), 0.7], n_boot=100)["n"] == 2
    single = bootstrap_ci([1.0], np.mean)
    assert single["value"] == 1.0 and single["ci_low"] is None
    same = bootstrap_ci([1, 2, 3], np.mean, seed=4, n_boot=200)
    assert same == bootstrap_ci([1, 2, 3], np.mean, seed=4, n_boot=200)


def test_evaluate_localisation_known_answers(tmp_path):
    """Two patients: perfect and half-found tumours; ground-truth labels 1 and 4 both mean tumour."""
    import json

    from mednet.metrics import evaluate_localisation
    from tests.conftest import write_nifti

    cases = []
    for cid, found in (("A", 1.0), ("B", 0.5)):
        truth = np.zeros((10, 10, 10), np.uint8)
        truth[2:6, 2:6, 2:6] = 1
        truth[2:6, 2:6, 4:6] = 4  # a second source value mapped onto the tumour
        pred = np.zeros_like(truth)
        pred[2:6, 2:6, 2 : 2 + int(4 * found)] = 1
        pred[8, 8, 8] = 1  # a false lesion
        write_nifti(tmp_path / "gt" / f"{cid}_seg.nii.gz", truth)
        write_nifti(tmp_path / "pred" / cid / f"{cid}_labels.nii.gz", pred)
        cases.append({"case_id": cid, "patient_id": cid, "label": f"gt/{cid}_seg.nii.gz"})
    (tmp_path / "datalist.json").write_text(json.dumps({"training": [], "validation": [], "testing": cases}))
    result = evaluate_localisation(
        tmp_path / "pred", tmp_path / "datalist.json", [{"value": 1, "name": "tumour"}], {"1": "tumour"},
        source_labels=[4], target_labels=[1], out_dir=tmp_path / "eval", n_boot=200,
    )  # fmt: skip
    dice = {row["case_id"]: row["dice_tumour"] for row in result["cases"]}
    assert dice["A"] == pytest.approx(2 * 64 / (65 + 64))
    assert dice["B"] == pytest.approx(2 * 32 / (33 + 64))
    summary = result["summary"]
    assert summary["dice_tumour"]["value"] == pytest.approx((dice["A"] + dice["B"]) / 2)
    assert summary["dice_tumour"]["ci_low"] <= summary["dice_tumour"]["value"] <= summary["dice_tumour"]["ci_high"]
    assert summary["detection"]["sensitivity"]["value"] == 1.0
    assert summary["detection"]["false_positives_per_scan"]["value"] == 1.0
    assert (tmp_path / "eval" / "metrics.json").is_file() and (tmp_path / "eval" / "metrics_cases.csv").is_file()


def test_score_and_summarise_localisation_from_arrays():
    from mednet.metrics import score_localisation, summarise_localisation

    truth = np.zeros((20, 20, 10), int)
    truth[2:8, 2:8, 2:6] = 1  # organ
    truth[10:14, 10:14, 3:7] = 2  # lesion
    pred = truth.copy()
    pred[10:14, 10:12, 3:7] = 0  # half the lesion missed
    classes, lesions = {1: "liver", 2: "tumour"}, {2: "tumour"}
    row = score_localisation(pred, truth, (1.0, 1.0, 2.0), classes, lesions)
    assert row["dice_liver"] == pytest.approx(1.0) and row["dice_tumour"] == pytest.approx(2 * 32 / (64 + 32))
    assert row["dice_lesions"] == row["dice_tumour"] and row["mean_organ_dice"] == pytest.approx(1.0)
    assert row["reference"] == 1 and row["detected"] == 1
    rows = [{"case_id": "a", "patient_id": "p1", **row}, {"case_id": "b", "patient_id": "p2", **row}]
    summary = summarise_localisation(rows, classes, lesions, n_boot=50)
    assert summary["patients"] == 2 and summary["dice_tumour"]["value"] == pytest.approx(row["dice_tumour"])
    assert summary["detection"]["sensitivity"]["value"] == pytest.approx(1.0)


def test_grading_metrics_takes_records_with_missing_sequences_and_indeterminate_calls():
    from mednet.metrics import grading_metrics

    def case(i, truth, p, branches=("t1", "t2"), call=None):
        decided = "HGG" if p >= 0.5 else "LGG"
        return {"case_id": f"c{i}", "patient_id": f"p{i}", "true_class": truth,
                "branches": {b: {"LGG": 1 - p, "HGG": p} for b in branches}, "fused": {"LGG": 1 - p, "HGG": p},
                "fused_class": decided, "fusion": {"call": call or decided}}  # fmt: skip

    cases = [case(0, "HGG", 0.9), case(1, "HGG", 0.8, ("t2",)), case(2, "LGG", 0.1), case(3, "LGG", 0.2),
             case(4, "LGG", 0.55, call="indeterminate"), case(5, "HGG", 0.7)]  # fmt: skip
    result = grading_metrics(cases, ["LGG", "HGG"], n_boot=50)
    assert result["patients"] == 6
    assert result["patient_level"]["t1"]["auc"]["n"] == 5  # t1 over the patients that have it
    assert result["patient_level"]["t2"]["auc"]["n"] == 6
    assert result["calls"]["indeterminate"] == 1 and result["calls"]["determinate"] == 5
    assert result["calls"]["accuracy"]["value"] == pytest.approx(1.0)  # every determinate call right
    assert result["fused_decision"]["accuracy"]["value"] == pytest.approx(5 / 6)  # the rule's own class
    with pytest.raises(ValueError, match="no graded case has a true class"):
        grading_metrics([{**cases[0], "true_class": None}], ["LGG", "HGG"])


def test_format_ci_with_and_without_an_interval():
    from mednet.metrics.bootstrap import format_ci

    assert format_ci({"value": 0.91234, "ci_low": 0.8, "ci_high": 0.95}, 3) == "0.912 [0.800, 0.950]"
    assert format_ci({"value": 0.5, "ci_low": None, "ci_high": None}) == "0.50"  # one patient: no interval
    assert format_ci(None) == "-" and format_ci({"value": None}) == "-"
