"""Engine pieces for bundle configs: the time budget and per-class Dice metrics."""

from __future__ import annotations

import time

import torch
from ignite.engine import Engine

from mednet.engines import TimeBudget, per_class_dice


def _engine(epoch_seconds: float) -> Engine:
    return Engine(lambda engine, batch: time.sleep(epoch_seconds))


def test_time_budget_stops_before_the_budget_runs_out():
    engine = _engine(0.05)  # one iteration per epoch, 50 ms each
    TimeBudget(0.32).attach(engine)
    start = time.monotonic()
    state = engine.run([0], max_epochs=100)
    elapsed = time.monotonic() - start
    assert 3 <= state.epoch <= 6  # stops once another epoch would not fit
    assert elapsed < 0.32 + 0.05


def test_time_budget_zero_means_no_limit():
    engine = _engine(0.0)
    TimeBudget(0).attach(engine)
    assert engine.run([0], max_epochs=7).epoch == 7


def test_per_class_dice_scores_each_class_channel():
    metrics = per_class_dice([{"value": 1, "name": "liver"}, {"value": 2, "name": "spleen"}])
    assert set(metrics) == {"val_dice_liver", "val_dice_spleen"}
    assert set(per_class_dice({"background": 0, "tumour": 1})) == {"val_dice_tumour"}
    label = torch.zeros(3, 4, 4, 4)
    label[0], label[1, :2], label[2, 2:] = 1, 1, 1
    label[0][label[1:].sum(0) > 0] = 0
    pred = label.clone()
    pred[2, 2:, :2] = 0  # half of spleen missed
    pred[0, 2:, :2] = 1
    engine = Engine(lambda engine, batch: [{"pred": pred, "label": label}])
    for name, metric in metrics.items():
        metric.attach(engine, name)
    state = engine.run([0], max_epochs=1)
    assert state.metrics["val_dice_liver"] == 1.0
    assert abs(state.metrics["val_dice_spleen"] - 2 * 16 / (16 + 32)) < 1e-6
