"""Read one medical image into a validated MONAI ``MetaTensor``.

NIfTI goes through :class:`~mednet.io.nifti_reader.NiftiReader` (MONAI's ``NibabelReader``
without its header rewriting); NRRD, MetaImage and DICOM series go
through :class:`~mednet.io.sitk_reader.SimpleITKReader`. Whatever the format, the
result is a ``(1, x, y, z)`` float32 ``MetaTensor`` whose ``affine`` maps voxel
indices to RAS world millimetres, and every problem is reported as an
:class:`~mednet.errors.InvalidImageError` naming the file.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
import torch
from monai.data import ImageReader, MetaTensor
from monai.utils import ImageMetaKey, MetaKeys, look_up_option

from mednet.errors import ImageNotFoundError, InvalidImageError
from mednet.io.nifti_reader import NiftiReader, header_disagreement
from mednet.io.sitk_reader import SITK_SUFFIXES, SimpleITKReader
from mednet.io.validation import SPACING_RANGE_MM, check_affine, check_values, squeeze_to_3d

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageKind",
    "RawImage",
    "is_image_path",
    "load_raw",
    "looks_like_dicom",
    "read_image",
    "to_metatensor",
]

NIFTI_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz")
IMAGE_SUFFIXES: tuple[str, ...] = NIFTI_SUFFIXES + SITK_SUFFIXES

# SimpleITK prints ITK's warnings straight to stderr; mednet reports problems itself.
sitk.ProcessObject_SetGlobalWarningDisplay(False)


class ImageKind(str, Enum):
    """What a volume holds: intensities or integer labels."""

    IMAGE = "image"
    LABEL = "label"


@dataclass
class RawImage:
    """A volume as read from disk, before validation.

    Attributes:
        path: the file or DICOM folder.
        array: ``(x, y, z)`` voxel values in the file's dtype (4D squeezed to 3D).
        affine: 4x4 voxel -> RAS world mm.
        dtype: the dtype stored in the file.
        format: ``"nifti"``, ``"nrrd"``, ``"metaimage"`` or ``"dicom"``.
        notes: remarks a reader should see (e.g. a DICOM header disagreeing with the geometry).
        header_spacing: NIfTI ``pixdim`` voxel sizes, None for other formats.
    """

    path: Path
    array: np.ndarray
    affine: np.ndarray
    dtype: np.dtype
    format: str
    notes: list[str] = field(default_factory=list)
    header_spacing: np.ndarray | None = None


def is_image_path(path: os.PathLike | str) -> bool:
    """Whether a file name has a suffix mednet reads (a DICOM folder is not a file name)."""
    return str(path).lower().endswith(IMAGE_SUFFIXES)


def looks_like_dicom(path: os.PathLike | str) -> bool:
    """Whether a file is DICOM: a ``.dcm`` suffix or the ``DICM`` marker after the 128-byte preamble."""
    path = Path(path)
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as stream:
            stream.seek(128)
            return stream.read(4) == b"DICM"
    except OSError:
        return False


def _format_of(path: Path) -> str:
    name = path.name.lower()
    if path.is_dir() or name.endswith(".dcm"):
        return "dicom"
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith((".nrrd", ".nhdr")):
        return "nrrd"
    return "metaimage"


def _gzip_problem(path: Path) -> str | None:
    """Describe what is wrong with a gzip stream, or None when it decompresses cleanly."""
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(1 << 20):
                pass
    except EOFError:
        return "truncated gzip stream (the file was cut short, e.g. an interrupted copy)"
    except (gzip.BadGzipFile, zlib.error, OSError) as err:
        return f"corrupt gzip stream ({err})"
    return None


def _nifti_pixdim(path: Path) -> np.ndarray:
    """The voxel sizes a NIfTI header stores, unchecked (nibabel silently takes abs of negative ones)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as stream:
        header = nib.Nifti1Header.from_fileobj(stream, check=False)
    return np.asarray(header["pixdim"][1:4], dtype=float)


def _reader_for(path: Path, series_uid: str | None) -> ImageReader:
    if path.is_dir() or path.name.lower().endswith(SITK_SUFFIXES):
        return SimpleITKReader(series_uid=series_uid)
    return NiftiReader()


