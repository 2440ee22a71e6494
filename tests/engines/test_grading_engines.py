"""Engine pieces of the classification bundles, and the patient-level evaluation of their output."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from sklearn.metrics import roc_auc_score

from mednet.engines import BranchLoss, BranchwiseBest, GradingWriter, SequenceBatch, branch_metrics
from mednet.fusion import CaseFusion
from mednet.metrics import evaluate_grading
from mednet.networks import build_multisequence


def test_sequence_batch_gives_a_dict_and_the_target():
    batch = {"t1": torch.ones(2, 1, 4, 4), "t2": torch.zeros(2, 1, 4, 4), "target": torch.tensor([0, 1]), "x": "y"}
    inputs, target = SequenceBatch(["t1", "t2"])(batch, torch.device("cpu"))
    assert set(inputs) == {"t1", "t2"} and target.tolist() == [0, 1]
    assert SequenceBatch(["t1"])({"t1": torch.ones(1, 1, 2, 2)})[1] is None  # inference: no target
    with pytest.raises(KeyError, match="batch lacks \\['flair'\\]"):
        SequenceBatch(["t1", "flair"])(batch)


def test_branch_loss_sums_the_branches_and_keeps_each():
    torch.manual_seed(0)
    net = build_multisequence(["t1", "t2"], "svgg", 2, 1, 1, channels=[4], hidden=0)
    inputs = {"t1": torch.randn(4, 1, 8, 8), "t2": torch.randn(4, 1, 8, 8)}
    target = torch.tensor([0, 1, 1, 0])
    loss = BranchLoss(net)
    total = loss(net(inputs), target)
    assert set(loss.last) == {"t1", "t2"}
    assert total.item() == pytest.approx(sum(loss.last.values()), rel=1e-6)
    total.backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_grading_writer_aggregates_slices_per_case_and_votes(tmp_path):
    cases = ["a", "a", "b", "b"]
    probs = {"t1": np.array([0.9, 0.7, 0.2, 0.4]), "t2": np.array([0.6, 0.6, 0.3, 0.9]),
             "flair": np.array([0.1, 0.3, 0.1, 0.1])}  # fmt: skip
    engine = Engine(lambda e, batch: {"pred": {"probabilities": {k: torch.tensor(v)[:, None] for k, v in probs.items()}},
                                      "label": torch.tensor([1, 1, 0, 0])})  # fmt: skip
    writer = GradingWriter(tmp_path, ["LGG", "HGG"], CaseFusion(["LGG", "HGG"], "vote"))
    writer.attach(engine)
    engine.run([{"case_id": cases, "patient_id": cases, "slice_index": torch.tensor([3, 4, 7, 8])}], max_epochs=1)
    doc = json.loads((tmp_path / "grading.json").read_text())
    a, b = doc["cases"]
    assert a["branches"]["t1"]["HGG"] == pytest.approx(0.8) and a["branches"]["flair"]["HGG"] == pytest.approx(0.2)
    assert a["fused_class"] == "HGG"  # t1 and t2 vote HGG, flair LGG
    assert b["branches"]["t2"]["HGG"] == pytest.approx(0.6) and b["fused_class"] == "LGG"  # only t2 votes HGG
    assert a["fused"]["HGG"] == pytest.approx((0.8 + 0.6 + 0.2) / 3)
    assert a["true_class"] == "HGG" and a["slices"] == 2
    with (tmp_path / "grading_slices.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["slice_index"] for r in rows] == ["3", "4", "7", "8"]
    with pytest.raises(FileExistsError, match="overwrite"):
        writer.write()


def test_evaluate_grading_patient_level_matches_sklearn(tmp_path):
    rng = np.random.default_rng(0)
    truth = [1] * 12 + [0] * 8
    p = np.clip(np.array(truth) * 0.4 + rng.uniform(0, 0.6, 20), 0, 1)
    doc = {"classes": ["LGG", "HGG"], "aggregation": "mean", "cases": [
        {"case_id": f"c{i}", "patient_id": f"p{i}", "slices": 1, "true_class": ["LGG", "HGG"][t],
         "branches": {"t1": {"LGG": 1 - q, "HGG": q}}, "fused": {"LGG": 1 - q, "HGG": q},
         "fused_class": "HGG" if q >= 0.5 else "LGG"} for i, (t, q) in enumerate(zip(truth, p, strict=True))]}  # fmt: skip
    (tmp_path / "grading.json").write_text(json.dumps(doc))
    result = evaluate_grading(tmp_path, n_boot=200)
    assert result["patients"] == 20
    assert result["patient_level"]["t1"]["auc"]["value"] == pytest.approx(roc_auc_score(truth, p))
    assert result["patient_level"]["fused"]["level"] == "patient"
    assert result["fused_decision"]["accuracy"]["value"] == pytest.approx(np.mean((p >= 0.5) == np.array(truth)))
    assert (tmp_path / "roc_t1.png").stat().st_size > 0 and (tmp_path / "confusion_fused.png").is_file()
    assert json.loads((tmp_path / "metrics.json").read_text())["patients"] == 20


def test_evaluate_grading_with_one_class_only_notes_the_missing_roc(tmp_path):
    doc = {"classes": ["LGG", "HGG"], "aggregation": "mean", "cases": [
        {"case_id": f"c{i}", "patient_id": f"p{i}", "slices": 1, "true_class": "HGG",
         "branches": {"t1": {"LGG": 1 - q, "HGG": q}}, "fused": {"LGG": 1 - q, "HGG": q},
         "fused_class": "HGG" if q >= 0.5 else "LGG"} for i, q in enumerate([0.9, 0.4])]}  # fmt: skip
    (tmp_path / "grading.json").write_text(json.dumps(doc))
    result = evaluate_grading(tmp_path, n_boot=50)
    assert np.isnan(result["patient_level"]["t1"]["auc"]["value"])
    assert result["patient_level"]["t1"]["sensitivity"]["value"] == 0.5
    assert result["notes"] == [f"no ROC curve for {n}: the ROC curve needs both positive and negative rows"
                               for n in ("t1", "fused")]  # fmt: skip
    assert not (tmp_path / "roc_t1.png").exists() and (tmp_path / "confusion_t1.png").is_file()


def test_branch_metrics_score_each_branch_and_the_fusion():
    metrics = branch_metrics(["t1", "t2"], 1)
    assert set(metrics) == {"val_slice_auc_t1", "val_slice_auc_t2", "val_slice_auc_fused"}
    probs = {"t1": torch.tensor([[0.9], [0.2], [0.8], [0.1]]), "t2": torch.tensor([[0.4], [0.6], [0.3], [0.7]])}
    engine = Engine(lambda e, b: {"pred": {"probabilities": probs}, "label": torch.tensor([1, 0, 1, 0])})
    for name, metric in metrics.items():
        metric.attach(engine, name)
    state = engine.run([0], max_epochs=1)
    assert state.metrics["val_slice_auc_t1"] == 1.0 and state.metrics["val_slice_auc_t2"] == 0.0
    assert state.metrics["val_slice_auc_fused"] == pytest.approx(roc_auc_score([1, 0, 1, 0], [0.65, 0.4, 0.55, 0.4]))


def test_branchwise_best_keeps_each_branch_from_its_own_best_epoch(tmp_path):
    torch.manual_seed(0)
    net = build_multisequence(["t1", "t2"], "svgg", 2, 1, 1, channels=[4], hidden=0)
    keeper = BranchwiseBest(net, tmp_path, "model.pt")
    evaluator = Engine(lambda engine, batch: None)
    keeper.attach(evaluator)
    snapshots = []
    # epoch 1: t1 at its best; epoch 2: t2 at its best, t1 worse; epoch 3: neither improves
    for epoch, (auc_t1, auc_t2) in enumerate([(0.9, 0.6), (0.7, 0.8), (0.5, 0.5)], start=1):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(1.0)  # every epoch changes every weight
        snapshots.append({k: v.clone() for k, v in net.state_dict().items()})
        evaluator.state.epoch = epoch
        evaluator.state.metrics = {"val_slice_auc_t1": auc_t1, "val_slice_auc_t2": auc_t2}
        evaluator.fire_event(Events.EPOCH_COMPLETED)
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved.keys() == net.state_dict().keys()
    for key, value in saved.items():
        epoch = 1 if key.startswith("branches.t1.") else 2
        torch.testing.assert_close(value, snapshots[epoch - 1][key])
    record = json.loads((tmp_path / "model_branches.json").read_text())["branches"]
    assert record == {"t1": {"metric": 0.9, "epoch": 1}, "t2": {"metric": 0.8, "epoch": 2}}
    evaluator.state.metrics = {"val_slice_auc_t1": 0.5}
    with pytest.raises(KeyError, match="no metric 'val_slice_auc_t2'"):
        evaluator.fire_event(Events.EPOCH_COMPLETED)
