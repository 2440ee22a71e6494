"""Zero-filled wedges beyond a reformatted scan's field of view: found, told apart from other zeros, filled."""

from __future__ import annotations

import glob
import tracemalloc

import nibabel as nib
import numpy as np
import pytest
from nibabel.affines import from_matvec
from nibabel.processing import resample_to_output
from scipy import ndimage
from scipy.spatial.transform import Rotation

from mednet.io.field_of_view import (
    FILL_SEARCH_BYTES_PER_VOXEL,
    FIND_BYTES_PER_VOXEL,
    field_of_view_bytes,
    fill_from_nearest,
    outside_field_of_view,
)


def _body(shape=(72, 64, 28), seed=0, air=True) -> np.ndarray:
    """A textured ellipsoid torso; around it scanner noise (``air``) or exact zeros (skull-stripped look)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij"))
    inside = (grid[0] / 0.8) ** 2 + (grid[1] / 0.7) ** 2 + (grid[2] / 1.3) ** 2 < 1
    texture = ndimage.gaussian_filter(rng.normal(0, 1, shape), 2) * 200
    image = np.where(inside, 400 + texture, np.abs(rng.normal(0, 8, shape)) + 1 if air else 0.0)
    return image.astype(np.float32)


def _reformatted(image: np.ndarray, degrees: float, axes: str = "z", spacing=(1.5, 1.5, 3.0)) -> nib.Nifti1Image:
    """``image`` acquired obliquely (rotated by ``degrees`` about ``axes``) and reformatted onto RAS axes."""
    rotation = Rotation.from_euler(axes, [degrees] * len(axes), degrees=True).as_matrix()
    oblique = nib.Nifti1Image(image, from_matvec(rotation @ np.diag(spacing), [0, 0, 0]))
    return resample_to_output(oblique, voxel_sizes=spacing, order=1)


def _find(image: nib.Nifti1Image, *channels: np.ndarray):
    data = np.stack([np.asarray(image.dataobj, dtype=np.float32), *channels])
    return data, outside_field_of_view(data, image.header.get_zooms()[:3])


def _zero_at_border(data: np.ndarray) -> np.ndarray:
    """The exact-zero voxels (every channel) connected to the volume's border: what a wedge must be."""
    zero = np.all(data == 0, axis=0)
    labels, _ = ndimage.label(zero)
    border = np.unique(np.concatenate([labels.take(i, axis=a).ravel() for a in range(3) for i in (0, -1)]))
    return np.isin(labels, border[border > 0])


@pytest.mark.parametrize(("degrees", "axes"), [(15, "z"), (30, "x"), (8, "xyz"), (3, "y")])
def test_a_reformatted_scans_zero_corners_are_found_exactly(degrees, axes):
    data, mask = _find(_reformatted(_body(), degrees, axes))
    assert mask is not None
    assert mask.shape == data.shape[1:]
    np.testing.assert_array_equal(mask, _zero_at_border(data))
    assert mask.mean() > 0.05


def _rotated_box(shape, degrees, half_fraction) -> np.ndarray:
    """``(1, x, y, z)``: a textured box rotated by ``degrees`` (x, y, z) on the voxel grid, exact zeros around it."""
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) - n / 2 for n in shape], indexing="ij"), -1)
    turned = grid @ Rotation.from_euler("xyz", degrees, degrees=True).as_matrix().T.astype(np.float32)
    inside = np.all(np.abs(turned) < np.array(shape) * half_fraction, axis=-1)
    texture = np.random.default_rng(1).random(shape, dtype=np.float32) * 50 + 100
    return np.where(inside, texture, np.float32(0))[None]


