"""MONAI's ``NibabelReader`` without its silent header "correction".

MONAI's reader rewrites a NIfTI header whose sform voxel sizes disagree with
``pixdim`` (it may replace the sform by the qform, or the other way round). The
NIfTI standard says the sform, when its code is set, is the voxel-to-world map, and
that is what nibabel and viewers use; mednet keeps it, and reports a disagreement
instead of hiding it, so that a lesion map lands where the viewer shows the input.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import nibabel as nib
import numpy as np
from monai.data import NibabelReader
from monai.utils import ensure_tuple

__all__ = ["NiftiReader", "header_disagreement", "header_notes"]

# sform and qform are said to disagree when they place a corner of the volume this far
# apart (mm): well above the float32 rounding of headers, well below a voxel.
_FORM_TOLERANCE_MM = 0.01


def header_notes(image: nib.Nifti1Image) -> list[str]:
    """What a reader should know about a NIfTI header's geometry: which transform is used, and disagreements.

    Args:
        image: a NIfTI-1 or NIfTI-2 image as loaded by nibabel (header only is used).

    Returns:
        Notes, possibly none: sform and qform disagreeing (the sform is used), no
        transform at all (orientation unknown), ``pixdim`` disagreeing with the transform.
    """
    header = image.header
    notes = []
    sform_code, qform_code = int(header["sform_code"]), int(header["qform_code"])
    if sform_code > 0 and qform_code > 0:
        shape = np.asarray((tuple(header.get_data_shape()) + (1, 1, 1))[:3], dtype=float)
        corners = np.array([[0, 0, 0, 1], [*(shape - 1), 1]]).T
        gap = np.abs(header.get_sform() @ corners - header.get_qform() @ corners).max()
        if gap > _FORM_TOLERANCE_MM:
            notes.append(
                f"sform and qform disagree (by up to {gap:.3g} mm at the corners of the volume); the sform is "
                "used, as nibabel and most viewers do (the NIfTI standard's choice when its code is set)"
            )
    elif sform_code == 0 and qform_code == 0:
        notes.append(
            "no sform or qform (both codes 0): the orientation is unknown; nibabel's default (voxel sizes from "
            "pixdim, x flipped) is used, so left and right may be swapped"
        )
    if disagreement := header_disagreement(image):
        notes.append(disagreement)
    return notes


def header_disagreement(image: nib.Nifti1Image) -> str | None:
    """Describe a disagreement between a NIfTI header's affine and its ``pixdim``, or None."""
    zooms = np.asarray(image.header.get_zooms()[:3], dtype=float)
    from_affine = np.linalg.norm(image.affine[:3, :3], axis=0)[: zooms.size]
    if np.allclose(zooms, from_affine, rtol=1e-3, atol=1e-4):
        return None
    return (
        f"header pixdim {tuple(round(float(z), 4) for z in zooms)} disagrees with the "
        f"{'sform' if image.header['sform_code'] > 0 else 'qform'} voxel sizes "
        f"{tuple(round(float(s), 4) for s in from_affine)}; the "
        f"{'sform' if image.header['sform_code'] > 0 else 'qform'} is used (NIfTI standard)"
    )


class NiftiReader(NibabelReader):
    """Read NIfTI with nibabel, keeping the header's affine as it is.

    Use it in bundle configs as ``"reader": "mednet.io.NiftiReader"`` so that
    training and inference see the same geometry as :func:`mednet.io.read_image`.
    """

    def read(self, data: Sequence[os.PathLike | str] | os.PathLike | str, **kwargs):
        """Load one or several NIfTI files with ``nibabel.load`` (no header rewriting)."""
        filenames = ensure_tuple(data)
        self.filenames = filenames
        options = {**self.kwargs, **kwargs}
        images = [nib.load(name, **options) for name in filenames]
        return images if len(filenames) > 1 else images[0]

    def read_content(self, path: os.PathLike | str, content: bytes) -> nib.Nifti1Image:
        """One NIfTI file already decompressed (``content``: its bytes), as :meth:`read` would give it.

        For a ``.nii.gz``: mednet decompresses it once, checking its CRC on the way, instead
        of once for the check and once more for nibabel.
        """
        self.filenames = (path,)
        nifti1 = 348 in (int.from_bytes(content[:4], order) for order in ("little", "big"))
        return (nib.Nifti1Image if nifti1 else nib.Nifti2Image).from_bytes(content)
