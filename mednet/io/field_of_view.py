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
it meets the scan's content lie on at most :data:`MAX_PLANES` faces of a convex box (planes
holding them within the band a plane leaves on the grid, each with all the content on one
side), on a coarse grid first, then again on the full grid. :func:`fill_from_nearest` then
gives each of its voxels the values of the nearest voxel outside it, for the network only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = ["MAX_PLANES", "MIN_WEDGE_FRACTION", "field_of_view_bytes", "fill_from_nearest", "outside_field_of_view"]

#: A reformatted box's content is a parallelepiped: its outside meets it on at most six planes.
MAX_PLANES = 6
#: Zero regions smaller than this fraction of the volume are left as they are (a few zeros
#: at the edge change nothing a network sees).
MIN_WEDGE_FRACTION = 0.005
#: Fraction of the interface voxels the planes must explain.
EXPLAINED = 0.97
#: Fraction of the content allowed on the wrong side of a plane (the acquired box is convex:
#: all of it lies on one side of each of its faces).
WRONG_SIDE = 0.01
#: Volumes thinner than this along an axis (single slices, slabs of two) are left alone:
#: every zero voxel of theirs lies in a plane with content.
MIN_AXIS = 3
#: Plane hypotheses drawn per plane (seeded: the same image gives the same answer); half
#: from three points anywhere, half from a point and two of its neighbours.
HYPOTHESES = 256
#: Best-scoring hypotheses refitted per plane; the one holding the most points after its
#: refit is the face (a near-miss hypothesis of a smaller face can outscore the largest
#: face's before the refit, and each face must carry its share).
REFINED = 8
#: Interface voxels kept for the plane search (evenly spread): enough to see six faces.
MAX_POINTS = 60_000
#: Voxels of the mask's box that :func:`fill_from_nearest` searches one by one; a larger box is
#: searched on a coarser grid (16 M voxels: 192 MB of indices, a few seconds).
FILL_VOXELS = 16_000_000
#: Slices along the first axis that :func:`fill_from_nearest` writes at a time.
SLAB = 16
#: Peak memory of :func:`outside_field_of_view` per voxel of the grid: the zero mask, its
#: components (int32) and the masks built from them (12 to 18 bytes per voxel more from 2 M
#: voxels up, measured with ``tracemalloc``; the channels are compared one at a time).
FIND_BYTES_PER_VOXEL = 20
#: ... plus the plane search's, whatever the grid: blocks of :data:`MAX_POINTS` x 32 distances
#: (float64), the points' k-d tree.
FIND_FIXED_BYTES = 32_000_000
#: Peak memory of :func:`fill_from_nearest`'s search per voxel of the box it searches (at most
#: :data:`FILL_VOXELS`): nearest indices (3 x int32) and the slab's look-ups.
FILL_SEARCH_BYTES_PER_VOXEL = 16


def _coarse_indices(shape: Sequence[int]) -> list[np.ndarray]:
    """Per axis, every second index along axes of at least 64 voxels (the last one too), else every index.

    An eighth of the work on a 240 x 240 x 155 scan; the last index keeps a band of zeros at
    the far edge in sight.
    """
    return [np.unique(np.r_[0:n:2, n - 1]) if n >= 64 else np.arange(n) for n in shape]


def field_of_view_bytes(shape: Sequence[int], itemsize: int = 4) -> int:
    """Memory that finding and filling the zeros beyond a ``(C, x, y, z)`` image's field of view may take at most.

    The larger of the search (:data:`FIND_BYTES_PER_VOXEL` per voxel of the grid and
    :data:`FIND_FIXED_BYTES`) and the
    fill: the filled copy and the tensor returned (``2 x C x itemsize`` per voxel), the
    mask found, and the nearest-voxel search (:data:`FILL_SEARCH_BYTES_PER_VOXEL` per voxel of
    the box searched, at most :data:`FILL_VOXELS`). An upper bound: the peaks measured with
    ``tracemalloc`` (1 to 4 channels, 0.6 to 18 M voxels) were 0.4 to 0.85 of it, the search
    adding 12 to 18 bytes per voxel from 2 M voxels up (``tests/io/test_field_of_view.py``).

    Args:
        shape: ``(C, x, y, z)``.
        itemsize: bytes per voxel value of the image (4 for float32).
    """
    channels, voxels = int(shape[0]), int(np.prod([int(s) for s in shape[1:]], dtype=np.int64))
    fill = voxels * (2 * channels * itemsize + 1) + min(voxels, FILL_VOXELS) * FILL_SEARCH_BYTES_PER_VOXEL
    return int(max(voxels * FIND_BYTES_PER_VOXEL + FIND_FIXED_BYTES, fill))


