"""Voxels beyond an acquired field of view: exact zeros that meet the scan along planes.

A scan reformatted onto another grid (a PACS export onto axis-aligned axes, a
``resample_to_output``) is the bounding box of the rotated field of view: its corners lie
outside what the scanner acquired and are filled with exact zeros. Such a wedge cuts
through the anatomy along a plane; a network that never saw one finds lesions along its
edge (``docs/reliability.md``), even where it is one or two voxels thin. Some scanners and
converters also leave bands of zeros along the image's edges. Skull-stripped (BraTS-like)
scans and scanners that mask the air have exact-zero regions too, but those follow the
brain or the body surface, which is not a handful of planes.

:func:`outside_field_of_view` tells them apart: a zero region (exactly 0 in every channel
given) connected to the volume's border lies beyond the field of view when the voxels where
it meets the scan's content lie on at most :data:`MAX_PLANES` planes (the faces of the
acquired box), within a voxel. :func:`fill_from_nearest` then gives each of its voxels the
values of the nearest acquired voxel, for the network only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["MAX_PLANES", "MIN_WEDGE_FRACTION", "fill_from_nearest", "outside_field_of_view"]

#: A reformatted box's content is a parallelepiped: its outside meets it on at most six planes.
MAX_PLANES = 6
#: Zero regions smaller than this fraction of the volume are left as they are (a few zeros
#: at the edge change nothing a network sees).
MIN_WEDGE_FRACTION = 0.005
#: Fraction of the interface voxels the planes must explain.
EXPLAINED = 0.97
#: Plane hypotheses drawn per plane (seeded: the same image gives the same answer).
HYPOTHESES = 256


def _strides(shape: Sequence[int]) -> tuple[int, ...]:
    """2 along axes of at least 64 voxels (a quarter of the work on a 240 x 240 x 155 scan), else 1."""
    return tuple(2 if n >= 64 else 1 for n in shape)


def _touches_border(mask: np.ndarray) -> bool:
    return any(mask.take(i, axis=a).any() for a in range(mask.ndim) for i in (0, -1))


def _planes(points: np.ndarray, tolerance: float, rng: np.random.Generator) -> list[np.ndarray] | None:
    """Unit normals of at most :data:`MAX_PLANES` planes holding nearly all ``points``, or ``None``.

    ``points``: ``(n, 3)`` in mm; a plane holds a point within ``tolerance`` mm; the planes
    must hold :data:`EXPLAINED` of the points, each plane at least its share.
    """
    remaining = points
    total = len(points)
    normals_found: list[np.ndarray] = []
    for planes_left in range(MAX_PLANES, 0, -1):
        if len(remaining) <= (1.0 - EXPLAINED) * total:
            return normals_found
        needed = len(remaining) - (1.0 - EXPLAINED) * total  # points still to explain by planes_left planes
        picks = remaining[rng.integers(0, len(remaining), size=(HYPOTHESES, 3))]  # (h, 3 points, 3)
        normals = np.cross(picks[:, 1] - picks[:, 0], picks[:, 2] - picks[:, 0])
        lengths = np.linalg.norm(normals, axis=1)
        good = lengths > 1e-6
        if not good.any():
            return None
        normals = normals[good] / lengths[good, None]
        offsets = np.einsum("hk,hk->h", normals, picks[good, 0])
        counts = np.zeros(len(normals), dtype=np.int64)
        for start in range(0, len(normals), 32):  # (32, n) distances at a time
            block = np.abs(remaining @ normals[start : start + 32].T - offsets[start : start + 32])
            counts[start : start + 32] = (block <= tolerance).sum(axis=0)
        best = int(np.argmax(counts))
        # the best plane must carry its share of what is left to explain
        if counts[best] < needed / planes_left:
            return None
        inliers = np.abs(remaining @ normals[best] - offsets[best]) <= tolerance
        # refit on the inliers (least squares, through their centroid) and take its inliers
        centroid = remaining[inliers].mean(axis=0)
        normal = np.linalg.svd(remaining[inliers] - centroid, full_matrices=False)[2][-1]
        refit = np.abs((remaining - centroid) @ normal) <= tolerance
        remaining = remaining[~(refit | inliers)]
        normals_found.append(normal)
    return normals_found if len(remaining) <= (1.0 - EXPLAINED) * total else None


def outside_field_of_view(
    image: np.ndarray, spacing: Sequence[float], min_fraction: float = MIN_WEDGE_FRACTION
) -> np.ndarray | None:
    """The voxels of ``image`` beyond a reformatted scan's acquired field of view, if it has such.

    A zero region counts when it is exactly 0 in every present channel, connected to the
    volume's border, at least ``min_fraction`` of the volume, and meets the content on at
    most :data:`MAX_PLANES` planes, within a voxel of the coarse grid: the test runs on
    every second voxel along axes of at least 64 voxels (a quarter of the work on a BraTS
    scan), and the regions it finds are then taken whole on the full grid.

    Args:
        image: ``(C, x, y, z)``, the case's sequences on one grid (all-zero channels, the
            missing sequences, are left out of the test).
        spacing: the voxel size in mm, ``(3,)``.
        min_fraction: zero regions smaller than this fraction of the volume are not reported.

    Returns:
        An ``(x, y, z)`` bool mask of the voxels beyond the field of view, or ``None`` when
        there are none.
    """
    image = np.asarray(image)
    present = [c for c in range(image.shape[0]) if image[c].any()]
    if not present:
        return None
    zero = image[present[0]] == 0
    for c in present[1:]:
        zero &= image[c] == 0
    if zero.sum() < min_fraction * zero.size or not _touches_border(zero):
        return None
    strides = _strides(zero.shape)
    coarse_grid = tuple(slice(None, None, s) for s in strides)
    coarse = zero[coarse_grid]
    components, _ = ndimage.label(coarse)
    border = np.unique(np.concatenate([components.take(i, axis=a).ravel() for a in range(3) for i in (0, -1)]))
    sizes = np.bincount(components.ravel())
    step = np.asarray(strides) * np.asarray(spacing, dtype=float)
    interface = coarse & ndimage.binary_dilation(~coarse)  # zero voxels next to content
    rng = np.random.default_rng(0)
    wedges = []
    for k in border[border > 0]:
        if sizes[k] * np.prod(strides) < min_fraction * zero.size:
            continue
        points = np.argwhere(interface & (components == k)) * step
        if len(points) >= 3 and _planes(points, float(step.max()), rng) is not None:
            wedges.append(k)
    if not wedges:
        return None
    # on the full grid: the zero components connected to the border that hold a voxel of a region found
    full, _ = ndimage.label(zero)
    seeds = np.zeros(zero.shape, dtype=bool)
    seeds[coarse_grid] = np.isin(components, wedges)
    at_border = np.concatenate([full.take(i, axis=a).ravel() for a in range(3) for i in (0, -1)])
    keep = np.intersect1d(np.unique(full[seeds]), at_border)
    return np.isin(full, keep[keep > 0])


def fill_from_nearest(image: np.ndarray, mask: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
    """``image`` (``(C, x, y, z)``) with each voxel in ``mask`` given the values of the nearest voxel outside it.

    Nearest in mm when ``spacing`` is given (``(3,)``), else in voxels.
    """
    indices = ndimage.distance_transform_edt(mask, sampling=spacing, return_distances=False, return_indices=True)
    filled = np.array(image, copy=True)
    where = np.nonzero(mask)
    source = tuple(index[where] for index in indices)
    for c in range(filled.shape[0]):
        filled[c][where] = filled[c][source]
    return filled
