"""ResampleToReference(d): on the reference grid, interpolating only what is off it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from mednet.io import NiftiReader
from mednet.transforms import ResampleToReference, ResampleToReferenced
from tests.conftest import lps_affine, write_nifti


def test_same_grid_is_not_interpolated(volume):
    reference = MetaTensor(torch.zeros(1, 10, 20, 30), affine=torch.tensor(lps_affine()))
    nudged = lps_affine()
    nudged[0, 3] += 1e-4
    image = MetaTensor(torch.tensor(volume)[None], affine=torch.tensor(nudged))
    image.meta["filename_or_obj"] = "flair.nii.gz"
    out = ResampleToReference()(image, reference)
    assert torch.equal(out.as_tensor(), image.as_tensor())
    assert torch.equal(out.affine, reference.affine)
    # not copied (the same voxels), but the input keeps its own affine and metadata
    assert out.data_ptr() == image.data_ptr()
    assert torch.equal(image.affine, torch.tensor(nudged, dtype=image.affine.dtype))
    out.meta["filename_or_obj"] = "changed"
    assert image.meta["filename_or_obj"] == "flair.nii.gz"


def test_dictionary_pipeline_with_a_real_loader(tmp_path, volume, rng):
    other = lps_affine(spacing=(0.9, 1.4, 2.5), origin=(21.0, 29.0, -8.0))
    files = {
        "t1": write_nifti(tmp_path / "t1.nii.gz", volume),
        "flair": write_nifti(tmp_path / "flair.nii.gz", rng.normal(size=(12, 18, 25)), other),
        "label": write_nifti(tmp_path / "seg.nii.gz", rng.integers(0, 3, (12, 18, 25)).astype(np.uint8), other),
    }
    pipeline = Compose(
        [
            LoadImaged(keys=list(files), reader=NiftiReader()),
            EnsureChannelFirstd(keys=list(files)),
            ResampleToReferenced(keys=["flair", "label"], ref_key="t1", label_keys=["label"]),
        ]
    )
    out = pipeline({k: str(v) for k, v in files.items()})
    for key in ("flair", "label"):
        assert out[key].shape == (1, 10, 20, 30)
        np.testing.assert_allclose(out[key].affine.numpy(), lps_affine())
    assert set(np.unique(out["label"].numpy())) <= {0.0, 1.0, 2.0}
    with pytest.raises(KeyError, match=r"reference key 't2' not in the data"):
        ResampleToReferenced(keys=["flair"], ref_key="t2")(out)