def _touches_border(mask: np.ndarray) -> bool:
    return any(mask.take(i, axis=a).any() for a in range(mask.ndim) for i in (0, -1))


def _border_labels(labels: np.ndarray) -> np.ndarray:
    return np.unique(np.concatenate([labels.take(i, axis=a).ravel() for a in range(labels.ndim) for i in (0, -1)]))


def _members(labels: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """``np.isin(labels, ks)`` for the labels of ``ndimage.label``: one look-up per voxel."""
    table = np.zeros(int(labels.max()) + 1, dtype=bool)
    table[np.asarray(ks, dtype=np.intp)] = True
    return table[labels]


def _tolerance(normals: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Half-width (mm) of the band of voxels a plane of each normal (``(h, 3)``) leaves next to it, with a margin.

    The zero voxels next to content lie within one voxel's extent along the normal,
    ``max_i |n_i| step_i``: a plane through the band's middle holds them all within half of it.
    """
    return 0.6 * np.max(np.abs(normals) * step, axis=-1)


def _hypotheses(points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``HYPOTHESES`` candidate planes through three of ``points`` (at least 3) each: unit normals, offsets."""
    half = HYPOTHESES // 2
    first = rng.integers(0, len(points), size=HYPOTHESES)
    picks = rng.integers(0, len(points), size=(HYPOTHESES, 3))
    picks[:, 0] = first
    k = min(200, len(points))  # the second half: two of each first point's k nearest points
    near = cKDTree(points).query(points[first[half:]], k=k)[1].reshape(HYPOTHESES - half, k)
    picks[half:, 1:] = np.take_along_axis(near, rng.integers(1, k, size=(HYPOTHESES - half, 2)), axis=1)
    corners = points[picks]  # (h, 3 points, 3)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    lengths = np.linalg.norm(normals, axis=1)
    good = lengths > 1e-9
    normals = normals[good] / lengths[good, None]
    return normals, np.einsum("hk,hk->h", normals, corners[good, 0])


def _refit(points: np.ndarray, inliers: np.ndarray) -> tuple[np.ndarray, float]:
    """The least-squares plane of ``points[inliers]``: unit normal and offset."""
    centroid = points[inliers].mean(axis=0)
    normal = np.linalg.svd(points[inliers] - centroid, full_matrices=False)[2][-1]
    return normal, float(normal @ centroid)


def _refined(points: np.ndarray, normal: np.ndarray, offset: float,
             step: np.ndarray) -> tuple[np.ndarray, float, np.ndarray] | None:  # fmt: skip
    """A plane hypothesis refitted on its inliers, twice (the band's middle plane): normal, offset, inliers.

    The first refit takes the points within twice the band's half-width, the second within it.

    ``None`` when fewer than three points lie in its band.
    """
    for widen in (2.0, 1.0):  # a wider band first: a slightly tilted hypothesis still takes the whole face
        inliers = np.abs(points @ normal - offset) <= widen * _tolerance(normal, step)
        if inliers.sum() < 3:
            return None
        normal, offset = _refit(points, inliers)
    return normal, offset, np.abs(points @ normal - offset) <= _tolerance(normal, step)


def _faces(points: np.ndarray, content: np.ndarray, step: np.ndarray, rng: np.random.Generator) -> bool:
    """Whether at most :data:`MAX_PLANES` faces of a convex box hold :data:`EXPLAINED` of ``points``.

    ``points``: ``(n, 3)`` interface voxels (mm); ``content``: ``(m, 3)`` content voxels (mm).
    Each plane must carry its share of the points still to explain and have the content on
    one side (all but :data:`WRONG_SIDE` of it).
    """
    remaining = points
    total = len(points)
    for planes_left in range(MAX_PLANES, 0, -1):
        needed = len(remaining) - (1.0 - EXPLAINED) * total  # points still to explain by planes_left planes
        if needed <= 0:
            return True
        if len(remaining) < 3:
            return False
        normals, offsets = _hypotheses(remaining, rng)
        if not len(normals):
            return False
        tolerance = _tolerance(normals, step)
        counts = np.zeros(len(normals), dtype=np.int64)
        for start in range(0, len(normals), 32):  # (n, 32) distances at a time
            block = np.abs(remaining @ normals[start : start + 32].T - offsets[start : start + 32])
            counts[start : start + 32] = (block <= tolerance[start : start + 32]).sum(axis=0)
        fitted = [_refined(remaining, normals[k], offsets[k], step) for k in np.argsort(counts)[::-1][:REFINED]]
        fitted = [f for f in fitted if f is not None]
        if not fitted:
            return False
        normal, offset, inliers = max(fitted, key=lambda f: int(f[2].sum()))  # the face holding the most
        tolerance = float(_tolerance(normal, step))
        if inliers.sum() < needed / planes_left:
            return False
        side = content @ normal - offset
        if np.median(side) < 0:
            side = -side
        if np.mean(side < -tolerance) > WRONG_SIDE:  # content on both sides: not a face of the acquired box
            return False
        remaining = remaining[~inliers]
    return len(remaining) <= (1.0 - EXPLAINED) * total


def outside_field_of_view(
    image: np.ndarray,
    spacing: Sequence[float],
    min_fraction: float = MIN_WEDGE_FRACTION,
    before_search: Callable[[], None] | None = None,
) -> np.ndarray | None:
    """The voxels of ``image`` beyond the scan's acquired field of view, if it has such.

    A zero region counts when it is exactly 0 in every present channel, connected to the
    volume's border, at least ``min_fraction`` of the volume, and meets the content on at
    most :data:`MAX_PLANES` faces of a convex box: planes that each hold their voxels within
    the band a plane leaves on the grid and have all the content on one side. The test runs
    on every second voxel along axes of at least 64 voxels; the regions it accepts are then
    taken whole on the full grid, unless a region it rejected joins them there, and tested
    again there (zeros the coarse grid could not see, e.g. a lost slice at an odd index,
    change a region's faces).

    Args:
        image: ``(C, x, y, z)``, the case's sequences on one grid (all-zero channels, the
            missing sequences, are left out of the test).
        spacing: the voxel size in mm, ``(3,)``.
        min_fraction: zero regions smaller than this fraction of the volume are not reported.
        before_search: called once the cheap tests (a zero mask, its size, whether it meets
            the border) leave a region to search, before anything else is allocated: e.g. a
            memory check (:func:`field_of_view_bytes`) that raises. Most scans never get there.

    Returns:
        An ``(x, y, z)`` bool mask of the voxels beyond the field of view, or ``None`` when
        there are none (also for volumes thinner than :data:`MIN_AXIS` voxels).
    """
    image = np.asarray(image)
    if image.ndim != 4 or len(spacing) != 3:
        raise ValueError(f"outside_field_of_view: expected a (C, x, y, z) image and 3 spacings, found shape "
                         f"{tuple(image.shape)} and spacing {tuple(spacing)}")  # fmt: skip
    if min(image.shape[1:]) < MIN_AXIS:
        return None
    present = [c for c in range(image.shape[0]) if image[c].any()]
    if not present:
        return None
    zero = image[present[0]] == 0
    for c in present[1:]:
        zero &= image[c] == 0
    if zero.sum() < min_fraction * zero.size or not _touches_border(zero):
        return None
    if before_search is not None:
        before_search()
    spacing = np.asarray(spacing, dtype=float)
    indices = _coarse_indices(zero.shape)
    coarse_grid = np.ix_(*indices)
    coarse = zero[coarse_grid]
    components, _ = ndimage.label(coarse)
    sizes = np.bincount(components.ravel())
    share = zero.size / coarse.size  # full-grid voxels per coarse voxel
    step = np.array([(ix[1] - ix[0] if len(ix) > 1 else 1) for ix in indices]) * spacing
    content = _content(components, indices, spacing)
    boxes = ndimage.find_objects(components)
    accepted, rejected = [], []
    for k in _border_labels(components):
        if k and sizes[k] * share >= min_fraction * zero.size:
            faces = _region_has_faces(components, int(k), boxes[k - 1], content, indices, step, spacing)
            (accepted if faces else rejected).append(k)
    if not accepted:
        return None
    # on the full grid: the zero components that hold an accepted region's voxel and no rejected one's ...
    full, _ = ndimage.label(zero)
    seeds = np.zeros(zero.shape, dtype=bool)
    seeds[coarse_grid] = _members(components, accepted)
    vetoes = np.zeros(zero.shape, dtype=bool)
    vetoes[coarse_grid] = _members(components, rejected)
    keep = np.setdiff1d(np.intersect1d(np.unique(full[seeds]), _border_labels(full)), np.unique(full[vetoes]))
    # ... and that pass the same test there: zeros the coarse grid could not see (a lost slice at an odd
    # index joined to a wedge) change the region's faces
    content = _content(full, None, spacing)
    big = np.bincount(full.ravel()) >= min_fraction * zero.size
    boxes = ndimage.find_objects(full)
    keep = [k for k in keep if k and big[k] and _region_has_faces(full, int(k), boxes[k - 1], content, None,
                                                                  spacing, spacing)]  # fmt: skip
    return _members(full, keep) if keep else None


def _mm(voxels: np.ndarray, at: list[np.ndarray] | None, spacing: np.ndarray) -> np.ndarray:
    """Voxel indices ``(n, 3)`` of a grid to mm on the full grid (``at``: each axis's full index; None: full)."""
    return (np.stack([at[a][voxels[:, a]] for a in range(3)], axis=1) if at else voxels) * spacing


def _content(labels: np.ndarray, at: list[np.ndarray] | None, spacing: np.ndarray) -> np.ndarray:
    """About 20 000 content voxels (label 0) evenly spread, in mm: ``(m, 3)``."""
    stride = max(1, round((labels.size / 400_000) ** (1 / 3)))  # a sparse grid first: no full argwhere
    voxels = np.argwhere(labels[::stride, ::stride, ::stride] == 0) * stride
    return _mm(voxels[:: max(1, len(voxels) // 20_000)], at, spacing)


def _region_has_faces(labels: np.ndarray, k: int, box: tuple[slice, ...], content: np.ndarray, at,
                      step: np.ndarray, spacing: np.ndarray) -> bool:  # fmt: skip
    """Whether region ``k`` of ``labels`` meets the content (label 0) on the faces of a convex box (:func:`_faces`).

    ``box``: the region's bounding box (``find_objects``); ``content``: :func:`_content` of
    ``labels``; ``at``: per axis, the full-grid index of each of ``labels``' indices
    (``None``: ``labels`` is the full grid); ``step``: the mm between ``labels``' neighbouring voxels.
    """
    grown = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in box)
    near = ndimage.binary_dilation(labels[grown] == 0)
    voxels = np.argwhere((labels[grown] == k) & near)  # its voxels next to content
    voxels = voxels[:: max(1, len(voxels) // MAX_POINTS)] + [s.start for s in grown]
    if len(voxels) < 3 or not len(content):
        return False
    return _faces(_mm(voxels, at, spacing), content, step, np.random.default_rng((0, k)))


def _fill_strides(box_shape: Sequence[int], spacing: np.ndarray, budget: int) -> np.ndarray:
    """Per-axis strides (voxels) of the grid the fill searches: ``1`` while the box holds at most ``budget`` voxels.

    Beyond it, the coarsest grid is avoided: strides follow one step in mm (about the same
    along every axis), the smallest that brings the box within ``budget``.
    """
    box_shape = np.asarray(box_shape)
    strides = np.ones(3, dtype=int)
    step = float(spacing.min())
    while np.prod(-(-box_shape // strides)) > budget:
        step *= 1.25
        strides = np.maximum(1, np.round(step / spacing)).astype(int)
    return strides


def _grown(box: tuple[slice, ...], by: np.ndarray) -> tuple[slice, ...]:
    """``box`` grown by ``by[a]`` voxels on each side along each axis ``a`` (clipped at 0; numpy clips the end)."""
    return tuple(slice(max(0, s.start - int(b)), s.stop + int(b)) for s, b in zip(box, by, strict=True))


def fill_from_nearest(image: np.ndarray, mask: np.ndarray, spacing: Sequence[float] | None = None,
                      budget: int = FILL_VOXELS) -> np.ndarray:  # fmt: skip
    """``image`` (``(C, x, y, z)``) with each voxel in ``mask`` given the values of the nearest voxel outside it.

    Nearest in mm when ``spacing`` is given (``(3,)``), else in voxels. The search runs in
    ``mask``'s bounding box grown by one voxel, where the nearest outside voxel always lies,
    and holds 12 bytes per voxel of that box. A box of more than ``budget`` voxels (a large
    volume's corner wedges: 80 M voxels take 24 s and 1.3 GB voxel by voxel, 3.3 s and
    0.5 GB so; ``scripts/benchmark_field_of_view.py``) is searched on a grid of
    every ``s``-th voxel per axis instead (strides of about one step in mm, the smallest
    within ``budget``; the box then grows by a stride): each voxel of ``mask`` gets the values
    of the grid's outside voxel nearest to its own nearest grid point, at most about half a
    grid cell's diagonal farther than the nearest outside voxel. The fill is for the network
    only (every bundle resamples to voxels of a millimetre or more, and labels nothing there).
    Voxels outside ``mask`` are never changed.
    """
    if budget < 1:
        raise ValueError(f"fill_from_nearest: expected a budget of at least 1 voxel, found {budget}")
    if not mask.any():
        return np.array(image, copy=True)
    spacing_mm = np.ones(3) if spacing is None else np.asarray(spacing, dtype=float)
    found = ndimage.find_objects(mask.astype(np.uint8))[0]
    strides = _fill_strides([s.stop - s.start + 2 for s in found], spacing_mm, budget)
    if not (~mask[_grown(found, strides)][tuple(slice(None, None, st) for st in strides)]).any():
        strides = np.ones(3, dtype=int)  # the grid misses every outside voxel of a thin box: search every voxel
    box, grid = _grown(found, strides), tuple(slice(None, None, st) for st in strides)
    indices = ndimage.distance_transform_edt(mask[box][grid], sampling=spacing_mm * strides,
                                             return_distances=False, return_indices=True)  # fmt: skip
    filled = np.array(image, copy=True, order="C")  # C order: its channels' flat views below are views
    shape = mask[box].shape
    # each box voxel's nearest grid point, then that point's nearest outside grid point, in box voxels
    nearest = [np.minimum(np.round(np.arange(n) / st).astype(np.intp), len_ - 1)
               for n, st, len_ in zip(shape, strides, indices.shape[1:], strict=True)]  # fmt: skip
    flat = [c.reshape(-1) for c in filled]  # views: writing them writes ``filled``; sources lie outside ``mask``
    step = np.array([filled.shape[2] * filled.shape[3], filled.shape[3], 1], dtype=np.intp)  # flat index per axis
    for x0 in range(0, shape[0], SLAB):  # slabs along the first axis: memory stays bounded
        inside = mask[box][x0 : x0 + SLAB]
        if not inside.any():
            continue
        at = np.ix_(nearest[0][x0 : x0 + SLAB], nearest[1], nearest[2])
        where = np.nonzero(inside)
        target = np.zeros(len(where[0]), dtype=np.intp)
        source = np.zeros_like(target)
        for axis in range(3):
            origin = box[axis].start + (x0 if axis == 0 else 0)
            target += (where[axis] + origin) * step[axis]
            source += (indices[axis][at][inside].astype(np.intp) * strides[axis] + box[axis].start) * step[axis]
        for channel in flat:
            channel[target] = channel[source]
    return filled
