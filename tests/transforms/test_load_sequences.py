"""LoadSequencesd: a case's sequences from separate files or from one stacked file (MONAI Label)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

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
    assert set(separate) == {"case_id", "image"}  # the per-sequence keys are removed
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


def test_clear_errors(case, tmp_path):
    load = LoadSequencesd(KEYS, "image")
    with pytest.raises(KeyError, match=r"not \['flair'\]"):
        load({k: v for k, v in case.items() if k != "flair"})
    with pytest.raises(KeyError, match="stacked file under 'image'"):
        load({"case_id": "x"})
    two = write_stacked_case(case, KEYS[:2], tmp_path / "two.nii.gz")
    with pytest.raises(ValueError, match=r"expected a stacked image of 3 sequences .* found shape \(2, 12, 10, 6\)"):
        load({"image": str(two)})
