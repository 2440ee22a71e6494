"""Voxel grids: comparing them, measuring field-of-view overlap, resampling between them.

A grid is a shape plus the 4x4 affine mapping voxel indices to RAS world mm. Two
sequences of one case are on the same grid when their shapes agree and the world
positions of their grids' corners agree within a small tolerance; otherwise one is
resampled onto the other, in world coordinates, with MONAI's ``ResampleToMatch``.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from monai.data import MetaTensor
from monai.transforms import ResampleToMatch

from mednet.io.validation import spacing_from_affine

__all__ = ["Grid", "bounding_box", "fill_holes", "fov_overlap", "resample_to_grid"]

# Metadata that describes the file an image came from (mednet.io.read_image), kept through resampling.
_OWN_META = ("filename_or_obj", "notes", "format", "original_dtype")

# Corner positions may differ by this fraction of the smallest voxel size and still
# count as the same grid (headers store affines in float32).
_SAME_GRID_TOLERANCE = 0.01


@dataclass(frozen=True)
class Grid:
    """A 3D voxel grid.

    Attributes:
        shape: ``(x, y, z)`` voxel counts.
        affine: 4x4 voxel index -> RAS world mm.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray

    @classmethod
    def of(cls, image: MetaTensor) -> Grid:
        """The grid of a ``(C, x, y, z)`` MetaTensor."""
        return cls(tuple(int(s) for s in image.shape[1:]), np.asarray(image.affine, dtype=float))

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size along each axis, mm."""
        return tuple(float(s) for s in spacing_from_affine(self.affine))

    @property
    def orientation(self) -> str:
        """Orientation code of the array axes, e.g. ``"RAS"`` or ``"LPS"``; ``?`` for an axis without a direction."""
        try:
            codes = nib.aff2axcodes(self.affine)
        except (ValueError, np.linalg.LinAlgError):  # a non-finite affine
            return "???"
        return "".join(code or "?" for code in codes)

    def corners(self) -> np.ndarray:
        """World coordinates (mm) of the centres of the 8 corner voxels, shape ``(8, 3)``."""
        index = np.array(list(itertools.product(*[(0, n - 1) for n in self.shape])), dtype=float)
        return index @ self.affine[:3, :3].T + self.affine[:3, 3]

    def matches(self, other: Grid) -> bool:
        """Same shape, and corners within 1% of the smallest voxel size of each other."""
        if self.shape != other.shape:
            return False
        tolerance = _SAME_GRID_TOLERANCE * min(self.spacing + other.spacing)
        return bool(np.abs(self.corners() - other.corners()).max() <= tolerance)

    def describe(self) -> dict:
        """A JSON-ready summary: shape, spacing (mm), orientation, affine."""
        return {
            "shape": list(self.shape),
            "spacing_mm": [round(s, 4) for s in self.spacing],
            "orientation": self.orientation,
            "affine": np.round(self.affine, 4).tolist(),
        }


def fov_overlap(moving: Grid, reference: Grid, samples_per_axis: int = 24) -> float:
    """Fraction of the reference field of view that the moving grid covers.

    The reference grid is sampled at up to ``samples_per_axis`` points per axis; a
    point counts as covered when it falls inside the moving grid's voxels.

    Returns:
        A number in ``[0, 1]``.
    """
    axes = [np.linspace(0, n - 1, min(n, samples_per_axis)) for n in reference.shape]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    ref_to_moving = np.linalg.inv(moving.affine) @ reference.affine
    index = points @ ref_to_moving[:3, :3].T + ref_to_moving[:3, 3]
    inside = np.all((index >= -0.5) & (index <= np.asarray(moving.shape) - 0.5), axis=1)
    return float(inside.mean())


def resample_to_grid(image: MetaTensor, reference: MetaTensor, label: bool = False) -> MetaTensor:
    """Resample ``image`` onto ``reference``'s grid in world coordinates.

    Args:
        image: ``(C, x, y, z)`` MetaTensor on its own grid.
        reference: ``(C', x', y', z')`` MetaTensor whose grid is the target.
        label: nearest-neighbour interpolation (label maps) instead of trilinear.

    Returns:
        ``(C, x', y', z')`` MetaTensor with ``reference``'s affine; voxels outside
        ``image``'s field of view are 0. ``filename_or_obj``, ``notes``, ``format`` and
        ``original_dtype`` stay ``image``'s. An
        image already on the reference grid (see :meth:`Grid.matches`) is neither
        interpolated nor copied: the result holds ``image``'s voxels (the same memory,
        as MONAI's transforms that have nothing to change) with the reference's affine
        exactly, and metadata of its own (copying four BraTS-size volumes took 0.15 s a case).
    """
    if Grid.of(image).matches(Grid.of(reference)):
        out = MetaTensor(image.as_tensor(), meta=copy.copy(image.meta),
                         applied_operations=list(image.applied_operations))  # fmt: skip
        out.affine = reference.affine.clone()
        return out
    resample = ResampleToMatch(mode="nearest" if label else "bilinear", padding_mode="zeros")
    out = resample(image, img_dst=reference)
    # MONAI takes these from the reference: they describe the image's own file
    for key in _OWN_META:
        if key in image.meta:
            out.meta[key] = copy.deepcopy(image.meta[key])
    return out


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The slices of the smallest box holding every True voxel of ``mask`` (any ndim), or None when there is none.

    One reduction over the whole mask (along its last axis); the first axes' box from that
    projection, the last axis's span within the box only: on a BraTS-size map about twice
    as quick as a full reduction per axis.
    """
    mask = np.asarray(mask)
    if mask.ndim <= 1:
        hits = np.flatnonzero(mask)
        return (slice(int(hits[0]), int(hits[-1]) + 1),) if hits.size else None
    across = bounding_box(mask.any(axis=-1))
    if across is None:
        return None
    hits = np.flatnonzero(mask[across].any(axis=tuple(range(mask.ndim - 1))))
    return (*across, slice(int(hits[0]), int(hits[-1]) + 1))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with its holes filled: exactly :func:`scipy.ndimage.binary_fill_holes`, faster.

    A hole is a component of the background (face connectivity, as ``binary_fill_holes``)
    that does not reach the border. Only the mask's bounding box, padded with one ring of
    background, is looked at (everything outside it is background connected to that ring),
    and the background is labelled once instead of grown by repeated dilation: for a
    brain mask of a 240 x 240 x 155 volume about 3 times faster, for a small organ in a
    large volume far more.

    Args:
        mask: boolean array, any ndim.

    Returns:
        A new boolean array of the same shape.
    """
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    out = mask.copy()
    box = bounding_box(mask)
    if box is None:
        return out
    inside = np.pad(mask[box], 1, constant_values=False)
    background, count = ndimage.label(~inside)
    outer = np.zeros(count + 1, dtype=bool)
    for axis in range(inside.ndim):
        for index in (0, -1):
            outer[np.take(background, index, axis=axis)] = True
    holes = ~outer[background]  # label 0 (the mask) is not outer: set below
    holes &= ~inside
    out[box] |= holes[tuple(slice(1, -1) for _ in range(inside.ndim))]
    return out
