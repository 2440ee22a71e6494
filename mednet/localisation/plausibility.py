"""Outputs that cannot be right: flagged in the case record, the summary and the report.

A localisation network gives a label map for any input, also for one it should not
(another body part, a scan it cannot read well). These checks do not change the output;
they say, with the numbers, when it looks implausible, so that a reader looks before
trusting it:

- the lesions take more than :data:`MAX_LESION_FRACTION` of the body (or brain) volume;
- there are more than :data:`MAX_LESIONS` separate lesions;
- the lesions lie mostly outside the body (where the reference image is background).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mednet.io.grid import fill_holes

__all__ = ["MAX_LESIONS", "MAX_LESION_FRACTION", "OUTSIDE_FRACTION", "body_mask", "plausibility_flags"]

#: Lesions taking more than this fraction of the body (brain) volume are implausible.
MAX_LESION_FRACTION = 0.5
#: More separate lesions than this are implausible for the diseases mednet grades.
MAX_LESIONS = 25
#: Lesion values compared one by one (faster than a lookup table for these few).
FEW_VALUES = 8
#: Lesions with more than this fraction of their voxels (all lesions together) outside the body are implausible.
OUTSIDE_FRACTION = 0.5


def _background_and_threshold(image: np.ndarray) -> tuple[float, float]:
    """The background value of a float32 ``(x, y, z)`` image and the difference from it that makes a voxel tissue."""
    values, counts = np.unique(image[:: max(1, image.size // 200_000)], return_counts=True)  # a sample suffices
    background = float(values[np.argmax(counts)]) if counts.max() > 0.2 * counts.sum() else 0.0
    # the 99th percentile of a million voxels evenly spread over the image (C order, read in place: a tenth
    # of the time of all of them)
    sample = np.abs(np.asarray(image.flat[:: max(1, image.size // 1_000_000)]) - background)
    return background, 0.1 * float(np.percentile(sample, 99))


def _tissue(image: np.ndarray) -> np.ndarray:
    """The voxels that differ from the background: :func:`body_mask` before its holes are filled."""
    image = np.asarray(image, dtype=np.float32)
    return _differs(image, *_background_and_threshold(image))


def _differs(image: np.ndarray, background: float, threshold: float) -> np.ndarray:
    """The voxels of ``image`` further than ``threshold`` from ``background`` (NaN: not)."""
    return np.abs(image - background) > threshold


def body_mask(image: np.ndarray) -> np.ndarray:
    """Voxels of the body (or the skull-stripped brain) in one ``(x, y, z)`` image.

    The voxels that differ from the background by more than a tenth of the image's 99th
    percentile difference, with the holes inside filled (dark fluid and bone are body too).
    The background is the value that fills more than a fifth of the image when there is
    one (the zero of skull-stripped or z-scored data, whose brain is half negative), else 0
    (MRI background is noise, far below tissue).
    """
    return fill_holes(_tissue(image))


def _lesion_mask(labels: np.ndarray, lesion_values: Sequence[int]) -> np.ndarray:
    """``labels`` in ``lesion_values``.

    A few values (at most :data:`FEW_VALUES`): one comparison each (a fifteenth of a lookup
    table's time on a BraTS-size map); more: a lookup table for 8- and 16-bit integer maps,
    else ``np.isin``. Values an integer map cannot hold match nothing.
    """
    values = [int(v) for v in lesion_values]
    if labels.dtype.kind in "iu":
        info = np.iinfo(labels.dtype)
        values = [v for v in values if info.min <= v <= info.max]
    if len(values) <= FEW_VALUES:
        mask = np.zeros(labels.shape, dtype=bool)
        for value in values:
            mask |= labels == value
        return mask
    if labels.dtype.kind in "iu" and labels.dtype.itemsize <= 2:
        bits = 8 * labels.dtype.itemsize
        table = np.zeros(2**bits, dtype=bool)  # indexed by the bits read as unsigned (two's complement)
        table[[v % 2**bits for v in values]] = True
        return table[labels.view(f"u{labels.dtype.itemsize}")]
    return np.isin(labels, values)


def plausibility_flags(
    labels: np.ndarray,
    reference: np.ndarray,
    lesions: Sequence[Mapping],
    lesion_values: Sequence[int],
) -> list[str]:
    """What is implausible about a case's localisation, in words with the numbers; empty when nothing is.

    The body mask's holes are filled (the slow part) only when the unfilled mask cannot
    decide: filling only adds body voxels, so a lesion within the size limit of the
    unfilled body, and mostly inside it, is so for the filled one too.

    Args:
        labels: ``(x, y, z)`` label map.
        reference: ``(x, y, z)`` reference image on the same grid.
        lesions: the lesion table (rows with ``lesion_id``, ``label``, ``voxels``).
        lesion_values: the label values that are lesions.
    """
    labels = np.asarray(labels)
    flags = []
    found = [row for row in lesions if int(row["label"]) in set(map(int, lesion_values))]
    lesion = _lesion_mask(labels, lesion_values)
    size = int(np.count_nonzero(lesion))
    if size:
        image = np.asarray(reference, dtype=np.float32)
        background, threshold = _background_and_threshold(image)
        # counted without the body mask: the tissue voxels, and the lesion voxels that are not tissue
        body_voxels = int(np.count_nonzero(_differs(image, background, threshold)))
        outside = int(np.count_nonzero(~_differs(image[lesion], background, threshold)))  # NaN: outside
        if size > MAX_LESION_FRACTION * body_voxels or outside > OUTSIDE_FRACTION * size:
            body = fill_holes(_differs(image, background, threshold))
            body_voxels, outside = int(np.count_nonzero(body)), int(np.count_nonzero(lesion & ~body))
        if body_voxels and size > MAX_LESION_FRACTION * body_voxels:
            flags.append(f"lesions take {size / body_voxels:.0%} of the body volume "
                         f"(more than {MAX_LESION_FRACTION:.0%}: implausible; check the input)")  # fmt: skip
    if len(found) > MAX_LESIONS:
        flags.append(f"{len(found)} separate lesions (more than {MAX_LESIONS}: implausible; check the input)")
    if size and outside > OUTSIDE_FRACTION * size:
        flags.append(f"{outside / size:.0%} of the lesion voxels lie outside the body "
                     "(background of the reference image): implausible")  # fmt: skip
    return flags
