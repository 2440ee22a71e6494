"""Write volumes on a reference image's grid, atomically, never over an input.

Every image mednet writes lies on the grid of an input (the case's reference
sequence): exactly its shape and affine. When the reference is a NIfTI file its
header's sform and qform (matrices and codes) are copied unchanged, so viewers that
prefer either one show the output where they show the input.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.utils import ImageMetaKey

from mednet.errors import OutputExistsError, ProtectedInputError
from mednet.io.atomic import atomic_path
from mednet.io.grid import Grid

__all__ = ["label_dtype", "save_atomic", "write_image"]

_NIFTI_SUFFIXES = (".nii", ".nii.gz")


def label_dtype(array: np.ndarray) -> np.dtype:
    """The smallest integer dtype that holds every value of a label array."""
    lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
    for dtype in (np.uint8, np.uint16, np.int16, np.int32, np.int64):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dtype)
    raise ValueError(f"label values from {lo} to {hi} do not fit in int64")


def _reference_header(reference: MetaTensor) -> nib.Nifti1Header | None:
    source = str(reference.meta.get(ImageMetaKey.FILENAME_OR_OBJ, ""))
    if source.lower().endswith(_NIFTI_SUFFIXES) and Path(source).is_file():
        return nib.load(source).header
    return None


def _check_target(out: Path, protected: Iterable[Path], overwrite: bool) -> None:
    for path in protected:
        if out.resolve() == path.resolve() or (path.exists() and out.exists() and out.samefile(path)):
            raise ProtectedInputError(f"{out}: refusing to write over an input file; choose another output path")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out}: output exists; pass overwrite=True (--overwrite) to replace it")
    if not out.name.lower().endswith(_NIFTI_SUFFIXES):
        raise ValueError(f"{out}: output must be a NIfTI file (.nii or .nii.gz), found suffix {out.suffix!r}")


def write_image(
    data: np.ndarray | torch.Tensor,
    out_path: os.PathLike | str,
    reference: MetaTensor,
    *,
    label: bool = False,
    overwrite: bool = False,
    protect: Iterable[os.PathLike | str] = (),
) -> Path:
    """Write a volume on the reference image's grid as NIfTI.

    Args:
        data: ``(x, y, z)`` or ``(1, x, y, z)`` values on the reference grid, or
            ``(C, x, y, z)`` channels (not with ``label``), written as a 4D NIfTI with the
            channels last. A MetaTensor's own affine must match the reference's.
        out_path: ``.nii`` or ``.nii.gz`` file to write.
        reference: the input image (from :func:`mednet.io.read_image`) whose shape
            and affine the output takes; its file is protected from overwriting.
        label: write integer labels (smallest integer dtype that fits) instead of float32.
        overwrite: replace an existing output.
        protect: more input paths that must never be written over.

    Returns:
        The path written.

    Raises:
        ValueError: ``data`` is not on the reference grid, or the suffix is not NIfTI.
        OutputExistsError: the output exists and ``overwrite`` is False.
        ProtectedInputError: the output path is an input file.
    """
    out = Path(out_path)
    source = reference.meta.get(ImageMetaKey.FILENAME_OR_OBJ)
    protected = [Path(p) for p in protect] + ([Path(str(source))] if source else [])
    _check_target(out, protected, overwrite)

    target = Grid.of(reference)
    if isinstance(data, MetaTensor) and not Grid.of(data if data.ndim == 4 else data[None]).matches(target):
        raise ValueError(
            f"{out}: data is not on the reference grid of {source}: expected affine\n{target.affine}\n"
            f"found\n{np.asarray(data.affine)}; resample or invert it first"
        )
    array = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    elif array.ndim == 4 and not label:
        array = np.moveaxis(array, 0, -1)  # several channels: a 4D NIfTI, channels last
    if tuple(array.shape[:3]) != target.shape or array.ndim not in (3, 4):
        raise ValueError(
            f"{out}: data shape {tuple(array.shape)} does not match the reference grid {target.shape} of {source}"
        )
    if label:
        array = np.rint(array)
        array = array.astype(label_dtype(array))
    else:
        array = array.astype(np.float32)

    header = _reference_header(reference)
    if header is not None and np.allclose(header.get_best_affine(), target.affine, atol=1e-4):
        image = nib.Nifti1Image(array, None, header=header.copy())
        sform, sform_code = header.get_sform(coded=True)
        qform, qform_code = header.get_qform(coded=True)
        image.set_sform(sform if sform is not None else header.get_sform(), int(sform_code))
        image.set_qform(qform if qform is not None else header.get_qform(), int(qform_code))
    else:
        image = nib.Nifti1Image(array, target.affine)
        image.set_sform(target.affine, code=1)
        image.set_qform(target.affine, code=1)
    image.header.set_data_dtype(array.dtype)
    image.header.set_slope_inter(1.0, 0.0)
    image.header.set_xyzt_units(xyz="mm")
    save_atomic(image, out)
    return out


def save_atomic(image: nib.Nifti1Image, out: os.PathLike | str) -> None:
    """Save a NIfTI image atomically (:func:`mednet.io.atomic.atomic_path`), creating ``out``'s folder."""
    suffix = ".nii.gz" if str(out).lower().endswith(".gz") else ".nii"
    with atomic_path(out, suffix=suffix, parents=True) as tmp:
        nib.save(image, tmp)
