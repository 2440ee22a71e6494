"""Checks that an image read from disk is a usable 3D volume.

Each check returns the problems it finds as :class:`~mednet.errors.InvalidImageError`
objects rather than raising, so that :func:`mednet.io.read_image` can raise the first
one and ``mednet info`` can list them all.
"""

from __future__ import annotations

import math
import os

import numpy as np

from mednet.errors import InvalidImageError

__all__ = [
    "MAX_LABEL_VALUES",
    "SPACING_RANGE_MM",
    "check_affine",
    "check_values",
    "check_voxel_type",
    "spacing_from_affine",
    "squeeze_to_3d",
]

#: Voxel sizes outside this range (mm) are taken for a header error (metres or
#: micrometres written as millimetres, a zeroed field).
SPACING_RANGE_MM: tuple[float, float] = (0.05, 30.0)

#: A label map with more distinct values than this is taken for an intensity image
#: passed as a label map (whole-body atlases have a few hundred labels).
MAX_LABEL_VALUES = 1000

# Images become float32 tensors: labels above 2**24 would no longer be exact, and
# float64 values beyond float32's range would become infinite.
_FLOAT32_EXACT_INTEGERS = 2**24
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_voxel_type(path: os.PathLike | str, dtype: np.dtype) -> list[InvalidImageError]:
    """Problems with a voxel type: mednet reads one real number per voxel (integer, float or bool).

    Args:
        path: the file, named in errors.
        dtype: the dtype the header declares.

    Returns:
        The problems found, possibly none.
    """
    dtype = np.dtype(dtype)
    if dtype.fields:
        return [
            InvalidImageError(
                path,
                "colour voxels",
                expected="one real value per voxel (a grey-level volume)",
                found=f"a structured voxel type {', '.join(dtype.names or ())} ({dtype})",
            )
        ]
    if dtype.kind not in "biuf":
        return [
            InvalidImageError(
                path,
                "unsupported voxel type",
                expected="real numbers (integer or floating point)",
                found=f"{dtype} voxels" + (" (complex numbers)" if dtype.kind == "c" else ""),
            )
        ]
    return []


def spacing_from_affine(affine: np.ndarray) -> np.ndarray:
    """Voxel size along each array axis, in mm: the norms of the affine's first three columns."""
    return np.linalg.norm(np.asarray(affine, dtype=float)[:3, :3], axis=0)


def squeeze_to_3d(path: os.PathLike | str, array: np.ndarray) -> np.ndarray:
    """Bring a volume to ``(x, y, z)``, squeezing trailing singleton dimensions.

    A 4D file holding one volume, ``(x, y, z, 1)``, is squeezed; several volumes
    (a time series, a DWI acquisition) are refused, and so are 2D images, including a
    single slice stored as ``(x, y, 1)``.

    Args:
        path: the file, named in errors.
        array: the array as read, spatial axes first.

    Returns:
        The ``(x, y, z)`` array.

    Raises:
        InvalidImageError: not a single 3D volume.
    """
    shape = tuple(array.shape)
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim > 3:
        volumes = math.prod(array.shape[3:])
        raise InvalidImageError(
            path,
            "not a single 3D volume",
            expected="one 3D volume (x, y, z) or (x, y, z, 1)",
            found=f"{array.ndim}D array of shape {shape} holding {volumes} volumes; split it into one file per volume",
        )
    if array.ndim < 3 or min(array.shape) < 2:
        raise InvalidImageError(
            path,
            "not a 3D volume",
            expected="a 3D volume with at least 2 voxels along each axis",
            found=f"{'an empty array' if 0 in array.shape else 'a 2D image'} of shape {shape}",
        )
    return array


