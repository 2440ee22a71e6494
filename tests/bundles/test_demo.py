"""``mednet demo`` on one disease with one tiny epoch: cohort, training, weights installed, predict, table; reuse."""

from __future__ import annotations

import json
import os
import shutil

import pytest

import mednet.bundles
import mednet.demo
from mednet.cli.main import main
from mednet.demo import DemoPlan, format_table, run_demo
from tests.bundles.helpers import BUNDLES, TINY, TINY_GRADING

pytestmark = pytest.mark.bundle


def _no_max_epochs(settings: dict) -> dict:
    """The tiny settings without ``max_epochs``: a demo plan gives the epochs."""
    return {k: v for k, v in settings.items() if k != "max_epochs"}


def test_demo_trains_predicts_and_reuses(tmp_path, monkeypatch, capsys):
    bundles = tmp_path / "bundles"
    for name in ("cpa_mri_segmentation", "cpa_mri_classification"):
        shutil.copytree(BUNDLES / name / "configs", bundles / name / "configs")
    plan = DemoPlan(12, 1, 1, {**_no_max_epochs(TINY), "val_interval": 1}, _no_max_epochs(TINY_GRADING), size="small")
    lines: list[str] = []
    summary = run_demo(tmp_path / "demo", diseases=["cpa"], plans={"cpa": plan}, bundles=bundles, device="cpu",
                       echo=lines.append)  # fmt: skip
    result = summary["diseases"]["cpa"]
    assert result["failed"] == 0 and result["cases"] >= 2
    for name in ("cpa_mri_segmentation", "cpa_mri_classification"):
        assert (bundles / name / "models" / "model.pt").is_file() and result["training"][name]["trained"]
        assert result["training"][name]["epochs"] == 1
        log = (tmp_path / "demo" / "cpa" / "training" / f"{name}.log").read_text()
        assert "TrainingProgress" in log and "epoch 1/1, loss " in log and ", ETA 0 s" in log
    assert not list((bundles / "cpa_mri_classification" / "models").glob(".*partial"))
    predictions = tmp_path / "demo" / "cpa" / "predictions"
    assert (predictions / "report.html").is_file() and (predictions / "metrics.json").is_file()
    assert json.loads((tmp_path / "demo" / "demo.json").read_text())["diseases"]["cpa"]["cases"] == result["cases"]
    printed = "\n".join(lines).splitlines()
    table = printed[printed.index(next(line for line in printed if line.startswith("disease"))) :]
    assert table[2].startswith("cpa") and f"{result['cases']} of {result['cases']}" in table[2]
    assert "lesion Dice" in table[0] and any("report.html" in line for line in lines)

    # a second run reuses the cohort, the weights and the complete cases: no training
    def no_training(*args, **kwargs):
        raise AssertionError("the second run trained again")

    monkeypatch.setattr(mednet.bundles, "train_bundle", no_training)
    monkeypatch.setitem(mednet.demo.PLANS, "cpa", plan)
    capsys.readouterr()
    args = ["demo", "--out", str(tmp_path / "demo"), "--disease", "cpa", "--bundles", str(bundles), "--device", "cpu"]
    assert main(args) == 0
    again = json.loads((tmp_path / "demo" / "demo.json").read_text())
    printed = capsys.readouterr().out
    assert not any(t["trained"] for t in again["diseases"]["cpa"]["training"].values())
    assert "reusing" in printed and "synthetic patients" in printed and "reusing the weights" in printed
    assert printed.count("complete, skipped") == result["cases"]
    assert again["diseases"]["cpa"]["headline"] == json.loads(json.dumps(result["headline"]))

    # newer weights: the cases are predicted again
    weights = bundles / "cpa_mri_classification" / "models" / "model.pt"
    later = (predictions / "summary.csv").stat().st_mtime + 10
    os.utime(weights, (later, later))
    lines.clear()
    run_demo(tmp_path / "demo", diseases=["cpa"], plans={"cpa": plan}, bundles=bundles, device="cpu", echo=lines.append)
    assert any("weights changed" in line for line in lines) and not any("skipped" in line for line in lines)


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
