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
    # each organ is worked on inside its bounding box (one pass finds them all): the same
    # components and the same holes as in the whole volume (everything outside the box is
    # background connected to the border), at a fraction of the cost in a large volume
    boxes = ndimage.find_objects(np.clip(out, 0, None)) if out.size and out.dtype.kind in "iu" else None
    for value, keep in organs.items():
        box = _box(boxes, value, out)
        if box is None:
            continue
        region = out[box]  # a view: changes go to ``out``
        mask = region == value
        if not mask.any():
            continue
        components, count = ndimage.label(mask, structure=_FULL_CONNECTIVITY)
        if count > keep:
            sizes = ndimage.sum_labels(mask, components, index=np.arange(1, count + 1))
            kept = np.argsort(-sizes, kind="stable")[:keep] + 1
            region[mask & ~np.isin(components, kept)] = 0
            mask = region == value
        filled = fill_holes(mask)
        region[filled & (region == 0)] = value
    return out


def _box(boxes: list | None, value: int, labels: np.ndarray) -> tuple[slice, ...] | None:
    """The bounding box of ``value`` in ``labels`` (from ``find_objects``), the whole map when unknown, or None."""
    if boxes is None or int(value) != value or value < 1:
        return (slice(None),) * labels.ndim if np.any(labels == value) else None
    return boxes[int(value) - 1] if int(value) <= len(boxes) else None
