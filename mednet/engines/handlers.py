"""Ignite handlers for bundle configs (each has ``attach(engine)``, as MONAI's handlers do)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events

__all__ = ["TimeBudget", "TrainingProgress", "format_duration"]

logger = logging.getLogger(__name__)


class TimeBudget:
    """Stop training before a wall-clock budget runs out, at an epoch boundary (opt-in).

    Training is sized in epochs (``max_epochs``); a wall-clock budget is an option for
    those who want one (``time_budget_s``, 0 by default in every bundle), knowing that the
    epoch a run stops at then depends on the machine's speed and load, so two runs of the
    same command may differ. With no budget this handler only anneals the learning rate
    over the epochs and validates a last epoch that the validation interval skipped.

    After each epoch (and the validation attached to it, when this handler is
    attached after the validation handler), training stops when the time left is
    less than the longest epoch so far, so the budget is not overrun by more than
    one epoch's variation. The best checkpoint saved so far stays the result. In a
    distributed run rank 0 decides for every rank, so all stop at the same epoch.

    With ``optimizer`` and ``anneal="cosine"`` it also sets the learning rate at the
    start of each epoch on a cosine from the optimizer's initial rate down to
    ``min_lr_fraction`` of it, over ``max_epochs`` (epoch ``e`` of ``E`` starts at the
    fraction ``(e - 1) / E`` of the cosine), or, with a budget, over the budget's time, so
    that a run cut short by the clock still ends at a small learning rate.

    Args:
        seconds: the budget; ``None`` or ``<= 0`` means no limit.
        optimizer: the optimizer whose learning rates to anneal (each parameter group
            from its own initial rate).
        anneal: ``"cosine"`` or ``None`` (learning rate left alone).
        min_lr_fraction: the final learning rate as a fraction of the initial one.

    Example:
        ``{"_target_": "mednet.engines.TimeBudget", "seconds": "@time_budget_s",
        "optimizer": "@optimizer", "anneal": "cosine", "validator": "@validate#evaluator",
        "val_interval": "@val_interval"}`` in ``train#handlers``, after the
        ``ValidationHandler``.
    """

    def __init__(
        self,
        seconds: float | None,
        optimizer: torch.optim.Optimizer | None = None,
        anneal: str | None = None,
        min_lr_fraction: float = 0.01,
        validator=None,
        val_interval: int = 1,
    ):
        if anneal not in (None, "none", "cosine"):
            raise ValueError(f"anneal: expected 'cosine' or None, found {anneal!r}")
        if anneal == "cosine" and optimizer is None:
            raise ValueError("anneal='cosine' needs the optimizer")
        self.seconds = float(seconds) if seconds else 0.0
        self.optimizer = optimizer if anneal == "cosine" else None
        self.min_lr_fraction = float(min_lr_fraction)
        self.validator = validator
        self.val_interval = max(int(val_interval), 1)
        self._initial_lr: list[float] = []
        self._start = 0.0
        self._last = 0.0
        self._longest = 0.0

    def attach(self, engine: Engine) -> None:
        """Start the clock when ``engine`` starts; check it after each epoch."""
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, self._validate_last)
        if self.optimizer is not None:
            engine.add_event_handler(Events.EPOCH_STARTED, self._anneal)

    def _started(self, engine: Engine) -> None:
        self._start = self._last = time.monotonic()
        self._longest = 0.0
        if self.optimizer is not None:
            # kept in the parameter groups (as torch's schedulers do), so that the optimizer's state
            # dict carries them and a resumed run anneals from the same rates
            self._initial_lr = [group.setdefault("initial_lr", group["lr"]) for group in self.optimizer.param_groups]

    def _validate_last(self, engine: Engine) -> None:
        """Validate the last epoch when the ValidationHandler's interval skipped it (budget or max_epochs)."""
        if self.validator is not None and engine.state.epoch % self.val_interval:
            logger.info(f"validating the last epoch ({engine.state.epoch}), which the validation interval skipped")
            self.validator.run(engine.state.epoch)

    def progress(self, engine: Engine) -> float:
        """Fraction of the run done, in [0, 1]: of the budget's time, else of ``max_epochs``."""
        if self.seconds > 0:
            done = (time.monotonic() - self._start) / self.seconds
        else:
            done = (engine.state.epoch - 1) / max(engine.state.max_epochs or 1, 1)
        return min(max(_from_rank0(done), 0.0), 1.0)

    def _anneal(self, engine: Engine) -> None:
        scale = self.min_lr_fraction + (1 - self.min_lr_fraction) * 0.5 * (
            1 + math.cos(math.pi * self.progress(engine))
        )
        for group, initial in zip(self.optimizer.param_groups, self._initial_lr, strict=True):
            group["lr"] = initial * scale

    def __call__(self, engine: Engine) -> None:
        """Terminate ``engine`` when another epoch would not fit in the budget."""
        if self.seconds <= 0:
            return
        now = time.monotonic()
        self._longest = max(self._longest, now - self._last)
        self._last = now
        elapsed = now - self._start
        if _from_rank0(float(elapsed + self._longest > self.seconds)) > 0:
            logger.info(
                f"time budget: stopping after epoch {engine.state.epoch} "
                f"({elapsed:.0f} s used of {self.seconds:.0f} s, longest epoch {self._longest:.0f} s)"
            )
            engine.terminate()


