"""scripts/benchmark_resampled_copies.py: the two kinds of copies and the perfect localiser's floor."""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
import benchmark_resampled_copies as bench  # scripts/ is not a package: from its folder


def _oblique(values: np.ndarray, degrees: float = 10.0) -> nib.Nifti1Image:
    """``values`` on an LPS-like grid rotated about z, 1.5 x 1.5 x 3 mm."""
    angle = np.deg2rad(degrees)
    rotation = np.array([[-np.cos(angle), np.sin(angle), 0], [-np.sin(angle), -np.cos(angle), 0], [0, 0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rotation * [1.5, 1.5, 3.0]
    affine[:3, 3] = [40.0, -20.0, -15.0]
    return nib.Nifti1Image(values, affine)


def _sphere(shape=(40, 40, 16), radius_mm=12.0) -> np.ndarray:
    grid = np.stack(np.meshgrid(*(np.arange(s) for s in shape), indexing="ij"), -1) * [1.5, 1.5, 3.0]
    centre = (np.array(shape) - 1) / 2 * [1.5, 1.5, 3.0]
    return (np.linalg.norm(grid - centre, axis=-1) <= radius_mm).astype(np.int16)


def test_resampled_copy_keeps_directions_and_field_of_view_reformatted_one_does_not():
    image = _oblique(np.full((40, 40, 16), 7.0, dtype=np.float32))
    resampled = bench.copy_image(image, "resampled", 0.8)
    assert resampled.shape == (50, 50, 20)
    np.testing.assert_allclose(resampled.affine[:3, :3], image.affine[:3, :3] * 0.8, atol=1e-9)
    corner = image.affine @ [-0.5, -0.5, -0.5, 1]
    np.testing.assert_allclose(resampled.affine @ [-0.5, -0.5, -0.5, 1], corner, atol=1e-9)
    np.testing.assert_allclose(np.asarray(resampled.dataobj), 7.0, atol=1e-4)  # no zero-filled voxel
    reformatted = bench.copy_image(image, "reformatted", 0.8)
    np.testing.assert_allclose(np.abs(np.diag(reformatted.affine)[:3]), [1.2, 1.2, 2.4], atol=1e-6)
    zeros = np.asarray(reformatted.dataobj) == 0
    assert zeros[0, 0].all() and 0.05 < zeros.mean() < 0.5  # the rotated field of view's corners
    edge = bench.copy_image(image, "reformatted_edge", 0.8)
    np.testing.assert_array_equal(edge.affine, reformatted.affine)
    np.testing.assert_allclose(np.asarray(edge.dataobj), 7.0, atol=1e-4)  # the corners hold the edge's values


def test_perfect_map_is_the_truth_on_its_own_grid_and_loses_only_a_boundary_on_another():
    truth = _oblique(_sphere())
    assert np.array_equal(bench.perfect_map(truth, truth), np.asarray(truth.dataobj))
    copy = bench.copy_image(_oblique(np.zeros((40, 40, 16), np.float32)), "reformatted", 0.8)
    on_copy = nib.Nifti1Image(bench.perfect_map(truth, copy), copy.affine)
    back = np.asarray(resample_from_to(on_copy, truth, order=0).dataobj)
    dice = bench._dice(np.asarray(truth.dataobj) > 0, back > 0)
    assert 0.9 < dice < 1.0  # right on both grids, yet not the same voxels: the floor the benchmark reports
