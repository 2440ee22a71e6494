"""Pieces that bundle configs attach to MONAI's ignite engines: handlers and metric sets."""

from mednet.engines.grading import (
    BranchLoss,
    BranchwiseBest,
    GradingWriter,
    SequenceBatch,
    branch_metrics,
    fused_probabilities,
)
from mednet.engines.handlers import TimeBudget, TrainingProgress, format_duration
from mednet.engines.init import initialised
from mednet.engines.metrics import per_class_dice
from mednet.engines.resume import Resume, random_states

__all__ = [
    "BranchLoss",
    "BranchwiseBest",
    "GradingWriter",
    "Resume",
    "SequenceBatch",
    "TimeBudget",
    "TrainingProgress",
    "branch_metrics",
    "format_duration",
    "fused_probabilities",
    "initialised",
    "per_class_dice",
    "random_states",
]
