"""Shared fixtures: tiny seeded volumes in tmp_path, and the real scans beside the project."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

REALDATA = Path(os.environ.get("MEDNET_REALDATA", Path(__file__).resolve().parents[1].parent / "shared" / "realdata"))


def lps_affine(spacing=(1.0, 1.5, 3.0), origin=(20.0, 30.0, -10.0)) -> np.ndarray:
    """An LPS-oriented affine (x and y axes flipped relative to RAS)."""
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = origin
    return affine


def write_nifti(path, data, affine=None, dtype=None) -> Path:
    """Save ``data`` as NIfTI (sform and qform set, code 1) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(data if dtype is None else np.asarray(data).astype(dtype))
    image = nib.Nifti1Image(data, lps_affine() if affine is None else affine)
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    nib.save(image, path)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def volume(rng) -> np.ndarray:
    """A 10 x 20 x 30 random intensity volume."""
    return rng.normal(100.0, 20.0, (10, 20, 30)).astype(np.float32)


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"real scans not found at {REALDATA} (set MEDNET_REALDATA to their folder)")
    return REALDATA
