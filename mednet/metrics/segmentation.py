"""Per-class overlap and surface-distance metrics in millimetres (MONAI's implementations)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance

__all__ = ["segmentation_scores"]


def segmentation_scores(
    prediction: np.ndarray, reference: np.ndarray, classes: Mapping[int, str], spacing: tuple[float, ...]
) -> dict[str, dict[str, float]]:
    """Dice and HD95 (mm) per class between two label maps on the same grid.

    Args:
        prediction: ``(x, y, z)`` integer labels.
        reference: ``(x, y, z)`` integer labels (ground truth).
        classes: label value -> name; values that share a name are scored together
            (e.g. ``{1: "tumour", 2: "tumour", 3: "tumour"}`` for a whole tumour).
        spacing: voxel size per axis, mm.

    Returns:
        ``{name: {"dice", "hd95_mm"}}``. Both NaN when the class is absent from both
        maps (nothing to score); HD95 is NaN when it is absent from only one (Dice 0).

    Raises:
        ValueError: the maps differ in shape.
    """
    if np.shape(prediction) != np.shape(reference):
        raise ValueError(f"prediction shape {np.shape(prediction)} differs from reference {np.shape(reference)}")
    groups: dict[str, list[int]] = {}
    for value, name in classes.items():
        groups.setdefault(name, []).append(value)
    scores = {}
    for name, values in groups.items():
        pred = torch.as_tensor(np.isin(prediction, values))[None, None].float()
        ref = torch.as_tensor(np.isin(reference, values))[None, None].float()
        if not pred.any() and not ref.any():
            scores[name] = {"dice": float("nan"), "hd95_mm": float("nan")}
            continue
        dice = float(compute_dice(pred, ref, include_background=True, ignore_empty=False)[0, 0])
        hd95 = float("nan")
        if pred.any() and ref.any():
            hd95 = float(
                compute_hausdorff_distance(pred, ref, include_background=True, percentile=95, spacing=list(spacing))[
                    0, 0
                ]
            )
        scores[name] = {"dice": dice, "hd95_mm": hd95}
    return scores
