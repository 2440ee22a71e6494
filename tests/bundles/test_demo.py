"""``mednet demo`` on one disease: the shipped weights (tiny ones here), reuse, identical figures, --retrain."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import mednet.demo
from mednet.cli.main import main
from mednet.demo import DemoPlan, format_table, run_demo
from mednet.pipeline.diseases import DISEASES
from tests.bundles.helpers import BUNDLES, TINY, TINY_GRADING

pytestmark = pytest.mark.bundle


def _shipped(tmp_path, tiny_checkpoints, grading_checkpoints):
    """A bundles folder with CPA's configs and tiny checkpoints as the shipped ``models/model.pt``."""
    bundles = tmp_path / "bundles"
    for name in ("cpa_mri_segmentation", "cpa_mri_classification"):
        shutil.copytree(BUNDLES / name / "configs", bundles / name / "configs")
        (bundles / name / "models").mkdir()
        work = {**tiny_checkpoints, **grading_checkpoints}[name]
        shutil.copy(work / "models" / "model.pt", bundles / name / "models" / "model.pt")
    return bundles


@pytest.mark.slow  # four demo runs (100 s); CI runs it with the slow tests, and the README's demo command itself
def test_demo_predicts_with_the_shipped_weights_and_reuses(tmp_path, tiny_checkpoints, grading_checkpoints,
                                                           monkeypatch, capsys):  # fmt: skip
    bundles = _shipped(tmp_path, tiny_checkpoints, grading_checkpoints)
    plan = DemoPlan(4, size="small")
    lines: list[str] = []
    summary = run_demo(tmp_path / "demo", diseases=["cpa"], plans={"cpa": plan}, bundles=bundles, device="cpu",
                       echo=lines.append)  # fmt: skip
    result = summary["diseases"]["cpa"]
    assert result["failed"] == 0 and result["cases"] == 4  # every generated patient is a test patient
    assert result["weights"] == {n: str(bundles / n / "models" / "model.pt") for n in DISEASES["cpa"]}
    predictions = tmp_path / "demo" / "cpa" / "predictions"
    assert (predictions / "report.html").is_file() and (predictions / "metrics.json").is_file()
    assert json.loads((tmp_path / "demo" / "demo.json").read_text())["diseases"]["cpa"]["cases"] == 4
    printed = "\n".join(lines).splitlines()
    table = printed[printed.index(next(line for line in printed if line.startswith("disease"))) :]
    assert table[2].startswith("cpa") and "4 of 4" in table[2]
    assert "lesion Dice" in table[0] and any("report.html" in line for line in lines)
    assert not list(bundles.rglob("*.partial")) and sorted(p.name for p in (bundles / "cpa_mri_segmentation").iterdir()) \
        == ["configs", "models"]  # nothing written into the bundles

    # a second run reuses the cohort and the complete cases, and gives the same figures
    monkeypatch.setitem(mednet.demo.PLANS, "cpa", plan)
    capsys.readouterr()
    args = ["demo", "--out", str(tmp_path / "demo"), "--disease", "cpa", "--bundles", str(bundles), "--device", "cpu"]
    assert main(args) == 0
    again = json.loads((tmp_path / "demo" / "demo.json").read_text())
    printed = capsys.readouterr().out
    assert "reusing 4 synthetic test patients" in printed and printed.count("complete, skipped") == 4
    assert again["diseases"]["cpa"]["headline"] == json.loads(json.dumps(result["headline"]))
    # a fresh folder gives the same figures too: nothing depends on the machine's speed
    fresh = run_demo(tmp_path / "fresh", diseases=["cpa"], plans={"cpa": plan}, bundles=bundles, device="cpu",
                     echo=lambda line: None)  # fmt: skip
    assert json.loads(json.dumps(fresh["diseases"]["cpa"]["headline"])) == again["diseases"]["cpa"]["headline"]

    # other weights: the cases are predicted again
    weights = bundles / "cpa_mri_classification" / "models" / "model.pt"
    weights.write_bytes(weights.read_bytes())  # same weights, same figures: still skipped
    assert main(args) == 0 and capsys.readouterr().out.count("complete, skipped") == 4
    shutil.copy(tiny_checkpoints["cpa_mri_segmentation"] / "models" / "model.pt", tmp_path / "seg.pt")
    state = torch.load(tmp_path / "seg.pt", weights_only=True)
    state = {k: v * 1.01 if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, bundles / "cpa_mri_segmentation" / "models" / "model.pt")
    lines.clear()
    run_demo(tmp_path / "demo", diseases=["cpa"], plans={"cpa": plan}, bundles=bundles, device="cpu", echo=lines.append)
    assert sum("made with other weights, bundle versions or settings: predicted again" in line for line in lines) == 4
    assert not any("skipped" in line for line in lines)


