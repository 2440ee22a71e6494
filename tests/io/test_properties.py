"""Property-based tests: any small volume, spacing, orientation and dtype survives reading and writing.

Random shapes (2-6 voxels a side), spacings (0.2-5 mm), orientations (any of the 48
axis permutations and flips, tilted by up to ~6 degrees about each axis), origins and
voxel types are written with nibabel (or SimpleITK), read back with ``read_image``, and
written again with ``write_image`` onto the grid just read: the shape is exact, the
affine equal within float32 precision (what NIfTI stores), the values preserved
(exactly for integer types). Examples are derandomised, so that every run checks the
same 25 cases.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from mednet.io import read_image, write_image
from tests.io.corpus import sitk_file

SIGNED_PERMUTATIONS = [
    np.eye(3)[list(order)].T * np.asarray(signs)
    for order in itertools.permutations(range(3))
    for signs in itertools.product((1.0, -1.0), repeat=3)
]
INTEGER_TYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]
FLOAT_TYPES = [np.float32, np.float64]

PROPERTY_SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None)


def test_there_are_48_axis_orientations():
    assert len({m.tobytes() for m in SIGNED_PERMUTATIONS}) == 48
    assert all(abs(abs(np.linalg.det(m)) - 1) < 1e-12 for m in SIGNED_PERMUTATIONS)


@st.composite
def grids(draw) -> tuple[tuple[int, int, int], np.ndarray]:
    """A small shape and a voxel -> world affine: signed permutation, small tilt, spacing, origin."""
    shape = tuple(draw(st.integers(2, 6)) for _ in range(3))
    spacing = np.array([draw(st.floats(0.2, 5.0)) for _ in range(3)])
    tilt = Rotation.from_rotvec([draw(st.floats(-0.1, 0.1)) for _ in range(3)]).as_matrix()
    direction = tilt @ draw(st.sampled_from(SIGNED_PERMUTATIONS))
    affine = np.eye(4)
    affine[:3, :3] = direction * spacing
    affine[:3, 3] = [draw(st.floats(-200.0, 200.0)) for _ in range(3)]
    return shape, affine


@st.composite
def volumes(draw, dtypes) -> np.ndarray:
    """A non-constant volume of a drawn shape and dtype; integers span the dtype (up to +-2**24, exact in float32)."""
    shape, _ = draw(grids())
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = max(int(info.min), -(2**24)), min(int(info.max), 2**24)
        data = rng.integers(lo, hi, shape, endpoint=True).astype(dtype)
    else:
        lo, hi = -1e4, 1e4
        data = rng.normal(0.0, 1e3, shape).astype(dtype)
    data.flat[:2] = (lo, hi)
    return data


def _write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    image = nib.Nifti1Image(data, affine, dtype=data.dtype)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)
    return path


def _assert_values(got: np.ndarray, data: np.ndarray) -> None:
    if data.dtype.kind in "iu":
        np.testing.assert_array_equal(got, data.astype(np.float64))
    else:
        np.testing.assert_allclose(got, data, rtol=1e-7)  # float64 rounded to float32


def _write_back_and_check(image, data: np.ndarray, folder: Path) -> nib.Nifti1Image:
    """write_image onto the grid just read; the file holds the same shape and values."""
    label = data.dtype.kind in "iu"
    out = write_image(image, folder / "out.nii.gz", image, label=label)
    written = nib.load(out)
    assert written.shape == data.shape
    _assert_values(np.asarray(written.dataobj, dtype=np.float64), data)
    return written


@PROPERTY_SETTINGS
@given(grid=grids(), data=volumes(INTEGER_TYPES + FLOAT_TYPES))
def test_nifti_round_trip(grid, data):
    _, affine = grid
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = _write_nifti(folder / "in.nii.gz", data, affine)
        image = read_image(path)
        assert tuple(image.shape) == (1, *data.shape)
        np.testing.assert_allclose(image.affine.numpy(), affine, rtol=1e-6, atol=1e-4)  # float32 srow
        np.testing.assert_allclose(image.affine.numpy(), nib.load(path).affine, rtol=0, atol=1e-9)
        _assert_values(image[0].numpy(), data)
        assert image.meta["original_dtype"] == str(data.dtype)

        written = _write_back_and_check(image, data, folder)
        source = nib.load(path).header
        np.testing.assert_array_equal(written.header.get_sform(), source.get_sform())  # copied unchanged
        np.testing.assert_array_equal(written.header.get_qform(), source.get_qform())
        assert int(written.header["sform_code"]) == 1 and int(written.header["qform_code"]) == 1


@PROPERTY_SETTINGS
@given(grid=grids(), data=volumes(INTEGER_TYPES + FLOAT_TYPES), suffix=st.sampled_from([".nrrd", ".mha"]))
def test_nrrd_and_metaimage_round_trip(grid, data, suffix):
    _, affine = grid
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image = read_image(sitk_file(folder / f"in{suffix}", data, affine))
        assert tuple(image.shape) == (1, *data.shape)
        np.testing.assert_allclose(image.affine.numpy(), affine, rtol=1e-6, atol=1e-4)
        _assert_values(image[0].numpy(), data)

        written = _write_back_and_check(image, data, folder)  # a non-NIfTI reference: its affine, codes 1
        np.testing.assert_allclose(written.affine, image.affine.numpy(), rtol=1e-6, atol=1e-4)
        assert int(written.header["sform_code"]) == 1
