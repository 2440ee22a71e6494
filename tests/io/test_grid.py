"""Grids, field-of-view overlap, world-coordinate resampling and multi-sequence cases."""

from __future__ import annotations

import glob

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from monai.data import MetaTensor
from scipy import ndimage

from mednet.errors import DatalistError, FieldOfViewError
from mednet.io import Grid, fov_overlap, load_case, resample_to_grid
from mednet.io.grid import fill_holes
from tests.conftest import lps_affine, write_nifti


def world_of(shape, affine):
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    return index @ affine[:3, :3].T + affine[:3, 3]


def linear(world):
    return 2.0 * world[..., 0] - 3.0 * world[..., 1] + 0.5 * world[..., 2]


ROTATED = np.eye(4)
ROTATED[:3, :3] = np.array([[np.cos(0.3), -np.sin(0.3), 0], [np.sin(0.3), np.cos(0.3), 0], [0, 0, 1]]) @ np.diag(
    [0.9, 0.9, 2.0]
)
ROTATED[:3, 3] = [-10.0, -15.0, -5.0]
SOURCE = np.array([[-1.0, 0, 0, 40], [0, -1.2, 0, 50], [0, 0, 3, -20], [0, 0, 0, 1]])


def test_resampling_is_exact_for_a_linear_field_in_world_coordinates():
    image = MetaTensor(
        torch.tensor(linear(world_of((80, 90, 20), SOURCE)), dtype=torch.float32)[None], affine=torch.tensor(SOURCE)
    )
    reference = MetaTensor(torch.zeros(1, 30, 30, 12), affine=torch.tensor(ROTATED))
    out = resample_to_grid(image, reference)
    assert out.shape == (1, 30, 30, 12)
    np.testing.assert_allclose(out.affine.numpy(), ROTATED)
    np.testing.assert_allclose(out[0].numpy(), linear(world_of((30, 30, 12), ROTATED)), atol=1e-3)


def test_label_resampling_keeps_label_values(rng):
    labels = rng.integers(0, 4, (20, 20, 10)).astype(np.float32)
    image = MetaTensor(torch.tensor(labels)[None], affine=torch.tensor(lps_affine()))
    shifted = lps_affine(spacing=(0.7, 1.1, 2.0), origin=(19.0, 29.0, -9.0))
    out = resample_to_grid(image, MetaTensor(torch.zeros(1, 25, 25, 12), affine=torch.tensor(shifted)), label=True)
    assert set(np.unique(out.numpy())) <= {0.0, 1.0, 2.0, 3.0}


def test_grid_matching_tolerates_float32_headers_only():
    a = Grid((10, 20, 30), lps_affine())
    nudged = lps_affine()
    nudged[0, 3] += 1e-4
    assert a.matches(Grid((10, 20, 30), nudged))
    moved = lps_affine()
    moved[0, 3] += 0.5
    assert not a.matches(Grid((10, 20, 30), moved))
    assert not a.matches(Grid((10, 20, 31), lps_affine()))
    assert a.orientation == "LPS"


def test_fov_overlap():
    reference = Grid((10, 10, 10), np.eye(4))
    assert fov_overlap(reference, reference) == 1.0
    half = np.eye(4)
    half[0, 3] = 5.0
    assert fov_overlap(Grid((10, 10, 10), half), reference) == pytest.approx(0.5)
    far = np.eye(4)
    far[:3, 3] = 500.0
    assert fov_overlap(Grid((10, 10, 10), far), reference) == 0.0


def make_case(tmp_path, volume, flair_affine, flair_shape=(12, 18, 25)):
    rng = np.random.default_rng(5)
    case = {
        "case_id": "c1",
        "t1": str(write_nifti(tmp_path / "c1_t1.nii.gz", volume)),
        "t2": str(write_nifti(tmp_path / "c1_t2.nii.gz", volume * 2)),
        "flair": str(write_nifti(tmp_path / "c1_flair.nii.gz", rng.normal(50, 5, flair_shape), flair_affine)),
        "label": str(write_nifti(tmp_path / "c1_seg.nii.gz", (volume > 120).astype(np.uint8))),
    }
    return case