def _from_rank0(value: float) -> float:
    """Rank 0's ``value`` in a distributed run (every rank must decide alike), else ``value``."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def format_duration(seconds: float) -> str:
    """A duration for people: ``"45 s"``, ``"7 min 40 s"``, ``"2 h 05 min"`` (rounded to the second or minute)."""
    seconds = max(round(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _loss(output: Any) -> float:
    """The loss in an engine's output: a decollated list of dicts, a dict, a tensor or a number."""
    if isinstance(output, (list, tuple)) and output:
        output = output[0]
    if isinstance(output, dict):
        output = output["loss"]
    if isinstance(output, torch.Tensor):
        output = output.detach()
    return float(output)


class TrainingProgress:
    """Log, after each epoch, the epoch, its mean loss, the mean epoch time and the time left.

    One line per epoch through :mod:`logging` (as MONAI's ``StatsHandler``), so it goes
    wherever the bundle's ``logging.conf`` sends its log::

        epoch 3/40, loss 0.412, 12.3 s/epoch, ETA 7 min 40 s

    The loss is the mean over the epoch's iterations; the time per epoch is the mean over
    the epochs of this run so far (validation included when this handler is attached after
    the ``ValidationHandler``); the ETA is that mean times the epochs left to
    ``max_epochs``. A run that an opt-in time budget stops early ends sooner than that.

    Args:
        output_transform: takes ``engine.state.output`` to the iteration's loss (default:
            ``output["loss"]``, of the first item when the output is a decollated list).
        name: the logger's name.
        clock: the time source in seconds (``time.monotonic``; tests give their own).

    Example:
        ``{"_target_": "mednet.engines.TrainingProgress"}`` in ``train#handlers``, after the
        ``ValidationHandler``.
    """

    def __init__(
        self,
        output_transform: Callable[[Any], Any] = _loss,
        name: str = "mednet.engines.TrainingProgress",
        clock: Callable[[], float] = time.monotonic,
    ):
        self.output_transform = output_transform
        self.logger = logging.getLogger(name)
        self.clock = clock
        self._start = 0.0
        self._first_epoch = 0
        self._losses: list[float] = []

    def attach(self, engine: Engine) -> None:
        """Start timing when ``engine`` starts; collect the loss each iteration; log each epoch."""
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _started(self, engine: Engine) -> None:
        self._start = self.clock()
        self._first_epoch = engine.state.epoch  # a resumed run starts past 0

    def _epoch_started(self, engine: Engine) -> None:
        self._losses = []

    def _iteration_completed(self, engine: Engine) -> None:
        loss = self.output_transform(engine.state.output)
        self._losses.append(float(loss.detach() if isinstance(loss, torch.Tensor) else loss))

    def message(self, engine: Engine) -> str:
        """The line for the epoch that ``engine`` has just completed."""
        epoch, total = engine.state.epoch, engine.state.max_epochs or engine.state.epoch
        per_epoch = (self.clock() - self._start) / max(epoch - self._first_epoch, 1)
        loss = f"{sum(self._losses) / len(self._losses):.3f}" if self._losses else "n/a"
        eta = format_duration(per_epoch * max(total - epoch, 0))
        return f"epoch {epoch}/{total}, loss {loss}, {per_epoch:.1f} s/epoch, ETA {eta}"

    def __call__(self, engine: Engine) -> None:
        """Log :meth:`message`."""
        self.logger.info(self.message(engine))
