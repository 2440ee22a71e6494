"""Pieces that bundle configs attach to MONAI's ignite engines: handlers and metric sets."""

from mednet.engines.handlers import TimeBudget
from mednet.engines.metrics import per_class_dice

__all__ = ["TimeBudget", "per_class_dice"]