def load_raw(path: os.PathLike | str, series_uid: str | None = None) -> RawImage:
    """Read a volume's voxels and geometry, refusing what cannot be read or is not 3D.

    Args:
        path: a ``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd`` or
            ``.dcm`` file, or a folder holding one DICOM series.
        series_uid: which series to read from a DICOM folder holding several.

    Returns:
        The :class:`RawImage`, not yet checked for values or spacing.

    Raises:
        ImageNotFoundError: nothing at ``path``.
        InvalidImageError: unsupported format, unreadable or corrupt file, not 3D.
    """
    path = Path(path)
    if not path.exists():
        raise ImageNotFoundError(
            path, "file not found", expected="an image file or a DICOM folder", found="nothing at this path"
        )
    if path.is_file() and not is_image_path(path):
        raise InvalidImageError(
            path,
            "not an image file",
            expected="one of " + ", ".join(IMAGE_SUFFIXES) + " or a DICOM folder",
            found=f"suffix {''.join(path.suffixes) or '(none)'}",
        )
    if path.is_file() and path.name.lower().endswith(".gz"):
        # A full pass checks the gzip CRC: nibabel stops reading at the end of the voxel
        # data and would return a damaged stream's garbage without a word.
        problem = _gzip_problem(path)
        if problem:
            raise InvalidImageError(path, problem, expected="a complete gzip-compressed NIfTI file")
    reader = _reader_for(path, series_uid)
    notes: list[str] = []
    try:
        loaded = reader.read(path)
        if isinstance(reader, NiftiReader) and (disagreement := header_disagreement(loaded)):
            notes.append(disagreement)
        array, meta = reader.get_data(loaded)
    except InvalidImageError:
        raise
    except (
        OSError,
        EOFError,
        ValueError,
        RuntimeError,
        nib.filebasedimages.ImageFileError,
        nib.spatialimages.HeaderDataError,
    ) as err:
        raise InvalidImageError(
            path,
            "unreadable image",
            expected=f"a valid {_format_of(path)} file",
            found=f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}",
        ) from err
    array = np.asarray(array)
    header_spacing = _nifti_pixdim(path) if isinstance(reader, NiftiReader) else None
    return RawImage(
        path=path,
        array=squeeze_to_3d(path, array),
        affine=np.asarray(meta[MetaKeys.AFFINE], dtype=float),
        dtype=array.dtype,
        format=_format_of(path),
        notes=notes + list(meta.get("dicom_notes", [])),
        header_spacing=header_spacing,
    )


def read_image(
    path: os.PathLike | str,
    kind: ImageKind | str = ImageKind.IMAGE,
    *,
    series_uid: str | None = None,
    spacing_range: tuple[float, float] = SPACING_RANGE_MM,
) -> MetaTensor:
    """Read and validate one 3D volume.

    Args:
        path: an image file or a DICOM series folder (see :func:`load_raw`).
        kind: ``"image"`` for intensities, ``"label"`` for a label map (integer
            values required; an empty map is fine).
        series_uid: which series to read from a DICOM folder holding several.
        spacing_range: plausible voxel sizes in mm.

    Returns:
        A float32 ``MetaTensor`` of shape ``(1, x, y, z)``. Its ``affine`` maps voxel
        indices to RAS world mm; ``meta`` also holds ``filename_or_obj``,
        ``original_affine``, ``spatial_shape``, ``original_dtype``, ``format`` and
        ``notes``.

    Raises:
        ImageNotFoundError: nothing at ``path``.
        InvalidImageError: the first problem found: unreadable, not 3D, bad
            spacing or affine, non-finite values, constant image, non-integer labels.

    Example:
        >>> image = read_image("BraTS2021_00000_t1.nii.gz")  # doctest: +SKIP
        >>> image.shape, image.affine.shape  # doctest: +SKIP
        (torch.Size([1, 240, 240, 155]), torch.Size([4, 4]))
    """
    kind = ImageKind(look_up_option(getattr(kind, "value", kind), [k.value for k in ImageKind]))
    raw = load_raw(path, series_uid=series_uid)
    problems = check_affine(raw.path, raw.affine, raw.header_spacing, spacing_range) + check_values(
        raw.path, raw.array, kind.value
    )
    if problems:
        raise problems[0]
    return to_metatensor(raw)


def to_metatensor(raw: RawImage) -> MetaTensor:
    """Wrap a :class:`RawImage` as a ``(1, x, y, z)`` float32 MetaTensor with MONAI metadata."""
    meta = {
        ImageMetaKey.FILENAME_OR_OBJ: str(raw.path),
        MetaKeys.ORIGINAL_AFFINE: raw.affine.copy(),
        MetaKeys.SPATIAL_SHAPE: np.asarray(raw.array.shape),
        MetaKeys.SPACE: "RAS",
        "original_dtype": str(raw.dtype),
        "format": raw.format,
        "notes": list(raw.notes),
    }
    data = torch.as_tensor(np.ascontiguousarray(raw.array, dtype=np.float32))[None]
    return MetaTensor(data, affine=torch.as_tensor(raw.affine, dtype=torch.float64), meta=meta)
