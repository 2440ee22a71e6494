"""Writing on the reference grid: exact shape and affine, atomic, inputs protected."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

import mednet.io.write as write_module
from mednet.errors import OutputExistsError, ProtectedInputError
from mednet.io import read_image, write_image
from tests.conftest import lps_affine, write_nifti
from tests.io.dicom_helpers import write_dicom_series

ORIENTATIONS = {
    "RAS": np.diag([1.0, 1.2, 3.0, 1.0]),
    "LPS": lps_affine(),
    "LAS": np.diag([-0.9, 0.9, 5.5, 1.0]),
}


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
@pytest.mark.parametrize("codes", [(1, 1), (2, 0), (0, 1)])
def test_output_copies_shape_sform_and_qform_exactly(tmp_path, volume, orientation, codes):
    sform_code, qform_code = codes
    affine = ORIENTATIONS[orientation].copy()
    affine[:3, 3] = [12.5, -40.25, 7.0]
    source = nib.Nifti1Image(volume, None)
    source.set_sform(affine, code=sform_code)
    source.set_qform(affine, code=qform_code)
    nib.save(source, tmp_path / "in.nii.gz")
    reference = read_image(tmp_path / "in.nii.gz")
    out = write_image((reference > 100).float(), tmp_path / "out" / "labels.nii.gz", reference, label=True)
    written, original = nib.load(out), nib.load(tmp_path / "in.nii.gz")
    assert written.shape == original.shape
    assert "".join(nib.aff2axcodes(written.affine)) == orientation
    for field in (
        "sform_code",
        "qform_code",
        "srow_x",
        "srow_y",
        "srow_z",
        "quatern_b",
        "quatern_c",
        "quatern_d",
        "qoffset_x",
        "qoffset_y",
        "qoffset_z",
    ):
        np.testing.assert_array_equal(written.header[field], original.header[field], err_msg=field)
    assert written.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), (volume > 100).astype(np.uint8))


def test_non_nifti_reference_gets_its_affine_in_sform_and_qform(tmp_path, rng):
    folder = write_dicom_series(tmp_path / "dicom", rng.integers(0, 500, (6, 7, 5)).astype(np.int16))
    reference = read_image(folder)
    out = write_image(reference, tmp_path / "copy.nii.gz", reference)
    written = nib.load(out)
    np.testing.assert_allclose(written.header.get_sform(), reference.affine.numpy(), atol=1e-5)
    np.testing.assert_allclose(written.header.get_qform(), reference.affine.numpy(), atol=1e-5)
    assert (int(written.header["sform_code"]), int(written.header["qform_code"])) == (1, 1)
    assert written.get_data_dtype() == np.float32


def test_label_dtype_widens_when_needed(tmp_path, volume):
    reference = read_image(write_nifti(tmp_path / "in.nii.gz", volume))
    labels = np.zeros((10, 20, 30))
    labels[0, 0, 0] = 300
    assert nib.load(write_image(labels, tmp_path / "l.nii.gz", reference, label=True)).get_data_dtype() == np.uint16


def test_existing_output_is_kept_unless_overwrite(tmp_path, volume):
    reference = read_image(write_nifti(tmp_path / "in.nii.gz", volume))
    out = write_image(reference, tmp_path / "out.nii.gz", reference)
    with pytest.raises(OutputExistsError, match=r"out\.nii\.gz: output exists; pass overwrite=True"):
        write_image(reference * 2, out, reference)
    write_image(reference * 2, out, reference, overwrite=True)
    np.testing.assert_allclose(np.asanyarray(nib.load(out).dataobj), volume * 2, rtol=1e-6)


def test_input_is_never_overwritten(tmp_path, volume):
    source = write_nifti(tmp_path / "in.nii.gz", volume)
    reference = read_image(source)
    before = source.read_bytes()
    with pytest.raises(ProtectedInputError, match=r"in\.nii\.gz: refusing to write over an input file"):
        write_image(reference, source, reference, overwrite=True)
    other = write_nifti(tmp_path / "t2.nii.gz", volume)
    with pytest.raises(ProtectedInputError):
        write_image(reference, tmp_path / "." / "t2.nii.gz", reference, overwrite=True, protect=[other])
    assert source.read_bytes() == before


def test_failed_write_leaves_no_file(tmp_path, volume, monkeypatch):
    reference = read_image(write_nifti(tmp_path / "in.nii.gz", volume))

    def broken_save(image, path):
        with open(path, "wb") as stream:
            stream.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(write_module.nib, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_image(reference, tmp_path / "out" / "labels.nii.gz", reference)
    assert list((tmp_path / "out").iterdir()) == []


def test_data_off_the_reference_grid_is_refused(tmp_path, volume):
    reference = read_image(write_nifti(tmp_path / "in.nii.gz", volume))
    with pytest.raises(ValueError, match=r"data shape \(10, 20, 29\) does not match the reference grid \(10, 20, 30\)"):
        write_image(np.zeros((10, 20, 29)), tmp_path / "a.nii.gz", reference)
    moved = MetaTensor(torch.zeros(1, 10, 20, 30), affine=torch.tensor(lps_affine(origin=(0.0, 0.0, 0.0))))
    with pytest.raises(ValueError, match=r"data is not on the reference grid"):
        write_image(moved, tmp_path / "b.nii.gz", reference)
    with pytest.raises(ValueError, match=r"output must be a NIfTI file"):
        write_image(reference, tmp_path / "c.nrrd", reference)


@pytest.mark.parametrize("name", ["example_mr_sm.nii.gz", "example_ct_sm.nii.gz", "example_seg_mr.nii.gz"])
def test_real_scans_written_back_on_identical_grids(realdata, tmp_path, name):
    source = realdata / "totalsegmentator_examples" / name
    label = "_seg" in name
    reference = read_image(source, "label" if label else "image")
    out = write_image(reference, tmp_path / name, reference, label=label)
    written, original = nib.load(out), nib.load(source)
    assert written.shape == original.shape
    np.testing.assert_array_equal(written.affine, original.affine)
    np.testing.assert_array_equal(written.header.get_sform(), original.header.get_sform())
    np.testing.assert_array_equal(written.header.get_qform(), original.header.get_qform())
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), np.asanyarray(original.dataobj))