@pytest.mark.parametrize(("shape", "degrees", "half_fraction", "spacing"), [
    ((110, 144, 84), (-24.8631, 17.8702, -23.3207), (0.43297, 0.37757, 0.44632), (3.0, 0.5, 1.0)),
    ((89, 140, 83), (6.1594, -20.7992, 16.6322), (0.43871, 0.38394, 0.44765), (0.8, 0.5, 0.5)),
    ((84, 65, 104), (-21.6655, -7.7845, -3.4851), (0.45661, 0.41622, 0.38589), (3.0, 0.8, 0.8)),
    ((78, 139, 79), (-18.7723, -10.5835, 4.3062), (0.41541, 0.44097, 0.41605), (0.8, 1.0, 0.8)),
])  # fmt: skip
def test_a_box_whose_faces_hold_about_equal_shares_is_found(shape, degrees, half_fraction, spacing):
    # each face must carry its share of the interface: the plane search takes, of its best hypotheses, the one
    # holding the most after a refit that starts from a wider band (a near-miss of a smaller face, or a
    # slightly tilted one, left these boxes unfound)
    image = _rotated_box(shape, degrees, half_fraction)
    mask = outside_field_of_view(image, spacing)
    assert mask is not None
    np.testing.assert_array_equal(mask, _zero_at_border(image))


def test_zeros_that_follow_the_anatomy_are_not_wedges():
    # a skull-stripped (or masked-air) scan: its zero background meets the content on a curved surface
    assert outside_field_of_view(_body(air=False)[None], (1.0, 1.0, 2.0)) is None
    # ... also when that scan is then reformatted: its wedges join the background and are left as zeros
    assert _find(_reformatted(_body(air=False), 15))[1] is None


def test_bands_of_zeros_along_the_grid_and_thin_wedges_are_beyond_the_field_of_view_too():
    image = _body()
    padded = image.copy()
    padded[:12] = 0  # a slab of zeros along a grid plane: padding, or a crop through the anatomy
    np.testing.assert_array_equal(outside_field_of_view(padded[None], (1.5, 1.5, 3.0)), padded == 0)
    framed = image.copy()
    framed[:2], framed[-2:], framed[:, :2], framed[:, -2:] = 0, 0, 0, 0  # zeros two voxels wide at the edges
    np.testing.assert_array_equal(outside_field_of_view(framed[None], (1.5, 1.5, 3.0)), framed == 0)
    # a reformat by one degree: wedges one or two voxels thin, which still cut through the anatomy
    data, mask = _find(_reformatted(_body(), 1.0))
    np.testing.assert_array_equal(mask, _zero_at_border(data))


def _brain(shape, seed=0) -> np.ndarray:
    """A skull-stripped-looking ellipsoid: textured inside, exact zeros outside, reaching every slice."""
    return _body(shape, seed, air=False)


@pytest.mark.parametrize(("shape", "spacing"), [((128, 128, 1), (1, 1, 5)), ((128, 128, 2), (1, 1, 5)),
                                                ((40, 40, 8), (1, 1, 6)), ((256, 256, 12), (0.5, 0.5, 6))])  # fmt: skip
def test_thin_and_thick_sliced_skull_stripped_volumes_keep_their_zeros(shape, spacing):
    image = _brain(shape)  # content in every slice
    assert (image != 0).any(axis=(0, 1)).all()
    assert outside_field_of_view(image[None], spacing) is None


def test_a_curved_zero_region_at_a_face_is_not_a_field_of_view():
    image = _body((96, 96, 64))
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in image.shape), indexing="ij"))
    image[np.linalg.norm(grid - np.array([0, 48, 32])[:, None, None, None], axis=0) < 28] = 0  # a half-sphere hole
    assert outside_field_of_view(image[None], (1.0, 1.0, 1.0)) is None
    # joined to a true wedge by a one-voxel tunnel between the voxels the coarse grid sees: still left alone
    i, j, _ = grid
    wedge = i + 0.5 * j > 120
    tunnelled = image.copy()
    tunnelled[wedge] = 0
    tunnelled[:, 75, 33] = 0  # at odd y and z: a tunnel from the hole to the wedge that the coarse grid misses
    mask = outside_field_of_view(tunnelled[None], (1.0, 1.0, 1.0))
    assert mask is None or not mask[2, 48, 32]  # the hole is never filled


