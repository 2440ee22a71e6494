"""Ignite handlers for bundle configs (each has ``attach(engine)``, as MONAI's handlers do)."""

from __future__ import annotations

import logging
import math
import time

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events

__all__ = ["TimeBudget"]

logger = logging.getLogger(__name__)


class TimeBudget:
    """Stop training before a wall-clock budget runs out, at an epoch boundary.

    After each epoch (and the validation attached to it, when this handler is
    attached after the validation handler), training stops when the time left is
    less than the longest epoch so far, so the budget is not overrun by more than
    one epoch's variation. The best checkpoint saved so far stays the result. In a
    distributed run rank 0 decides for every rank, so all stop at the same epoch.

    With ``optimizer`` and ``anneal="cosine"`` it also sets the learning rate at the
    start of each epoch on a cosine from the optimizer's initial rate down to
    ``min_lr_fraction`` of it, over the budget's time (or over ``max_epochs`` when there
    is no budget), so a run cut short by the clock still ends at a small learning rate.

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
            self._initial_lr = [group.get("initial_lr", group["lr"]) for group in self.optimizer.param_groups]

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
