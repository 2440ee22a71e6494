"""TrainingProgress: one log line per epoch with the loss, the mean epoch time and the ETA."""

from __future__ import annotations

import logging

import pytest
import torch
from ignite.engine import Engine

from mednet.engines import TrainingProgress, format_duration

NAME = "mednet.engines.TrainingProgress"


class _Clock:
    """A clock that the test moves by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _engine(clock: _Clock, epoch_seconds: list[float], losses: list[list[float]], decollated: bool) -> Engine:
    """An engine whose iteration ``i`` of epoch ``e`` returns loss ``losses[e][i]`` and takes ``epoch_seconds[e] / n``."""

    def step(engine, batch):
        epoch, i = engine.state.epoch - 1, (engine.state.iteration - 1) % len(losses[0])
        clock.now += epoch_seconds[epoch] / len(losses[epoch])
        loss = torch.tensor(losses[epoch][i])
        return [{"loss": loss}, {"loss": loss}] if decollated else {"loss": loss}

    return Engine(step)


@pytest.mark.parametrize("decollated", [False, True])
def test_one_line_per_epoch_with_mean_loss_time_and_eta(caplog, decollated):
    clock = _Clock()
    losses = [[1.0, 0.5], [0.4, 0.2], [0.3, 0.1]]
    engine = _engine(clock, [10.0, 20.0, 30.0], losses, decollated)
    TrainingProgress(clock=clock).attach(engine)
    with caplog.at_level(logging.INFO, logger=NAME):
        engine.run([0, 1], max_epochs=3)
    lines = [r.getMessage() for r in caplog.records if r.name == NAME]
    # mean epoch time so far: 10, 15, 20 s; epochs left: 2, 1, 0
    assert lines == [
        "epoch 1/3, loss 0.750, 10.0 s/epoch, ETA 20 s",
        "epoch 2/3, loss 0.300, 15.0 s/epoch, ETA 15 s",
        "epoch 3/3, loss 0.200, 20.0 s/epoch, ETA 0 s",
    ]


def test_eta_in_minutes_and_hours_for_long_runs(caplog):
    clock = _Clock()
    engine = _engine(clock, [12.3] * 400, [[0.412]] * 400, decollated=False)
    TrainingProgress(clock=clock).attach(engine)
    with caplog.at_level(logging.INFO, logger=NAME):
        engine.run([0], max_epochs=400)
    lines = [r.getMessage() for r in caplog.records if r.name == NAME]
    assert len(lines) == 400
    assert lines[0] == "epoch 1/400, loss 0.412, 12.3 s/epoch, ETA 1 h 22 min"  # 399 x 12.3 s = 81.8 min
    assert lines[360] == "epoch 361/400, loss 0.412, 12.3 s/epoch, ETA 8 min 0 s"  # 39 x 12.3 s = 479.7 s
    assert lines[-1] == "epoch 400/400, loss 0.412, 12.3 s/epoch, ETA 0 s"


def test_resumed_run_times_only_its_own_epochs(caplog):
    clock = _Clock()
    engine = _engine(clock, [5.0] * 10, [[1.0]] * 10, decollated=False)
    progress = TrainingProgress(clock=clock)
    progress.attach(engine)
    engine.state.max_epochs, engine.state.epoch = 10, 6  # as a checkpoint loader leaves it
    engine.state.iteration = 6
    with caplog.at_level(logging.INFO, logger=NAME):
        engine.run([0], max_epochs=10)
    lines = [r.getMessage() for r in caplog.records if r.name == NAME]
    assert lines[0] == "epoch 7/10, loss 1.000, 5.0 s/epoch, ETA 15 s"
    assert lines[-1] == "epoch 10/10, loss 1.000, 5.0 s/epoch, ETA 0 s"


def test_custom_output_transform():
    clock = _Clock()
    engine = Engine(lambda e, b: (clock.__setattr__("now", clock.now + 2.0), {"total": 3.0})[1])
    progress = TrainingProgress(output_transform=lambda output: output["total"], clock=clock)
    progress.attach(engine)
    engine.run([0], max_epochs=2)
    assert progress.message(engine) == "epoch 2/2, loss 3.000, 2.0 s/epoch, ETA 0 s"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (44.6, "45 s"),
        (59.4, "59 s"),
        (60, "1 min 0 s"),
        (460, "7 min 40 s"),
        (3599, "59 min 59 s"),
        (3600, "1 h 00 min"),
        (7530, "2 h 06 min"),
        (-3, "0 s"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_loss_that_requires_grad_is_read_without_warning():
    engine = Engine(lambda e, b: {"loss": torch.tensor(0.25, requires_grad=True) * 2})
    progress = TrainingProgress(clock=_Clock())
    progress.attach(engine)
    engine.run([0], max_epochs=1)  # pytest turns the tensor-to-scalar UserWarning into an error
    assert progress.message(engine) == "epoch 1/1, loss 0.500, 0.0 s/epoch, ETA 0 s"