def test_load_case_resamples_only_what_is_off_grid(tmp_path, volume):
    other = lps_affine(spacing=(0.9, 1.4, 2.5), origin=(21.0, 29.0, -8.0))
    loaded = load_case(make_case(tmp_path, volume, other))
    assert loaded.reference_key == "t1"
    assert list(loaded.images) == ["t1", "t2", "flair"]
    for image in [*loaded.images.values(), loaded.label]:
        assert image.shape == (1, 10, 20, 30)
        np.testing.assert_allclose(image.affine.numpy(), lps_affine())
    records = {r["key"]: r for r in loaded.resampling}
    assert [k for k, r in records.items() if r["resampled"]] == ["flair"]
    assert records["flair"]["interpolation"] == "trilinear"
    assert records["flair"]["grid"]["shape"] == [12, 18, 25]
    assert 0 < records["flair"]["fov_overlap"] <= 1
    # the label map shares the reference grid: read as is, no interpolation
    np.testing.assert_array_equal(loaded.label[0].numpy(), (volume > 120).astype(np.float32))
    assert loaded.stacked(["t2", "t1"]).shape == (2, 10, 20, 30)


def test_load_case_order_sets_the_reference(tmp_path, volume):
    other = lps_affine(spacing=(0.9, 1.4, 2.5), origin=(21.0, 29.0, -8.0))
    loaded = load_case(make_case(tmp_path, volume, other), ["flair", "t1"])
    assert loaded.reference_key == "flair"
    assert loaded.images["t1"].shape == (1, 12, 18, 25)
    assert {r["key"]: r["resampled"] for r in loaded.resampling} == {"flair": False, "t1": True, "label": True}


def test_load_case_refuses_a_sequence_outside_the_field_of_view(tmp_path, volume):
    far = lps_affine(origin=(400.0, 400.0, 400.0))
    with pytest.raises(
        FieldOfViewError,
        match=r"c1_flair\.nii\.gz: field of view does not overlap the reference sequence 't1'.*found 0\.0% covered",
    ):
        load_case(make_case(tmp_path, volume, far))


def test_load_case_names_a_missing_sequence(tmp_path, volume):
    case = make_case(tmp_path, volume, lps_affine())
    with pytest.raises(
        DatalistError, match=r"case c1: missing sequence\(s\) t1c; expected t1, t1c, found t1, t2, flair"
    ):
        load_case(case, ["t1", "t1c"])


def test_real_tcga_sequences_land_on_the_t1_grid(realdata):
    folder = realdata / "tcga_lgg_fg6692_native"
    pick = {
        key: glob.glob(str(folder / f"*_{suffix}.nii.gz"))[0]
        for key, suffix in [("t1", "t1"), ("t1c", "t1c"), ("t2", "t2"), ("flair", "fla")]
    }
    loaded = load_case({"case_id": "TCGA-FG-6692", **pick})
    for image in loaded.images.values():
        assert image.shape == (1, 256, 224, 26)
        np.testing.assert_allclose(image.affine.numpy(), loaded.reference.affine.numpy())
    resampled = {r["key"]: r for r in loaded.resampling if r["resampled"]}
    assert set(resampled) >= {"t2", "flair"}  # other matrices: 224x256 and 208x256
    assert all(r["fov_overlap"] > 0.5 for r in resampled.values())
    # the resampled FLAIR is real anatomy on the T1 grid: brain signal where T1 has brain signal
    t1, flair = loaded.images["t1"][0].numpy(), loaded.images["flair"][0].numpy()
    brain = t1 > np.percentile(t1, 75)
    assert flair[brain].mean() > 3 * flair[t1 < np.percentile(t1, 10)].mean()


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.floats(0.2, 0.9))
def test_fill_holes_is_exactly_scipys(seed, ndim, density):
    rng = np.random.default_rng(seed)
    mask = rng.random(tuple(rng.integers(1, 14, size=ndim))) < density
    assert np.array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))


def test_fill_holes_fills_a_closed_cavity_and_not_an_open_one():
    shell = np.zeros((9, 9, 9), dtype=bool)
    shell[2:7, 2:7, 2:7] = True
    shell[3:6, 3:6, 3:6] = False  # a closed cavity: filled
    assert fill_holes(shell)[4, 4, 4] and fill_holes(shell).sum() == 125
    shell[4, 4, 2] = False  # a channel to the outside: not a hole any more
    assert not fill_holes(shell)[4, 4, 4]
    assert not fill_holes(np.zeros((3, 4), dtype=bool)).any()


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4).flatmap(lambda n: st.lists(st.integers(1, 6), min_size=n, max_size=n)), st.integers(0, 2**31),
       st.sampled_from([0.0, 0.02, 0.2, 0.7]))  # fmt: skip
def test_bounding_box_is_every_axis_own_span(shape, seed, density):
    """The box from one projection equals each axis's span of the True voxels; None for none."""
    from mednet.io.grid import bounding_box

    mask = np.random.default_rng(seed).random(shape) < density
    expected = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        expected.append(slice(int(hits[0]), int(hits[-1]) + 1) if hits.size else None)
    assert bounding_box(mask) == (None if None in expected else tuple(expected))
