"""Metric sets for evaluators: one Dice per class, so TensorBoard shows each class's curve."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from monai.handlers import MeanDice, from_engine

__all__ = ["per_class_dice"]


class _Channel:
    """Output transform: ``(pred, label)`` lists reduced to one one-hot channel each."""

    def __init__(self, channel: int, keys: Sequence[str]):
        self.channel = channel
        self.pick = from_engine(list(keys))

    def __call__(self, output) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        pred, label = self.pick(output)
        c = self.channel
        return [p[c : c + 1] for p in pred], [y[c : c + 1] for y in label]


def per_class_dice(labels: Mapping | Sequence[Mapping], keys: Sequence[str] = ("pred", "label")) -> dict[str, MeanDice]:
    """One ``MeanDice`` metric per foreground class, named ``val_dice_<name>``.

    Args:
        labels: ``{name: value}`` (MONAI Label style) or a label table
            ``[{"value": 1, "name": "tumour"}, ...]``; value 0 (background) is skipped.
        keys: the engine output keys holding one-hot ``(C, *spatial)`` prediction and label.

    Returns:
        Metrics for an evaluator's ``additional_metrics``.

    Example:
        ``"additional_metrics": "$mednet.engines.per_class_dice(@label_table)"``
    """
    pairs = (
        [(str(name), int(value)) for name, value in labels.items()]
        if isinstance(labels, Mapping)
        else [(str(row["name"]), int(row["value"])) for row in labels]
    )
    return {
        f"val_dice_{name}": MeanDice(include_background=True, output_transform=_Channel(value, keys))
        for name, value in pairs
        if value != 0
    }
