"""Slice selection, crop boxes and the 2D / 3D grading inputs on hand-made volumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from mednet.grading import crop_box, extract_slices, lesion_slices


def _labels(depth: int, largest: int, shape=(30, 30)) -> np.ndarray:
    """A lesion (label 2) over several slices, largest (6 x 6) at ``largest``, 2 x 2 elsewhere."""
    labels = np.zeros((*shape, depth), np.int16)
    for z in range(max(largest - 3, 0), min(largest + 4, depth)):
        labels[10:12, 12:14, z] = 2
    labels[8:14, 10:16, largest] = 2
    return labels


def test_lesion_slices_centred_on_largest():
    slices = lesion_slices(_labels(40, 25), [2])
    assert slices == list(range(15, 35))  # 10 below, the largest, 9 above
    assert lesion_slices(_labels(40, 25), 2, n=5) == [23, 24, 25, 26, 27]
    assert lesion_slices(torch.as_tensor(_labels(40, 25))[None], [2], n=1) == [25]  # (1, x, y, z) tensors too


def test_lesion_slices_shifted_at_edges_and_short_volumes():
    assert lesion_slices(_labels(40, 3), [2]) == list(range(20))  # bottom: shifted up, still 20
    assert lesion_slices(_labels(40, 38), [2]) == list(range(20, 40))  # top: shifted down
    assert lesion_slices(_labels(12, 5), [2]) == list(range(12))  # fewer than n slices: all of them
    assert lesion_slices(_labels(20, 19), [2]) == list(range(20))


def test_lesion_slices_union_of_values_ties_and_errors():
    labels = np.zeros((10, 10, 30), np.uint8)
    labels[2:5, 2:5, 8] = 1
    labels[2:4, 2:4, 20] = 1
    labels[5:7, 5:7, 20] = 3  # 4 + 4 = 8 voxels of {1, 3} on slice 20 vs 9 on slice 8
    assert lesion_slices(labels, [1], n=3) == [7, 8, 9]
    labels[7, 7, 20] = 3
    labels[8, 8, 20] = 3
    assert lesion_slices(labels, [1, 3], n=3) == [19, 20, 21]
    tie = np.zeros((4, 4, 10), np.uint8)
    tie[0, 0, [3, 6]] = 1  # equal areas: the lowest slice
    assert lesion_slices(tie, 1, n=1) == [3]
    with pytest.raises(ValueError, match="no lesion voxel"):
        lesion_slices(np.zeros((5, 5, 5), np.uint8), [1])
    with pytest.raises(ValueError, match="n must be"):
        lesion_slices(tie, 1, n=0)


def test_crop_box_square_with_margin():
    labels = np.zeros((40, 40, 6), np.uint8)
    labels[10:20, 20:25, 2] = 1  # 10 x 5 voxels
    (x0, x1), (y0, y1) = crop_box(labels, [1])
    assert x1 - x0 == y1 - y0 == 10 + 2 * 3  # margin: 0.25 * 10 = 2.5 < the minimum of 3 voxels
    assert x0 <= 10 - 3 and x1 >= 20 + 3 and y0 <= 20 - 3 and y1 >= 25 + 3
    labels[:] = 0
    labels[4:24, 10:22, 3] = 1  # 20 x 12
    (x0, x1), (y0, y1) = crop_box(labels, [1], margin_fraction=0.25)
    assert (x0, x1) == (-1, 29) and y1 - y0 == 30  # margin 5 each side; may leave the image
    assert y0 <= 10 - 5 and y1 >= 22 + 5
    (x0, x1), _ = crop_box(labels, [1], margin_fraction=0.0, min_margin_voxels=0)
    assert (x0, x1) == (4, 24)


def test_crop_box_in_mm_and_over_selected_slices():
    labels = np.zeros((40, 40, 6), np.uint8)
    labels[10:20, 20:25, 2] = 1  # 10 x 5 voxels = 10 x 10 mm at 1 x 2 mm
    labels[0:40, 0:40, 5] = 1  # outside the selected slices
    (x0, x1), (y0, y1) = crop_box(labels, [1], [1, 2, 3], spacing=(1.0, 2.0, 3.0))
    assert x1 - x0 == 22 and y1 - y0 == 11  # 10 mm + 2 x 6 mm (3 voxels of the coarser 2 mm), square in mm
    assert x0 <= 10 - 3 and x1 >= 20 + 3 and y0 <= 20 - 3 and y1 >= 25 + 3
    (x0, x1), _ = crop_box(labels, [1], [2], margin_mm=4.0, spacing=(0.5, 0.5, 2.0))
    assert x1 - x0 == 10 + 2 * 8  # 4 mm = 8 voxels of 0.5 mm
    with pytest.raises(ValueError, match="not both"):
        crop_box(labels, [1], margin_fraction=0.1, margin_mm=2.0)
    with pytest.raises(ValueError, match="no lesion voxel"):
        crop_box(labels, [1], [0])


def test_extract_slices_is_the_crop_when_no_resizing(rng):
    image = rng.normal(50, 10, (2, 40, 40, 30)).astype(np.float32)
    labels = _labels(30, 12, shape=(40, 40))
    slices = lesion_slices(labels, [2], n=6)
    (x0, x1), (y0, y1) = crop_box(labels, [2], slices)
    assert x0 >= 0 and x1 <= 40 and y0 >= 0 and y1 <= 40
    raw = extract_slices(image, labels, [2], n=6, size=(x1 - x0, y1 - y0), zscore=False)
    assert raw.shape == (6, 2, x1 - x0, y1 - y0) and raw.dtype == np.float32
    expected = np.moveaxis(image[:, x0:x1, y0:y1][..., slices], 3, 0)
    np.testing.assert_allclose(raw, expected, rtol=1e-6)
    standard = extract_slices(image, labels, [2], n=6, size=(x1 - x0, y1 - y0))
    mean = expected.mean(axis=(0, 2, 3), keepdims=True)
    std = expected.std(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(standard, (expected - mean) / std, rtol=1e-4, atol=1e-4)


def test_extract_slices_pads_with_zeros_at_the_image_edge():
    image = np.full((1, 20, 20, 10), 5.0, np.float32)
    labels = np.zeros((20, 20, 10), np.uint8)
    labels[0:4, 8:12, 4] = 1  # touches x = 0
    (x0, x1), (y0, y1) = crop_box(labels, [1], list(range(10)))
    assert x0 < 0
    out = extract_slices(image, labels, [1], n=20, size=(x1 - x0, y1 - y0), zscore=False)
    assert out.shape == (10, 1, x1 - x0, y1 - y0)  # only 10 slices in the volume
    assert np.all(out[:, :, :-x0] == 0) and np.all(out[:, :, -x0:] == 5.0)
    centred = extract_slices(image, labels, [1], n=20, size=(x1 - x0, y1 - y0))
    assert np.all(centred == 0)  # a constant image is only centred; the padding is the mean, 0


def test_extract_slices_resizes_and_replicates_channels(rng):
    image = rng.normal(0, 1, (1, 60, 50, 24)).astype(np.float32)
    labels = _labels(24, 10, shape=(60, 50))
    out = extract_slices(image, labels, [2], channels_out=3)
    assert out.shape == (20, 3, 224, 224) and np.isfinite(out).all()
    assert np.array_equal(out[:, 0], out[:, 1]) and np.array_equal(out[:, 0], out[:, 2])
    labels[5:55, 5:45, 10] = 2  # a large lesion: the crop shrinks (antialiased) to 16 x 16
    small = extract_slices(torch.as_tensor(image), labels, [2], n=4, size=(16, 16))
    assert small.shape == (4, 1, 16, 16)
    with pytest.raises(ValueError, match="single channel"):
        extract_slices(np.repeat(image, 2, axis=0), labels, [2], n=4, size=(8, 8), channels_out=3)
    with pytest.raises(ValueError, match="differs from the labels"):
        extract_slices(image[:, :30], labels, [2])


def test_extract_slices_spacing_from_metatensor(rng):
    data = rng.normal(0, 1, (1, 40, 40, 12)).astype(np.float32)
    labels = _labels(12, 6, shape=(40, 40))
    affine = torch.diag(torch.tensor([1.0, 2.0, 3.0, 1.0], dtype=torch.float64))
    image = MetaTensor(torch.from_numpy(data), affine=affine)
    from_affine = extract_slices(image, MetaTensor(torch.from_numpy(labels)[None]), [2], n=4, size=(24, 24))
    explicit = extract_slices(data, labels, [2], n=4, size=(24, 24), spacing=(1.0, 2.0, 3.0))
    isotropic = extract_slices(data, labels, [2], n=4, size=(24, 24))
    np.testing.assert_array_equal(from_affine, explicit)
    assert not np.allclose(explicit, isotropic)


def test_lesion_slices_only_where_the_lesion_shows():
    labels = _labels(40, 25)  # lesion on z = 22..28, largest at 25
    assert lesion_slices(labels, [2], min_area_fraction=0.0) == list(range(22, 29))
    # n caps the count: the nearest to the largest first, ties to the lower slice
    assert lesion_slices(labels, [2], n=4, min_area_fraction=0.0) == [23, 24, 25, 26]
    # a fraction of the largest area (36 voxels): the small slices (4 voxels) drop out
    assert lesion_slices(labels, [2], min_area_fraction=0.5) == [25]
    # a gap in the lesion is skipped, not bridged
    labels[:, :, 27] = 0
    assert lesion_slices(labels, [2], min_area_fraction=0.0) == [22, 23, 24, 25, 26, 28]
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="min_area_fraction"):
            lesion_slices(labels, [2], min_area_fraction=bad)


def test_extract_slices_lesion_only_stack():
    labels = _labels(40, 25)
    image = np.random.default_rng(0).normal(size=labels.shape).astype(np.float32)
    stack = extract_slices(image, labels, [2], 20, (8, 8), min_area_fraction=0.0)
    assert stack.shape == (7, 1, 8, 8)


def test_shrinking_is_antialiased_and_the_image_is_left_alone():
    # a +-1 checkerboard shrunk by 3: plain bilinear interpolation lands on pixel centres and
    # keeps the full +-1 pattern; smoothed first (sigma 1), the pattern all but vanishes
    checker = np.indices((48, 48)).sum(axis=0) % 2 * 2.0 - 1.0
    image = np.repeat(checker[None, :, :, None], 3, axis=3).astype(np.float32)
    labels = np.zeros((48, 48, 3), np.uint8)
    labels[:, :, 1] = 1  # the lesion fills the slice: the crop is the 48 x 48 slice with padding
    stack = extract_slices(image, labels, [1], n=1, size=(16, 16), margin_mm=0, min_margin_voxels=0, zscore=False)
    assert stack.shape == (1, 1, 16, 16) and np.abs(stack[0, 0, 2:-2, 2:-2]).max() < 0.05
    shifted = image * 2 + 5  # z-scoring changes it
    original = shifted.copy()
    extract_slices(shifted, labels, [1], size=(16, 16))
    np.testing.assert_array_equal(shifted, original)