def test_a_zero_slab_with_the_scan_on_both_sides_is_not_a_field_of_view():
    image = _body((96, 96, 64))
    image[:, 40:42, :] = 0  # two lost slices across the whole scan: one plane, but content on both sides
    assert outside_field_of_view(image[None], (1.0, 1.0, 1.0)) is None
    # a lost slice the coarse grid does not see (odd index), joined to a true wedge: never filled
    i, j, _ = np.meshgrid(*(np.arange(n) for n in image.shape), indexing="ij")
    wedged = _body((96, 96, 64))
    wedged[i + 0.5 * j > 120] = 0
    wedged[:, :, 41] = 0
    mask = outside_field_of_view(wedged[None], (1.0, 1.0, 1.0))
    assert mask is None or not mask[40, 40, 41]
    striped = _body((96, 96, 64))
    striped[i + 0.5 * j > 120] = 0
    striped[:, :, 1::2] = 0  # every odd slice lost
    mask = outside_field_of_view(striped[None], (1.0, 1.0, 1.0))
    assert mask is None or mask.mean() < 0.1


@pytest.mark.parametrize("edge", [0, -1])
def test_a_band_of_zeros_is_found_at_either_edge(edge):
    image = _body((128, 128, 96))
    image[edge] = 0  # one voxel wide, 0.8% of the volume; at index 127 the coarse grid's last sample
    mask = outside_field_of_view(image[None], (1.0, 1.0, 1.0))
    assert mask is not None and mask[edge].all() and mask.sum() == mask[edge].sum()


def test_a_scan_without_zeros_or_with_few_is_left_alone():
    image = _body()
    assert outside_field_of_view(image[None], (1.5, 1.5, 3.0)) is None
    image[:3, :3, :] = 0  # a few zeros at the border (0.2% of the volume), along two planes
    assert outside_field_of_view(image[None], (1.5, 1.5, 3.0)) is None
    assert outside_field_of_view(np.zeros((2, 8, 8, 8), dtype=np.float32), (1.0, 1.0, 1.0)) is None  # no content
    speck = np.zeros((1, 64, 64, 64), dtype=np.float32)
    speck[0, 31, 31, 31] = 1.0  # content only between the coarse grid's voxels
    assert outside_field_of_view(speck, (1.0, 1.0, 1.0)) is None


def test_every_present_channel_must_be_zero_and_missing_channels_do_not_count():
    reformatted = _reformatted(_body(), 15)
    other = np.asarray(_reformatted(_body(seed=1), 15).dataobj, dtype=np.float32)
    _, mask = _find(reformatted, other)
    assert mask is not None
    _, with_missing = _find(reformatted, np.zeros_like(other))  # an all-zero channel: a missing sequence
    np.testing.assert_array_equal(with_missing, mask)
    covered = other.copy()
    covered[mask] = 5.0  # another sequence acquired there: not beyond the case's field of view
    assert _find(reformatted, covered)[1] is None


def test_the_answer_is_the_same_twice():
    data, mask = _find(_reformatted(_body(), 12, "xyz"))
    np.testing.assert_array_equal(outside_field_of_view(data, (1.5, 1.5, 3.0)), mask)