def test_demo_without_shipped_weights_says_how_to_get_them(tmp_path):
    bundles = tmp_path / "bundles"
    for name in DISEASES["cpa"]:
        shutil.copytree(BUNDLES / name / "configs", bundles / name / "configs")
    with pytest.raises(FileNotFoundError, match=r"ships no weights here \(a clone without a release.s weights\?\); `mednet demo --retrain`"):
        run_demo(tmp_path / "demo", diseases=["cpa"], plans={"cpa": DemoPlan(2, size="small")}, bundles=bundles,
                 device="cpu", echo=lambda line: None)  # fmt: skip


@pytest.mark.slow
def test_demo_retrain_runs_the_reference_recipe(tmp_path):
    """--retrain: the reference recipe (here a tiny one), its weights used for the predictions, nothing installed."""
    tiny = {k: v for k, v in TINY.items() if k != "max_epochs"}
    grading = {k: v for k, v in TINY_GRADING.items() if k != "max_epochs"}
    recipes = {"cpa": {
        "localisation": {"bundle": "cpa_mri_segmentation", "cases": 8, "balance": {"AN": 1, "MG": 1},
                         "randomise": "full", "seed": 1, "epochs": 1, "overrides": tiny, "size": "small"},
        "grading": {"bundle": "cpa_mri_classification", "cases": 14, "balance": {"AN": 1, "MG": 1},
                    "randomise": "plausible", "seed": 2, "epochs": 1, "overrides": grading, "size": "small"},
    }}  # fmt: skip
    lines: list[str] = []
    summary = run_demo(tmp_path / "demo", diseases=["cpa"], plans={"cpa": DemoPlan(4, size="small")}, device="cpu",
                       retrain=True, recipes=recipes, echo=lines.append)  # fmt: skip
    result = summary["diseases"]["cpa"]
    training = tmp_path / "demo" / "training" / "cpa"
    assert result["failed"] == 0
    assert result["weights"]["cpa_mri_segmentation"] == str(training / "localisation_train" / "models" / "model_fp16.pt")
    record = json.loads((training / "record.json").read_text())
    assert record["grading"]["epochs"] == 1 and record["localisation"]["data"]["randomise"] == "full"
    assert record["grading"]["data"]["synthetic_only"] and "test_metrics_fp16" in record["localisation"]
    assert (training / "grading_train" / "models" / "ood.json").is_file()
    log = (training / "localisation_train.log").read_text()
    assert "epoch 1/1, loss " in log and ", ETA 0 s" in log
    assert any("trained 1 epochs" in line for line in lines)


def test_format_table():
    figure = {"value": 0.912, "ci_low": 0.85, "ci_high": 0.95, "n": 9}
    table = format_table({
        "glioma": {"cases": 9, "failed": 1, "headline": {
            "localisation": {"lesion Dice": figure, "false positives per scan": {"value": 0.25, "ci_low": 0.0,
                                                                                 "ci_high": 0.5}},
            "grading": {"fused auc": figure, "fused decision accuracy": {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0}}}},
        "cpa": {"cases": 3, "failed": 0, "headline": {}},
    })  # fmt: skip
    header, rule, glioma, cpa = table.splitlines()
    assert header.split("  ")[0] == "disease" and set(rule) == {"-", " "}
    assert "8 of 9" in glioma and "0.91 [0.85, 0.95]" in glioma and "0.2 [0.0, 0.5]" in glioma
    assert "auc 0.91 [0.85, 0.95]" in glioma and "1.00 [1.00, 1.00]" in glioma
    assert cpa.split()[:4] == ["cpa", "3", "of", "3"] and cpa.count("-") == 5
