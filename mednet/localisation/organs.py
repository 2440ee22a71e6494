"""Organ post-processing: keep each organ's largest connected parts, fill its holes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from mednet.io.grid import fill_holes

__all__ = ["clean_organs"]

_FULL_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


def clean_organs(labels: np.ndarray, organs: Mapping[int, int]) -> np.ndarray:
    """Keep the largest connected component(s) of each organ and fill the holes inside.

    Args:
        labels: ``(x, y, z)`` integer label map (organs and lesions).
        organs: organ label value -> how many components to keep (1 for most organs,
            2 for paired ones stored under one label, such as both lungs).

    Returns:
        A cleaned copy. Removed fragments become background (0); holes are filled
        with the organ only where the map is background, so lesions inside an organ
        are kept.
    """
    out = np.array(labels, copy=True)
    for value, keep in organs.items():
        mask = out == value
        if not mask.any():
            continue
        components, count = ndimage.label(mask, structure=_FULL_CONNECTIVITY)
        if count > keep:
            sizes = ndimage.sum_labels(mask, components, index=np.arange(1, count + 1))
            kept = np.argsort(-sizes, kind="stable")[:keep] + 1
            out[mask & ~np.isin(components, kept)] = 0
            mask = out == value
        filled = fill_holes(mask)
        out[filled & (out == 0)] = value
    return out
