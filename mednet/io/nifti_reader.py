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

__all__ = ["NiftiReader", "header_disagreement"]


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