def check_affine(
    path: os.PathLike | str,
    affine: np.ndarray,
    header_spacing: np.ndarray | None = None,
    spacing_range: tuple[float, float] = SPACING_RANGE_MM,
) -> list[InvalidImageError]:
    """Problems with a volume's voxel-to-world affine.

    Args:
        path: the file, named in errors.
        affine: the 4x4 affine, voxel index -> world mm.
        header_spacing: the voxel sizes the header states, where it states them
            separately from the affine (NIfTI ``pixdim``), to catch zero or negative
            entries that the affine hides.
        spacing_range: plausible voxel sizes, mm.

    Returns:
        The problems found, possibly none.
    """
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        return [
            InvalidImageError(
                path,
                "invalid affine",
                expected="a finite 4x4 matrix",
                found=" ".join(np.array2string(affine, precision=3, separator=", ").split()),
            )
        ]
    problems = []
    if header_spacing is not None and np.any(np.asarray(header_spacing) <= 0):
        problems.append(
            InvalidImageError(
                path,
                "zero or negative voxel spacing in the header",
                expected="positive spacing",
                found=f"spacing {tuple(float(s) for s in header_spacing)}",
            )
        )
    spacing = spacing_from_affine(affine)
    lo, hi = spacing_range
    if np.any(spacing == 0):
        problems.append(
            InvalidImageError(
                path,
                "zero voxel spacing",
                expected="positive spacing",
                found=f"spacing {_mm(spacing)}",
            )
        )
    elif np.any(spacing < lo) or np.any(spacing > hi):
        problems.append(
            InvalidImageError(
                path,
                "implausible voxel spacing (wrong units in the header?)",
                expected=f"spacing between {lo:g} and {hi:g} mm",
                found=f"spacing {_mm(spacing)}",
            )
        )
    # A degenerate direction matrix: columns (nearly) parallel or zero.
    direction = affine[:3, :3] / np.where(spacing > 0, spacing, 1.0)
    if abs(np.linalg.det(direction)) < 1e-3:
        problems.append(
            InvalidImageError(
                path,
                "singular affine",
                expected="an invertible voxel-to-world matrix",
                found=f"determinant {np.linalg.det(affine[:3, :3]):.3g} for rows "
                + np.array2string(affine[:3], precision=3, separator=", ").replace("\n", ""),
            )
        )
    return problems


def check_values(path: os.PathLike | str, array: np.ndarray, kind: str) -> list[InvalidImageError]:
    """Problems with a volume's voxel values.

    Args:
        path: the file, named in errors.
        array: the ``(x, y, z)`` array.
        kind: ``"image"`` (intensities: finite, within float32's range, not constant) or
            ``"label"`` (label map: finite, non-negative integers below 2**24, at most
            :data:`MAX_LABEL_VALUES` distinct values; an empty map is allowed).

    Returns:
        The problems found, possibly none.
    """
    if problems := check_voxel_type(path, array.dtype):
        return problems
    if array.dtype == bool:
        array = array.view(np.uint8)
    finite = np.isfinite(array) if np.issubdtype(array.dtype, np.floating) else None
    if finite is not None and not finite.all():
        n_nan = int(np.isnan(array).sum())
        n_inf = int(np.isinf(array).sum())
        return [
            InvalidImageError(
                path,
                "non-finite voxel values",
                expected="finite values everywhere",
                found=f"{n_nan} NaN and {n_inf} Inf voxels of {array.size}",
            )
        ]
    lo, hi = array.min(), array.max()
    if np.issubdtype(array.dtype, np.floating) and max(-float(lo), float(hi)) > _FLOAT32_MAX:
        return [
            InvalidImageError(
                path,
                "values beyond the float32 range",
                expected=f"magnitudes below {_FLOAT32_MAX:.3g} (mednet computes in float32)",
                found=f"values from {float(lo):.3g} to {float(hi):.3g}",
            )
        ]
    if kind == "image":
        if lo == hi:
            return [
                InvalidImageError(
                    path,
                    "constant image",
                    expected="varying intensities",
                    found=f"every voxel equal to {lo:g}",
                )
            ]
        return []
    problems = []
    if np.issubdtype(array.dtype, np.floating):
        fractional = array != np.round(array)
        if fractional.any():
            example = float(array[fractional].flat[0])
            problems.append(
                InvalidImageError(
                    path,
                    "label map with non-integer values",
                    expected="integer labels",
                    found=f"{int(fractional.sum())} voxels with fractional values, e.g. {example:g} "
                    "(an intensity image passed as a label, or a label map resampled with interpolation?)",
                )
            )
    if lo < 0:
        problems.append(
            InvalidImageError(path, "label map with negative values", expected="labels >= 0", found=f"minimum {lo:g}")
        )
    if hi > _FLOAT32_EXACT_INTEGERS:
        problems.append(
            InvalidImageError(
                path,
                "label values too large",
                expected=f"labels up to {_FLOAT32_EXACT_INTEGERS} (held exactly in float32)",
                found=f"maximum {float(hi):.10g}",
            )
        )
    if not problems and array.dtype.itemsize > 1:
        # a cheap bound first: a map whose values span fewer than the limit cannot exceed it
        values = np.unique(array) if float(hi) - float(lo) >= MAX_LABEL_VALUES else ()
        if len(values) > MAX_LABEL_VALUES:
            problems.append(
                InvalidImageError(
                    path,
                    "label map with too many distinct values",
                    expected=f"at most {MAX_LABEL_VALUES} labels",
                    found=f"{len(values)} distinct values from {float(lo):g} to {float(hi):g} "
                    "(an intensity image passed as a label map?)",
                )
            )
    return problems


def _mm(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ") mm"
