"""A tiny BraTS-style glioma cohort: ellipsoid head, one tumour, four sequences.

Small and fast (48 x 48 x 32 voxels), for the demo and for tests of the I/O layer.
It exercises what real folders throw at mednet: BraTS 2021 file names, the BraTS
2019 ``HGG``/``LGG`` folder layout, an LPS reference grid, and a FLAIR acquired on
its own grid (another matrix, RAS, shifted) that has to be resampled.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = ["write_toy_brats_cohort"]

_SHAPE = (48, 48, 32)
# Relative intensities of (background, brain, oedema, necrosis, enhancing tumour) per sequence.
_CONTRAST = {
    "t1": (0.0, 0.60, 0.45, 0.30, 0.55),
    "t1ce": (0.0, 0.60, 0.45, 0.30, 1.00),
    "t2": (0.0, 0.50, 0.85, 0.95, 0.70),
    "flair": (0.0, 0.45, 0.95, 0.40, 0.70),
}


def _affine(spacing: tuple[float, float, float], flip_xy: bool, origin: np.ndarray) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    if flip_xy:
        affine[:2, :2] *= -1
    affine[:3, 3] = origin
    return affine


def _world(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return index @ affine[:3, :3].T + affine[:3, 3]


def _tissue(world: np.ndarray, centre: np.ndarray, radius: float, grade: str, head: np.ndarray) -> np.ndarray:
    """Tissue class per voxel: 0 background, 1 brain, 2 oedema, 3 necrosis, 4 enhancing rim."""
    inside = np.sum((world / head) ** 2, axis=-1) <= 1.0
    d = np.linalg.norm(world - centre, axis=-1)
    tissue = inside.astype(np.int8)
    if grade == "HGG":
        tissue[inside & (d <= radius * 1.8)] = 2
        tissue[inside & (d <= radius)] = 4
        tissue[inside & (d <= radius * 0.6)] = 3
    else:
        tissue[inside & (d <= radius)] = 2
    return tissue


def write_toy_brats_cohort(out: os.PathLike | str, n_cases: int = 6, seed: int = 0) -> Path:
    """Write ``n_cases`` toy cases as ``out/{HGG,LGG}/<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz``.

    Labels follow BraTS: 1 necrotic core, 2 oedema, 4 enhancing tumour (the BraTS
    2019-2021 file convention). Half the cases are HGG (ring-enhancing, necrotic,
    oedematous), half LGG (non-enhancing, oedema-like signal only).

    Args:
        out: folder to create.
        n_cases: number of cases.
        seed: random seed.

    Returns:
        ``out`` as a Path.
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    spacing = (3.0, 3.0, 4.0)
    for i in range(n_cases):
        grade = "HGG" if i % 2 == 0 else "LGG"
        case = f"Toy_{i:03d}"
        folder = out / grade / case
        folder.mkdir(parents=True, exist_ok=True)
        reference = _affine(spacing, True, np.array([70.0, 70.0, -62.0]))  # LPS, centred on the head
        # FLAIR: its own matrix, RAS, shifted by a few mm
        flair_shape = (44, 52, 30)
        flair_affine = _affine((3.2, 2.8, 4.0), False, np.array([-70.0, -72.0, -58.0]) + rng.uniform(-3, 3, 3))
        head = np.array([60.0, 66.0, 52.0]) * rng.uniform(0.9, 1.05)
        centre = rng.uniform(-20, 20, 3) * np.array([1, 1, 0.6])
        radius = rng.uniform(8, 13)
        scale = rng.uniform(600, 1400)
        for key, contrast in _CONTRAST.items():
            shape, affine = (flair_shape, flair_affine) if key == "flair" else (_SHAPE, reference)
            tissue = _tissue(_world(shape, affine), centre, radius, grade, head)
            values = np.take(np.asarray(contrast), tissue) * scale
            values = np.abs(values + rng.normal(0, 0.03 * scale, shape) + 1j * rng.normal(0, 0.03 * scale, shape))
            nib.save(nib.Nifti1Image(values.astype(np.int16), affine), folder / f"{case}_{key}.nii.gz")
        tissue = _tissue(_world(_SHAPE, reference), centre, radius, grade, head)
        seg = np.take(np.array([0, 0, 2, 1, 4], dtype=np.uint8), tissue)
        nib.save(nib.Nifti1Image(seg, reference), folder / f"{case}_seg.nii.gz")
    return out
