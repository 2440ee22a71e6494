"""Engine pieces for bundle configs: the time budget and per-class Dice metrics."""

from __future__ import annotations

import itertools
import math
import time

import pytest
import torch
from ignite.engine import Engine, Events

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


class _Validator:
    def __init__(self):
        self.epochs = []

    def run(self, epoch):
        self.epochs.append(epoch)


def test_time_budget_validates_an_unvalidated_last_epoch():
    engine, validator = _engine(0.05), _Validator()
    TimeBudget(0.01, validator=validator, val_interval=3).attach(engine)  # stops after epoch 1, before epoch 3
    assert engine.run([0], max_epochs=100).epoch == 1 and validator.epochs == [1]
    engine, validator = _engine(0.05), _Validator()
    TimeBudget(0.01, validator=validator, val_interval=1).attach(engine)  # the ValidationHandler did it
    engine.run([0], max_epochs=100)
    assert validator.epochs == []
    engine, validator = _engine(0.0), _Validator()
    TimeBudget(0, validator=validator, val_interval=5).attach(engine)  # max_epochs ends it first
    assert engine.run([0], max_epochs=2).epoch == 2 and validator.epochs == [2]


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


def _lr_trace(engine: Engine, optimizer: torch.optim.Optimizer) -> list[float]:
    seen: list[float] = []
    engine.add_event_handler(Events.ITERATION_STARTED, lambda e: seen.append(optimizer.param_groups[0]["lr"]))
    return seen


def test_cosine_anneal_over_epochs_without_a_budget():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    engine = _engine(0.0)
    budget = TimeBudget(0, optimizer=optimizer, anneal="cosine", min_lr_fraction=0.0)
    budget.attach(engine)
    seen = _lr_trace(engine, optimizer)
    engine.run([0], max_epochs=5)
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * e / 5)) for e in range(5)]
    assert seen == pytest.approx(expected)


def test_cosine_anneal_over_the_budget_ends_low_and_keeps_group_ratios():
    weights, head = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [weights], "lr": 1e-4}, {"params": [head], "lr": 1e-3}])
    engine = _engine(0.04)
    TimeBudget(0.4, optimizer=optimizer, anneal="cosine", min_lr_fraction=0.01).attach(engine)
    seen = _lr_trace(engine, optimizer)
    engine.run([0], max_epochs=100)
    assert seen[0] == pytest.approx(1e-4)
    assert all(a >= b for a, b in itertools.pairwise(seen))  # never goes up
    assert seen[-1] < 0.25e-4  # the last epoch starts late in the budget
    assert optimizer.param_groups[1]["lr"] / optimizer.param_groups[0]["lr"] == pytest.approx(10)


def test_anneal_needs_an_optimizer_and_a_known_schedule():
    with pytest.raises(ValueError, match="needs the optimizer"):
        TimeBudget(10, anneal="cosine")
    with pytest.raises(ValueError, match="expected 'cosine'"):
        TimeBudget(10, optimizer=torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), anneal="linear")
