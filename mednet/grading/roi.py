"""Inputs of the grading stage: the lesion's axial slices, cropped and resized.

Paper B grades each patient from the axial slice with the largest tumour area and its
neighbours, 20 slices in all, converted to 224 x 224 x 3 images for an ImageNet-pretrained
network. :func:`extract_slices` does this (all three papers grade 2D slices).

Where the lesion labels come from:

* in **training** and evaluation they are the ground-truth label map;
* at **inference** they are the localisation stage's predicted label map.

Either way they lie on the image's voxel grid: ``labels`` has the image's spatial shape
``(x, y, z)`` (resample the label map to the image first if it was produced on another grid).
The ``z`` axis (the third array axis) is taken as the axial, slice axis.

Orientation: slices are taken as ``image[c, :, :, z]`` and not flipped or transposed, so an
output slice's rows (``H``) follow the array's ``x`` axis and its columns (``W``) its ``y``
axis; use the same function in training and at inference and the orientation is consistent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from monai.transforms import BorderPad, NormalizeIntensity, Resize, SpatialCrop

from mednet.io.validation import spacing_from_affine

__all__ = ["crop_box", "crop_slices", "extract_slices", "lesion_slices", "slice_plan"]

#: Default margin around the lesion box, as a fraction of the box size.
DEFAULT_MARGIN_FRACTION = 0.25
#: Default smallest margin, in voxels, whatever the lesion size.
DEFAULT_MIN_MARGIN_VOXELS = 3
_EPS = 1e-6


def _to_numpy(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().as_subclass(torch.Tensor).numpy()
    return np.asarray(array)


def _labels_3d(labels) -> np.ndarray:
    """Labels as an ``(x, y, z)`` array; a leading channel of size 1 (``read_image`` output) is dropped."""
    labels = _to_numpy(labels)
    if labels.ndim == 4 and labels.shape[0] == 1:
        labels = labels[0]
    if labels.ndim != 3:
        raise ValueError(f"labels must be (x, y, z) (or (1, x, y, z)), got shape {labels.shape}")
    return labels


def _lesion_mask(labels: np.ndarray, lesion_values: int | Sequence[int]) -> np.ndarray:
    values = [lesion_values] if np.isscalar(lesion_values) else list(lesion_values)
    if not values:
        raise ValueError("lesion_values is empty: name the label values of the lesion")
    mask = np.isin(labels, values)
    if not mask.any():
        raise ValueError(f"no lesion voxel: the label map holds none of the lesion values {values}")
    return mask


def _image_4d(image, labels: np.ndarray) -> np.ndarray:
    array = _to_numpy(image)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(f"image must be (C, x, y, z), got shape {array.shape}")
    if array.shape[1:] != labels.shape:
        raise ValueError(
            f"image grid {array.shape[1:]} differs from the labels' {labels.shape}: "
            "resample the label map onto the image first"
        )
    return array.astype(np.float32, copy=False)


def _spacing(image, spacing: Sequence[float] | None) -> np.ndarray:
    if spacing is not None:
        out = np.asarray(spacing, dtype=float)
        if out.shape != (3,) or np.any(out <= 0) or not np.all(np.isfinite(out)):
            raise ValueError(f"spacing must be three positive numbers (mm), got {spacing}")
        return out
    affine = getattr(image, "affine", None)
    if affine is not None:
        return spacing_from_affine(_to_numpy(affine))
    return np.ones(3)


def lesion_slices(
    labels, lesion_values: int | Sequence[int], n: int = 20, min_area_fraction: float | None = None
) -> list[int]:
    """The ``n`` axial slices around the slice of largest lesion area (paper B).

    The window is contiguous and centred on the largest slice: for even ``n`` it holds
    ``n // 2`` slices below the largest and ``n // 2 - 1`` above (for ``n = 20``: 10 below,
    the largest, 9 above). Near the bottom or top of the volume the window is shifted, not
    truncated, so that it still holds ``n`` slices. A volume with fewer than ``n`` slices
    gives all its slices. Ties in area go to the lowest slice.

    ``min_area_fraction`` keeps only slices that show the lesion: those whose lesion area
    exceeds this fraction of the largest area (``0.0``: any lesion voxel), at most ``n``,
    the nearest to the largest slice first (ties to the lower slice). Paper B's 20 slices
    lie inside the tumour at BraTS' 1 mm spacing; at 4-6 mm a window of 20 reaches far
    beyond a small lesion, and slices of normal tissue labelled with the lesion's grade
    are label noise in training and dilute the patient's mean at inference. Paper A
    ("axial slices containing the lesion") is ``min_area_fraction=0.0``.

    Args:
        labels: ``(x, y, z)`` integer label map (or ``(1, x, y, z)``); ``z`` is the axial axis.
        lesion_values: label value(s) of the lesion; their union is the lesion.
        n: number of slices (at most, with ``min_area_fraction``).
        min_area_fraction: None for the contiguous window of ``n``; a fraction in ``[0, 1)``
            to keep only slices showing enough lesion (see above).

    Returns:
        ``min(n, z)`` slice indices, ascending (with ``min_area_fraction``: between 1 and
        ``n``, the largest slice always among them).

    Raises:
        ValueError: no lesion voxel, ``n < 1``, or a fraction outside ``[0, 1)``.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if min_area_fraction is not None and not 0.0 <= float(min_area_fraction) < 1.0:
        raise ValueError(f"min_area_fraction must lie in [0, 1), got {min_area_fraction}")
    labels = _labels_3d(labels)
    area = _lesion_mask(labels, lesion_values).sum(axis=(0, 1))
    if min_area_fraction is not None:
        largest = int(np.argmax(area))
        showing = np.flatnonzero(area > float(min_area_fraction) * area[largest])
        nearest = sorted(showing, key=lambda z: (abs(int(z) - largest), int(z)))[:n]
        return sorted(int(z) for z in nearest)
    depth = labels.shape[2]
    if depth <= n:
        return list(range(depth))
    largest = int(np.argmax(area))
    start = min(max(largest - n // 2, 0), depth - n)
    return list(range(start, start + n))


def _square_box(
    low: np.ndarray, high: np.ndarray, spacing: np.ndarray, margin_mm: float | None, margin_fraction: float, min_margin
) -> list[tuple[int, int]]:
    """A box, square in mm, around the inclusive voxel range ``low..high`` of each axis (half-open result)."""
    extent = high - low + 1
    side_mm = float(np.max(extent * spacing))
    margin = margin_fraction * side_mm if margin_mm is None else float(margin_mm)
    margin = max(margin, min_margin * float(np.max(spacing)))
    total_mm = side_mm + 2 * margin
    box = []
    for lo, e, s in zip(low, extent, spacing, strict=True):
        length = max(math.ceil(total_mm / s - _EPS), int(e))
        start = int(lo) - (length - int(e)) // 2
        box.append((start, start + length))
    return box


def _check_margin(margin_fraction: float | None, margin_mm: float | None, min_margin_voxels: int) -> float:
    if margin_fraction is not None and margin_mm is not None:
        raise ValueError("give margin_fraction or margin_mm, not both")
    fraction = DEFAULT_MARGIN_FRACTION if margin_fraction is None else float(margin_fraction)
    if fraction < 0 or (margin_mm is not None and margin_mm < 0) or min_margin_voxels < 0:
        raise ValueError("margins must not be negative")
    return fraction


def crop_box(
    labels,
    lesion_values: int | Sequence[int],
    slices: Sequence[int] | None = None,
    *,
    margin_fraction: float | None = None,
    margin_mm: float | None = None,
    spacing: Sequence[float] | None = None,
    min_margin_voxels: int = DEFAULT_MIN_MARGIN_VOXELS,
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The in-plane crop box of :func:`extract_slices`: square, around the lesion, with a margin.

    The lesion's in-plane bounding box is taken over ``slices`` (all slices when None). The
    crop is a square (in mm when ``spacing`` is given, else in voxels) centred on it whose side
    is the bounding box's longer side plus a margin on each side: ``margin_mm``, or else
    ``margin_fraction`` (default 0.25) of that longer side, and never less than
    ``min_margin_voxels`` voxels. The box may extend past the image (the crop is then
    zero-padded).

    Args:
        labels: ``(x, y, z)`` integer label map (or ``(1, x, y, z)``).
        lesion_values: label value(s) of the lesion.
        slices: axial slice indices the bounding box is taken over.
        margin_fraction: margin as a fraction of the bounding box's longer side.
        margin_mm: margin in mm (in voxels when no ``spacing``); excludes ``margin_fraction``.
        spacing: voxel size ``(x, y, z)`` in mm.
        min_margin_voxels: smallest margin, in voxels.

    Returns:
        ``((x_start, x_stop), (y_start, y_stop))``, half-open voxel ranges, possibly outside the image.

    Raises:
        ValueError: no lesion voxel in ``slices``, both margins given, or a negative margin.
    """
    fraction = _check_margin(margin_fraction, margin_mm, min_margin_voxels)
    labels = _labels_3d(labels)
    if slices is not None:
        labels = labels[:, :, list(slices)]
    mask = _lesion_mask(labels, lesion_values).any(axis=2)
    index = np.argwhere(mask)
    step = _spacing(None, spacing)[:2]
    box = _square_box(index.min(axis=0), index.max(axis=0), step, margin_mm, fraction, min_margin_voxels)
    return box[0], box[1]


def _crop_pad(array: np.ndarray, box: Sequence[tuple[int, int]], zscore: bool) -> torch.Tensor:
    """Crop ``array`` to ``box``, z-score it per channel, zero-pad where the box leaves the image.

    Args:
        array: ``(C, *spatial)``.
        box: half-open ``(start, stop)`` voxel ranges of the leading spatial axes, possibly
            outside the image; the other spatial axes are kept whole.
        zscore: standardise each channel over the image voxels of the crop (a constant
            channel is only centred), so that the padding, 0, is the crop's mean.

    Returns:
        ``(C, *box sizes, *kept axes)`` float32 tensor.
    """
    spatial = array.shape[1:]
    box = [*box, *((0, size) for size in spatial[len(box) :])]
    crop = SpatialCrop(roi_start=[lo for lo, _ in box], roi_end=[hi for _, hi in box])(torch.as_tensor(array))
    crop = crop.clone()  # a view of the caller's image until now: normalised in place below
    if zscore:
        crop = NormalizeIntensity(channel_wise=True)(crop)
    border = [width for (lo, hi), size in zip(box, spatial, strict=True) for width in (max(-lo, 0), max(hi - size, 0))]
    return BorderPad(spatial_border=border)(crop).as_tensor()


def _channels(array: np.ndarray, channels_out: int | None, axis: int) -> np.ndarray:
    have = array.shape[axis]
    if channels_out is None or channels_out == have:
        return array
    if have == 1:
        return np.repeat(array, channels_out, axis=axis)
    raise ValueError(f"cannot make {channels_out} channels from {have}: only a single channel is replicated")


def extract_slices(
    image,
    labels,
    lesion_values: int | Sequence[int],
    n: int = 20,
    size: tuple[int, int] = (224, 224),
    *,
    margin_fraction: float | None = None,
    margin_mm: float | None = None,
    spacing: Sequence[float] | None = None,
    min_margin_voxels: int = DEFAULT_MIN_MARGIN_VOXELS,
    channels_out: int | None = None,
    zscore: bool = True,
    min_area_fraction: float | None = None,
) -> np.ndarray:
    """The lesion's axial slices, cropped around the lesion and resized (paper B's grading input).

    Steps: :func:`lesion_slices` picks ``n`` slices around the slice of largest lesion area;
    :func:`crop_box` gives one square box around the lesion's in-plane bounding box over those
    slices plus a margin, used for every slice (so the slices stay aligned); the crop
    (MONAI ``SpatialCrop``) is z-scored (below, MONAI ``NormalizeIntensity``), zero-padded
    where the box leaves the image (``BorderPad``) and resized to ``size`` with bilinear
    interpolation (``Resize`` with ``anti_aliasing``: an axis that shrinks by a factor ``s``
    is first smoothed with a Gaussian of sigma ``(s - 1) / 2`` pixels, zero-padded at the
    crop's border).

    Intensity: with ``zscore`` (default) each channel is standardised with the mean and
    standard deviation of the image voxels inside the crop over the whole stack of selected
    slices (one pair of numbers per channel and patient, not per slice, so slices of one
    patient stay comparable); a constant channel is only centred. Padding is 0, i.e. the
    crop's mean. With ``zscore=False`` the intensities are left raw and the padding is 0.

    Args:
        image: ``(C, x, y, z)`` array or tensor (e.g. a ``MetaTensor`` from
            :func:`mednet.io.read_image`; its affine gives the spacing); ``(x, y, z)`` is one channel.
        labels: ``(x, y, z)`` (or ``(1, x, y, z)``) label map on the image's grid: the ground
            truth in training, the localisation stage's output at inference.
        lesion_values: label value(s) of the lesion.
        n: number of slices (fewer when the volume has fewer).
        size: output ``(H, W)``.
        margin_fraction: margin as a fraction of the lesion box's longer side (default 0.25).
        margin_mm: margin in mm instead; excludes ``margin_fraction``.
        spacing: voxel size ``(x, y, z)`` in mm; default: from ``image.affine``, else 1 mm.
            With anisotropic in-plane voxels the box is square in mm.
        min_margin_voxels: smallest margin, in voxels.
        channels_out: e.g. 3 for ImageNet weights: a single channel is replicated; None keeps ``C``.
        zscore: standardise intensities (see above); False leaves them raw.
        min_area_fraction: only slices showing the lesion (see :func:`lesion_slices`).

    Returns:
        ``(n, C', H, W)`` float32 array, slices in ascending ``z``; ``H`` follows ``x``, ``W`` ``y``.

    Raises:
        ValueError: no lesion voxel, shapes that disagree, or a channel count that cannot be made.
    """
    labels_3d = _labels_3d(labels)
    array = _image_4d(image, labels_3d)
    step = _spacing(image, spacing)
    slices, box = slice_plan(labels_3d, lesion_values, n, min_area_fraction, margin_fraction=margin_fraction,
                             margin_mm=margin_mm, spacing=step, min_margin_voxels=min_margin_voxels)  # fmt: skip
    return crop_slices(array, slices, box, size, channels_out=channels_out, zscore=zscore)


def slice_plan(
    labels,
    lesion_values: int | Sequence[int],
    n: int = 20,
    min_area_fraction: float | None = None,
    *,
    margin_fraction: float | None = None,
    margin_mm: float | None = None,
    spacing: Sequence[float] | None = None,
    min_margin_voxels: int = DEFAULT_MIN_MARGIN_VOXELS,
) -> tuple[list[int], tuple[tuple[int, int], tuple[int, int]]]:
    """Which slices :func:`extract_slices` takes and the in-plane box it crops: once per label map.

    The sequences of a case share the label map's grid, so they share the plan: work it out
    once and crop each sequence with :func:`crop_slices`.

    Args:
        labels: ``(x, y, z)`` (or ``(1, x, y, z)``) label map.
        lesion_values: label value(s) of the lesion.
        n: number of slices (see :func:`lesion_slices`).
        min_area_fraction: only slices showing the lesion (see :func:`lesion_slices`).
        margin_fraction: margin as a fraction of the lesion box's longer side (see :func:`crop_box`).
        margin_mm: margin in mm instead.
        spacing: voxel size ``(x, y, z)`` in mm (the box is square in mm).
        min_margin_voxels: smallest margin, in voxels.

    Returns:
        ``(slices, box)``: :func:`lesion_slices`' indices and :func:`crop_box`'s box over them.

    Raises:
        ValueError: as :func:`lesion_slices` and :func:`crop_box`.
    """
    labels = _labels_3d(labels)
    slices = lesion_slices(labels, lesion_values, n, min_area_fraction)
    box = crop_box(labels, lesion_values, slices, margin_fraction=margin_fraction, margin_mm=margin_mm,
                   spacing=spacing, min_margin_voxels=min_margin_voxels)  # fmt: skip
    return slices, box


def crop_slices(
    image,
    slices: Sequence[int],
    box: Sequence[tuple[int, int]],
    size: tuple[int, int] = (224, 224),
    *,
    channels_out: int | None = None,
    zscore: bool = True,
) -> np.ndarray:
    """``image``'s ``slices`` cropped to ``box`` (:func:`slice_plan`), z-scored, padded and resized.

    The second half of :func:`extract_slices` (which describes the steps).

    Args:
        image: ``(C, x, y, z)`` (or ``(x, y, z)``) array or tensor.
        slices: axial slice indices.
        box: ``((x_start, x_stop), (y_start, y_stop))``, possibly outside the image.
        size: output ``(H, W)``.
        channels_out: e.g. 3 to replicate a single channel; None keeps ``C``.
        zscore: standardise each channel over the crop's image voxels.

    Returns:
        ``(len(slices), C', H, W)`` float32 array.
    """
    array = _to_numpy(image)
    array = (array[None] if array.ndim == 3 else array).astype(np.float32, copy=False)
    slices = list(slices)
    crop = _crop_pad(array[:, :, :, slices], tuple(box), zscore)  # (C, X, Y, n)
    channels = crop.shape[0]
    planes = crop.permute(3, 0, 1, 2).reshape(len(slices) * channels, *crop.shape[1:3])  # (n * C, X, Y)
    resized = Resize(tuple(size), mode="bilinear", align_corners=False, anti_aliasing=True)(planes)
    return _channels(resized.reshape(len(slices), channels, *size).numpy(), channels_out, axis=1)
