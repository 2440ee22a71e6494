"""LoadSequencesd: a case's sequences from separate files or from one stacked file (MONAI Label)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from mednet.errors import DatalistError, InvalidImageError
from mednet.io import read_image
from mednet.io.studies import write_stacked_case
from mednet.transforms import LoadSequencesd
from tests.conftest import lps_affine, write_nifti

KEYS = ["t1", "t2", "flair"]


@pytest.fixture
def case(tmp_path, rng) -> dict:
    """Three sequences in LPS; FLAIR on a coarser grid than T1, so it must be resampled."""
    shape = (12, 10, 6)
    case = {"case_id": "GLI_9"}
    for i, key in enumerate(KEYS):
        data = rng.normal(100.0 * (i + 1), 10.0, shape).astype(np.float32)
        affine = lps_affine() if key != "flair" else lps_affine(spacing=(2.0, 3.0, 3.0))
        case[key] = str(write_nifti(tmp_path / f"GLI_9_{key}.nii.gz", data if key != "flair" else data[:6, :5], affine))
    return case


def test_separate_and_stacked_files_give_the_same_image(case, tmp_path):
    load = LoadSequencesd(KEYS, "image")
    separate = load(dict(case))
    assert set(separate) == {"case_id", "image", "sequences_used"}  # the per-sequence keys are removed
    assert separate["sequences_used"] == KEYS
    image = separate["image"]
    assert tuple(image.shape) == (3, 12, 10, 6)
    reference = nib.load(case["t1"])
    assert np.allclose(image.affine.numpy(), reference.affine)
    assert np.allclose(image[0].numpy(), reference.get_fdata(), atol=1e-4)  # channel 0 is t1, untouched

    study = write_stacked_case(case, KEYS, tmp_path / "studies" / "GLI_9.nii.gz")
    written = nib.load(study)
    assert written.shape == (12, 10, 6, 3)  # channels last
    assert np.allclose(written.affine, reference.affine)
    assert int(written.header["sform_code"]) == int(reference.header["sform_code"])
    stacked = load({"image": str(study)})["image"]
    assert tuple(stacked.shape) == (3, 12, 10, 6)
    assert np.allclose(stacked.affine.numpy(), image.affine.numpy())
    assert torch.allclose(stacked.as_tensor().float(), image.as_tensor().float(), atol=1e-4)


def test_missing_sequences_are_zero_channels_on_the_first_present_grid(case):
    without_t1 = {k: v for k, v in case.items() if k != "t1"}
    loaded = LoadSequencesd(KEYS, "image")(without_t1)
    image = loaded["image"]
    assert loaded["sequences_used"] == ["t2", "flair"]
    assert tuple(image.shape) == (3, 12, 10, 6)  # t2's grid, the first present
    assert not image[0].any()  # t1 missing: zeros
    np.testing.assert_allclose(image[1].numpy(), nib.load(case["t2"]).get_fdata(), atol=1e-4)
    assert np.allclose(image.affine.numpy(), nib.load(case["t2"]).affine)
    with pytest.raises(DatalistError, match=r"case GLI_9: missing sequence\(s\) t1"):
        LoadSequencesd(KEYS, "image", allow_missing_keys=False)(without_t1)
    with pytest.raises(DatalistError, match="at least one"):
        LoadSequencesd(KEYS, "image")({"case_id": "GLI_9", "t1": ""})


def test_images_already_read_give_the_same_stack(case):
    from_files = LoadSequencesd(KEYS, "image")(dict(case))["image"]
    held = {"case_id": "GLI_9", **{k: read_image(case[k]) for k in KEYS}}
    from_memory = LoadSequencesd(KEYS, "image")(held)["image"]
    assert torch.equal(from_files.as_tensor(), from_memory.as_tensor())
    assert torch.equal(from_files.affine, from_memory.affine)


def test_bad_files_are_refused_by_mednet_io_with_their_name(case, tmp_path):
    bad = tmp_path / "GLI_9_t2_nan.nii.gz"
    data = np.ones((12, 10, 6), np.float32)
    data[3, 3, 3] = np.nan
    write_nifti(bad, data)
    with pytest.raises(InvalidImageError, match=r"GLI_9_t2_nan.nii.gz: .*NaN"):
        LoadSequencesd(KEYS, "image")({**case, "t2": str(bad)})
    cut = tmp_path / "GLI_9_t2_cut.nii.gz"
    cut.write_bytes(Path(case["t2"]).read_bytes()[:200])
    with pytest.raises(InvalidImageError, match=r"GLI_9_t2_cut.nii.gz: truncated gzip"):
        LoadSequencesd(KEYS, "image")({**case, "t2": str(cut)})


def test_nrrd_sequence(case, tmp_path):
    import SimpleITK as sitk

    nrrd = tmp_path / "GLI_9_t2.nrrd"
    sitk.WriteImage(sitk.ReadImage(case["t2"]), str(nrrd))
    from_nrrd = LoadSequencesd(KEYS, "image")({**case, "t2": str(nrrd)})["image"]
    from_nifti = LoadSequencesd(KEYS, "image")(dict(case))["image"]
    torch.testing.assert_close(from_nrrd.as_tensor(), from_nifti.as_tensor(), atol=1e-3, rtol=0)


def test_clear_errors(case, tmp_path):
    load = LoadSequencesd(KEYS, "image")
    with pytest.raises(KeyError, match="stacked file under 'image'"):
        load({"case_id": "x"})
    two = write_stacked_case(case, KEYS[:2], tmp_path / "two.nii.gz")
    with pytest.raises(ValueError, match=r"expected a stacked image of 3 sequences .* found shape \(2, 12, 10, 6\)"):
        load({"image": str(two)})


def test_none_and_empty_paths_are_missing_sequences(case):
    """A datalist written by hand may give a missing sequence as null or "": both are a zero channel."""
    for missing in (None, ""):
        loaded = LoadSequencesd(KEYS, "image")({**case, "t2": missing})
        assert loaded["sequences_used"] == ["t1", "flair"] and not loaded["image"][1].any()
        assert "t2" not in loaded
    from mednet.transforms import LoadCased

    only = LoadCased(KEYS, allow_missing_keys=True)({**case, "t1": None})
    assert only["sequences_used"] == ["t2", "flair"] and "t1" not in only
