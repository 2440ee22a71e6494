"""Patient-level lesion features for neuroblastoma staging, from a label map.

The INRG staging system separates localised tumours without image-defined risk factors
(L1), localised tumours with them (L2, e.g. a tumour encasing the aorta or the IVC), and
distant metastatic disease (M). What the localisation stage's label map says about this:

- how many distant lesions there are and how much of them (metastasis label);
- how large the primary tumour is;
- how much of the great vessels the primary tumour touches (an image-defined risk factor
  is vessel encasement);
- how many compartments the primary tumour reaches.

:func:`lesion_features` turns a label map into these numbers, scaled to similar ranges so
that a network can take them beside the image (:data:`FEATURE_NAMES` gives their order).
The same function runs on the ground truth in training and on the localisation stage's
output at inference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from mednet.io.grid import bounding_box

__all__ = ["FEATURE_NAMES", "lesion_features"]

#: Order of the values :func:`lesion_features` returns.
FEATURE_NAMES = (
    "metastasis_count",
    "metastasis_log_volume_ml",
    "primary_log_volume_ml",
    "vessel_contact_fraction",
    "primary_compartments",
)

_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


def _values(values: int | Sequence[int]) -> list[int]:
    return [int(values)] if np.isscalar(values) else [int(v) for v in values]


def lesion_features(
    labels,
    spacing: Sequence[float],
    *,
    primary: int | Sequence[int],
    metastasis: int | Sequence[int],
    vessels: int | Sequence[int] = (),
    compartments: Mapping[int, str] | None = None,
    min_lesion_mm3: float = 0.0,
    contact_mm: float = 3.0,
) -> np.ndarray:
    """The staging features of one label map, in :data:`FEATURE_NAMES` order.

    Args:
        labels: ``(x, y, z)`` (or ``(1, x, y, z)``) integer label map.
        spacing: voxel size in mm, ``(x, y, z)``.
        primary: label value(s) of the primary tumour.
        metastasis: label value(s) of distant lesions.
        vessels: label values of the great vessels (aorta, IVC) whose contact is measured.
        compartments: organ label value -> compartment name; the primary tumour's
            compartments are those of the organs it touches (dilated by ``contact_mm``).
        min_lesion_mm3: metastasis components smaller than this are not counted.
        contact_mm: how far (mm) from the tumour a vessel voxel still counts as touched.

    Returns:
        ``(5,)`` float32: metastasis count (clipped at 10, divided by 10), ``log1p`` of the
        metastases' total volume in ml, ``log1p`` of the primary's volume in ml, the fraction
        of vessel voxels within ``contact_mm`` of the primary (0 without vessels), and the
        number of compartments the primary touches divided by 3.

    Raises:
        ValueError: a label map that is not 3D, or a spacing without three positive values.
    """
    labels = np.asarray(labels)
    if labels.ndim == 4 and labels.shape[0] == 1:
        labels = labels[0]
    if labels.ndim != 3:
        raise ValueError(f"labels: expected (x, y, z), found shape {labels.shape}")
    spacing = np.asarray(spacing, dtype=float)
    if spacing.shape != (3,) or np.any(spacing <= 0):
        raise ValueError(f"spacing: expected three positive values in mm, found {spacing.tolist()}")
    voxel_ml = float(np.prod(spacing)) / 1000.0

    metastases = np.isin(labels, _values(metastasis))
    components, count = ndimage.label(metastases, structure=_CONNECTIVITY)
    if count:
        sizes = np.bincount(components.ravel(), minlength=count + 1)[1:] * voxel_ml * 1000.0  # voxels per component
        kept = sizes >= min_lesion_mm3
        count, metastasis_ml = int(kept.sum()), float(sizes[kept].sum()) / 1000.0
    else:
        metastasis_ml = 0.0

    tumour = np.isin(labels, _values(primary))
    primary_ml = float(tumour.sum()) * voxel_ml
    near = _near(tumour, spacing, contact_mm) if tumour.any() else tumour
    vessel = np.isin(labels, _values(vessels)) if _values(vessels) else np.zeros_like(tumour)
    contact = float((vessel & near).sum()) / float(vessel.sum()) if vessel.any() else 0.0
    touched = {compartments[v] for v in np.unique(labels[near & ~tumour]) if compartments and v in compartments}

    return np.array(
        [min(count, 10) / 10.0, np.log1p(metastasis_ml), np.log1p(primary_ml), contact, len(touched) / 3.0],
        dtype=np.float32,
    )


def _near(mask: np.ndarray, spacing: np.ndarray, mm: float) -> np.ndarray:
    """Voxels within ``mm`` of ``mask`` (an ellipsoidal dilation in voxel units), ``mask`` included."""
    radius = np.maximum(np.round(mm / spacing).astype(int), 0)
    found = bounding_box(mask)
    if not radius.any() or found is None:
        return mask
    grid = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
    ball = sum((g / max(r, 1)) ** 2 for g, r in zip(grid, radius, strict=True)) <= 1.0
    # dilate only the mask's bounding box grown by the radius: the same voxels, a fraction of the work
    # (a whole torso volume took a second)
    box = tuple(slice(max(s.start - r, 0), min(s.stop + r, n))
                for s, r, n in zip(found, radius, mask.shape, strict=True))  # fmt: skip
    near = np.zeros_like(mask, dtype=bool)
    near[box] = ndimage.binary_dilation(mask[box], structure=ball)
    return near