def test_fill_gives_each_voxel_its_nearest_acquired_values():
    data, mask = _find(_reformatted(_body(), 20))
    filled = fill_from_nearest(data, mask, (1.5, 1.5, 3.0))
    assert filled.shape == data.shape and filled.dtype == data.dtype
    np.testing.assert_array_equal(filled[:, ~mask], data[:, ~mask])  # acquired voxels untouched
    assert (filled[:, mask] != 0).all()  # no zero left where the wedge was
    # each filled voxel holds a value found in the acquired voxels next to the wedge
    edge = ndimage.binary_dilation(mask) & ~mask
    assert np.isin(filled[0, mask], data[0, edge]).all()
    # nearest in mm: of the wedge voxel's neighbours, those 1.5 mm away (z) win over those 3 mm away (x)
    toy = np.zeros((1, 3, 1, 3), dtype=np.float32)
    toy[0, 0, 0, 1] = toy[0, 2, 0, 1] = 7.0
    toy[0, 1, 0, 0] = toy[0, 1, 0, 2] = 9.0
    hole = np.zeros((3, 1, 3), dtype=bool)
    hole[1, 0, 1] = True
    assert fill_from_nearest(toy, hole, (3.0, 1.0, 1.5))[0, 1, 0, 1] == 9.0
    assert fill_from_nearest(toy, hole, (1.5, 1.0, 3.0))[0, 1, 0, 1] == 7.0
    # searched in the mask's box grown by a voxel: the same as over the whole volume
    rng = np.random.default_rng(3)
    values = rng.normal(size=(2, 30, 20, 10)).astype(np.float32)
    blob = np.zeros((30, 20, 10), dtype=bool)
    blob[8:20, 5:12, 2:9] = rng.random((12, 7, 7)) < 0.7
    indices = ndimage.distance_transform_edt(blob, sampling=(1.0, 1.3, 2.0), return_distances=False,
                                             return_indices=True)  # fmt: skip
    expected = values[(slice(None), *indices)]
    expected[:, ~blob] = values[:, ~blob]
    np.testing.assert_array_equal(fill_from_nearest(values, blob, (1.0, 1.3, 2.0)), expected)
    np.testing.assert_array_equal(fill_from_nearest(values, np.zeros_like(blob)), values)


def test_a_box_over_the_budget_is_filled_from_a_coarser_grid_with_acquired_values_near_the_nearest():
    # a large volume's corner wedges: the search runs on every few voxels, each filled voxel still gets an
    # acquired voxel's values, at most a grid cell's diagonal farther than its nearest one
    data, mask = _find(_reformatted(_body((90, 80, 30)), 25, "xyz"))
    spacing = np.array([1.5, 1.5, 3.0])
    assert mask is not None and mask.sum() > 20_000
    ids = np.arange(mask.size, dtype=np.float64).reshape(1, *mask.shape)  # each voxel's value names it
    filled = fill_from_nearest(np.concatenate([ids, data.astype(np.float64)]), mask, spacing, budget=250_000)
    np.testing.assert_array_equal(filled[:, ~mask], np.concatenate([ids, data])[:, ~mask])
    source = np.stack(np.unravel_index(filled[0][mask].astype(np.intp), mask.shape), axis=1)
    assert not mask[tuple(source.T)].any()  # every value from an acquired voxel ...
    np.testing.assert_array_equal(filled[1][mask], data[0][tuple(source.T)])  # ... in every channel
    here = np.argwhere(mask)
    exact = ndimage.distance_transform_edt(mask, sampling=spacing)[mask]
    found = np.linalg.norm((source - here) * spacing, axis=1)
    strides = np.array([2, 2, 1])  # 3 mm steps: the mask's box of 125 x 121 x 61 voxels within 250 000
    assert (found <= exact + np.linalg.norm(strides * spacing) + 1e-6).all()
    assert (found > exact + 1e-6).any()  # not the exact search: the grid is coarser
    # a box whose grid would miss every acquired voxel is searched voxel by voxel
    values = np.random.default_rng(4).normal(size=(1, 12, 10, 8))
    thin = np.ones((12, 10, 8), dtype=bool)
    thin[5] = False  # acquired: one plane at an odd index
    indices = ndimage.distance_transform_edt(thin, return_distances=False, return_indices=True)
    np.testing.assert_array_equal(fill_from_nearest(values, thin, budget=100), values[(slice(None), *indices)])
    with pytest.raises(ValueError, match="budget of at least 1 voxel"):
        fill_from_nearest(values, thin, budget=0)
    # an image in Fortran order (as nibabel reads NIfTI) is filled the same
    fortran = np.asfortranarray(np.concatenate([ids, data.astype(np.float64)]))
    np.testing.assert_array_equal(fill_from_nearest(fortran, mask, spacing, budget=250_000), filled)
    np.testing.assert_array_equal(fill_from_nearest(fortran, mask, spacing),
                                  fill_from_nearest(np.ascontiguousarray(fortran), mask, spacing))  # fmt: skip


