"""Write small DICOM series with SimpleITK, for reader tests."""

from __future__ import annotations

import locale
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def write_dicom_series(*args, **kwargs) -> Path:
    """:func:`_write_dicom_series`, leaving the process's locale as it was.

    GDCM's writer sets ``LC_ALL`` to ``C``; left so, Python's default text encoding turns
    ASCII for the rest of the test session (and ``subprocess.run(text=True)`` of a child that
    prints UTF-8 fails in whichever test comes next).
    """
    saved = locale.setlocale(locale.LC_ALL)
    try:
        return _write_dicom_series(*args, **kwargs)
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _write_dicom_series(
    folder,
    volume: np.ndarray,
    spacing=(0.8, 0.8, 2.0),
    origin=(-10.0, -20.0, 5.0),
    series_uid="1.2.826.0.1.3680043.2.1125.1",
    description="T2 AX",
    slice_thickness=None,
    skip_slices=(),
    direction=None,
    frame_of_reference_uid="1.2.826.0.1.3680043.2.1125.5",
    patient_id="P001",
) -> Path:
    """Write an ``(x, y, z)`` int16 volume as one DICOM file per slice (axial by default).

    ``origin`` is the LPS position of the first voxel. ``direction``: 3x3 matrix whose
    columns are the LPS directions of the volume's x (along a row), y (down a column) and
    z (slice to slice) axes; default the identity (axial). Slice positions advance by
    ``spacing[2]`` along z. ``slice_thickness`` sets the SliceThickness tag (default:
    the true spacing). Slices in ``skip_slices`` are not written (a gap).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    zyx = np.ascontiguousarray(volume.transpose(2, 1, 0)).astype(np.int16)
    direction = np.eye(3) if direction is None else np.asarray(direction, dtype=float)
    for k in range(zyx.shape[0]):
        if k in skip_slices:
            continue
        position = tuple(float(v) for v in np.asarray(origin, dtype=float) + k * spacing[2] * direction[:, 2])
        piece = sitk.GetImageFromArray(zyx[k : k + 1])
        piece.SetSpacing(spacing)
        piece.SetOrigin(position)
        piece.SetDirection(direction.flatten().tolist())
        tags = {
            "0008|0060": "MR",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.4",
            "0008|0018": f"{series_uid}.{k + 1}",
            "0008|103e": description,
            "0020|000d": "1.2.826.0.1.3680043.2.1125.9",
            "0020|000e": series_uid,
            "0020|0052": frame_of_reference_uid,
            "0010|0020": patient_id,
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.4f}" for v in position),
            "0020|0037": "\\".join(f"{v:.6f}" for v in (*direction[:, 0], *direction[:, 1])),
            "0018|0050": f"{slice_thickness if slice_thickness is not None else spacing[2]:g}",
            "0028|0030": f"{spacing[1]:g}\\{spacing[0]:g}",
        }
        for tag, value in tags.items():
            piece.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(piece)
    return folder
