"""Ignite handlers for bundle configs (each has ``attach(engine)``, as MONAI's handlers do)."""

from __future__ import annotations

import logging
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

    Args:
        seconds: the budget; ``None`` or ``<= 0`` means no limit.

    Example:
        ``{"_target_": "mednet.engines.TimeBudget", "seconds": "@time_budget_s"}`` in
        ``train#handlers``, after the ``ValidationHandler``.
    """

    def __init__(self, seconds: float | None):
        self.seconds = float(seconds) if seconds else 0.0
        self._start = 0.0
        self._last = 0.0
        self._longest = 0.0

    def attach(self, engine: Engine) -> None:
        """Start the clock when ``engine`` starts; check it after each epoch."""
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _started(self, engine: Engine) -> None:
        self._start = self._last = time.monotonic()
        self._longest = 0.0

    def __call__(self, engine: Engine) -> None:
        """Terminate ``engine`` when another epoch would not fit in the budget."""
        if self.seconds <= 0:
            return
        now = time.monotonic()
        self._longest = max(self._longest, now - self._last)
        self._last = now
        elapsed = now - self._start
        if _agreed(elapsed + self._longest > self.seconds):
            logger.info(
                f"time budget: stopping after epoch {engine.state.epoch} "
                f"({elapsed:.0f} s used of {self.seconds:.0f} s, longest epoch {self._longest:.0f} s)"
            )
            engine.terminate()


def _agreed(stop: bool) -> bool:
    """Rank 0's decision in a distributed run (every rank must stop together), else ``stop``."""
    if not (dist.is_available() and dist.is_initialized()):
        return stop
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    flag = torch.tensor([int(stop)], device=device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())