def _peaks(shape, channels: int) -> tuple[int, int, int]:
    """Voxels, and tracemalloc's peak bytes of finding and of filling the corners of a reformatted ``_body(shape)``."""
    image = _reformatted(_body(shape), 20, "xyz")
    data = np.repeat(np.asarray(image.dataobj, dtype=np.float32)[None], channels, axis=0)
    tracemalloc.start()
    try:
        mask = outside_field_of_view(data, image.header.get_zooms()[:3])
        find_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        fill_from_nearest(data, mask, image.header.get_zooms()[:3])
        fill_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert mask is not None and mask.mean() > 0.5
    return int(np.prod(data.shape[1:])), find_peak, fill_peak


def test_the_memory_estimate_bounds_what_finding_and_filling_take():
    # what FieldOfViewFill checks against the memory available before it searches: an upper bound, not a wild one
    channels = 2
    small, find_small, fill_small = _peaks((120, 110, 40), channels)  # 1.9 M voxels once reformatted
    large, find_large, fill_large = _peaks((180, 160, 60), channels)  # 6.2 M
    for voxels, find_peak, fill_peak in ((small, find_small, fill_small), (large, find_large, fill_large)):
        estimate = field_of_view_bytes((channels, voxels, 1, 1))  # only the number of voxels counts
        assert find_peak <= estimate and fill_peak <= estimate
    # per voxel, what the search and the fill add from one size to the other is within the estimate's slope
    find_slope = (find_large - find_small) / (large - small)
    fill_slope = (fill_large - fill_small) / (large - small)
    assert 0.5 * FIND_BYTES_PER_VOXEL <= find_slope <= FIND_BYTES_PER_VOXEL
    assert fill_slope <= 2 * channels * 4 + 1 + FILL_SEARCH_BYTES_PER_VOXEL
    assert field_of_view_bytes((2, 512, 512, 300), itemsize=8) > field_of_view_bytes((2, 512, 512, 300))


def test_real_scans_skull_stripped_zeros_are_kept_and_zero_bands_in_the_air_found(realdata):
    brats = [nib.load(p) for p in sorted(glob.glob(str(realdata / "tcga_lgg_du7294_atlas" / "*_bet.nii.gz")))]
    assert len(brats) == 4
    stacked = np.stack([np.asarray(i.dataobj, dtype=np.float32) for i in brats])
    assert outside_field_of_view(stacked, brats[0].header.get_zooms()[:3]) is None  # skull-stripped, zero outside
    assert outside_field_of_view(stacked[:1], brats[0].header.get_zooms()[:3]) is None
    # zero bands along the edges (the air's noise rounded to 0): left alone where ragged (the abdomen), found
    # where they follow the grid's planes cleanly, and then only air beside them
    abdomen = nib.load(realdata / "totalsegmentator_examples" / "example_mr_sm.nii.gz")
    assert outside_field_of_view(np.asarray(abdomen.dataobj, dtype=np.float32)[None], abdomen.header.get_zooms()[:3]) is None
    native = sorted((realdata / "tcga_lgg_fg6692_native").glob("*.nii*"))
    assert len(native) == 4
    found = 0
    for path in native:
        image = nib.load(path)
        data = np.asarray(image.dataobj, dtype=np.float32)
        mask = outside_field_of_view(data[None], image.header.get_zooms()[:3])
        if mask is None:
            continue
        found += 1
        assert 0.002 < mask.mean() < 0.05, path.name
        edge = ndimage.binary_dilation(mask) & ~mask  # the acquired voxels next to them: mostly air
        assert np.median(data[edge]) < 0.05 * np.percentile(data, 99), path.name
    assert found >= 1


def test_a_real_scan_reformatted_has_its_wedges_found(realdata):
    image = nib.load(realdata / "totalsegmentator_examples" / "example_mr_sm.nii.gz")
    rotation = Rotation.from_euler("z", 10, degrees=True).as_matrix()
    oblique = nib.Nifti1Image(np.asarray(image.dataobj, dtype=np.float32), from_matvec(rotation, [0, 0, 0]) @ image.affine)
    data, mask = _find(resample_to_output(oblique, order=1))
    assert mask is not None
    assert mask.sum() >= 0.99 * _zero_at_border(data).sum()
