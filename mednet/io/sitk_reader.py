"""A MONAI ``ImageReader`` backed by SimpleITK: NRRD, MetaImage and DICOM series.

MONAI ships ``ITKReader`` for these formats, but it needs the ``itk`` package;
mednet depends on SimpleITK instead, so this reader gives MONAI's ``LoadImage`` /
``LoadImaged`` the same behaviour through SimpleITK: arrays in ``(x, y, z)`` order,
affines in RAS world coordinates (ITK works in LPS), and the usual MONAI metadata
keys (``affine``, ``original_affine``, ``spatial_shape``, ``space``).

DICOM folders are read as one series. A folder holding several series is refused
with a list of them, and ``series_uid`` picks one. The slice spacing comes from the
slice positions (ImagePositionPatient), not from the SliceThickness tag, which
scanners often fill with the nominal thickness; a disagreement is recorded in the
metadata (``dicom_notes``), and unevenly spaced slices (a missing slice) are refused.

Example:
    >>> from monai.transforms import LoadImage
    >>> load = LoadImage(reader=SimpleITKReader(), image_only=True)  # doctest: +SKIP
    >>> volume = load("scan.nrrd")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from monai.data import ImageReader
from monai.utils import MetaKeys, SpaceKeys

from mednet.errors import InvalidImageError
from mednet.io.memory import check_memory, decode_bytes
from mednet.io.validation import check_voxel_type

__all__ = ["SITK_SUFFIXES", "SimpleITKReader", "describe_dicom_series", "itk_error_text", "lps_to_ras"]

SITK_SUFFIXES: tuple[str, ...] = (".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")

_SERIES_DESCRIPTION = "0008|103e"
_SLICE_THICKNESS = "0018|0050"
_SPACING_BETWEEN_SLICES = "0018|0088"
_IMAGE_POSITION = "0020|0032"
_IMAGE_ORIENTATION = "0020|0037"
_MODALITY = "0008|0060"

# Relative spread of slice gaps above which a DICOM series is called unevenly spaced.
_UNEVEN_SLICE_TOLERANCE = 0.05

_NUMPY_DTYPES = {
    sitk.sitkInt8: np.int8,
    sitk.sitkUInt8: np.uint8,
    sitk.sitkInt16: np.int16,
    sitk.sitkUInt16: np.uint16,
    sitk.sitkInt32: np.int32,
    sitk.sitkUInt32: np.uint32,
    sitk.sitkInt64: np.int64,
    sitk.sitkUInt64: np.uint64,
    sitk.sitkFloat32: np.float32,
    sitk.sitkFloat64: np.float64,
    sitk.sitkComplexFloat32: np.complex64,
    sitk.sitkComplexFloat64: np.complex128,
}

# Where a detached header names its voxel file: MetaImage (.mhd) and NRRD (.nhdr).
_DATA_FILE_FIELD = {
    ".mhd": re.compile(r"^\s*ElementDataFile\s*=\s*(.+?)\s*$", re.MULTILINE),
    ".nhdr": re.compile(r"^\s*data ?file\s*:\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE),
}


def itk_error_text(message: str) -> str:
    """The informative part of an ITK / SimpleITK exception message, on one line.

    ITK messages start with the C++ source file and line, and prefix every line with the
    class and address of the object that failed; what is left says what went wrong.
    """
    lines = []
    for line in str(message).splitlines():
        line = re.sub(r"^(ITK ERROR: \w+\(0x[0-9a-fA-F]+\):|sitk::ERROR:|\[\w+\] \w+:)\s*", "", line.strip())
        if not line or line.startswith("Exception thrown in SimpleITK") or line.endswith(":") or "trouble" in line:
            continue
        lines.append(line)
    return "; ".join(lines) or str(message).strip().replace("\n", " ")


def _check_data_file(path: Path) -> None:
    """Refuse a detached header (.mhd, .nhdr) whose voxel file is missing, before ITK reports it obscurely."""
    pattern = _DATA_FILE_FIELD.get(path.suffix.lower())
    if pattern is None:
        return
    match = pattern.search(path.read_text(errors="replace")[:65536])
    if match is None:
        return
    name = match.group(1).split()[0]
    if name.upper() in ("LOCAL", "LIST") or "%" in name:
        return  # voxels inline, or a list / pattern of files ITK resolves itself
    data = path.parent / name
    if not data.is_file():
        raise InvalidImageError(
            path,
            "the voxel data file named by the header is missing",
            expected=f"{name} beside the header",
            found=f"no file {data}",
        )


def _check_header(path: Path, size: Sequence[int], pixel_id: int, components: int) -> None:
    """Refuse, from the header alone, voxels mednet cannot use and images too large to decode."""
    if components > 1:
        raise InvalidImageError(
            path,
            "vector or colour voxels",
            expected="one value per voxel (a grey-level volume)",
            found=f"{components} values per voxel ({sitk.GetPixelIDValueAsString(pixel_id)})",
        )
    dtype = np.dtype(_NUMPY_DTYPES.get(pixel_id, np.float64))
    if problems := check_voxel_type(path, dtype):
        raise problems[0]
    check_memory(path, decode_bytes(size, dtype), "decode", " x ".join(str(s) for s in size) + f" {dtype} voxels")


def lps_to_ras(affine: np.ndarray) -> np.ndarray:
    """Flip the first two world axes of a 4x4 affine (LPS <-> RAS; the map is its own inverse)."""
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine


def _sitk_affine(image: sitk.Image) -> np.ndarray:
    """The 4x4 RAS affine of a 3D SimpleITK image: voxel ``(x, y, z)`` index -> world mm."""
    dim = image.GetDimension()
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(dim, dim)[:3, :3]
    spacing = np.asarray(image.GetSpacing(), dtype=float)[:3]
    affine = np.eye(4)
    affine[:3, :3] = direction * spacing
    affine[:3, 3] = np.asarray(image.GetOrigin(), dtype=float)[:3]
    return lps_to_ras(affine)


def _tag(reader: sitk.ImageSeriesReader | sitk.ImageFileReader, key: str, index: int | None = None) -> str:
    if index is None:
        return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""
    return reader.GetMetaData(index, key).strip() if reader.HasMetaDataKey(index, key) else ""


def describe_dicom_series(folder: os.PathLike | str) -> list[dict]:
    """List the DICOM series in a folder.

    Args:
        folder: a folder of DICOM files (not searched recursively).

    Returns:
        One dict per series: ``uid``, ``description``, ``modality`` and ``files``
        (the number of files).
    """
    series = []
    for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)):
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
        head = sitk.ImageFileReader()
        head.SetFileName(files[0])
        head.ReadImageInformation()
        series.append(
            {
                "uid": uid,
                "description": _tag(head, _SERIES_DESCRIPTION),
                "modality": _tag(head, _MODALITY),
                "files": len(files),
            }
        )
    return series


def _folder_contents(folder: Path) -> str:
    """What a folder holds, in words, for a folder that was expected to hold a DICOM series."""
    entries = list(folder.iterdir())
    files = [e for e in entries if e.is_file() and not e.name.startswith(".")]
    folders = [e for e in entries if e.is_dir()]
    if not files and not folders:
        return "an empty folder"
    found = f"{len(files)} file(s), none of them DICOM"
    if files:
        found += f" (e.g. {sorted(files)[0].name})"
    if folders:
        found += (
            f", and {len(folders)} sub-folder(s) (e.g. {sorted(folders)[0].name}): "
            "a DICOM series is read from its own folder, give that one"
        )
    return found


class SimpleITKReader(ImageReader):
    """Load NRRD, MetaImage (``.mha``/``.mhd``), single DICOM files and DICOM series folders.

    Args:
        series_uid: for a DICOM folder holding several series, the SeriesInstanceUID
            of the one to read. None reads the folder's only series, and refuses a
            folder with several.
    """

    def __init__(self, series_uid: str | None = None):
        super().__init__()
        self.series_uid = series_uid

    def verify_suffix(self, filename: Sequence[os.PathLike | str] | os.PathLike | str) -> bool:
        """Whether every name is a folder (DICOM series) or has a SimpleITK suffix."""
        names = [filename] if isinstance(filename, str | os.PathLike) else list(filename)
        return all(Path(n).is_dir() or str(n).lower().endswith(SITK_SUFFIXES) for n in names)

    def read(self, data: Sequence[os.PathLike | str] | os.PathLike | str, **kwargs) -> sitk.Image:
        """Read one file or one DICOM series folder.

        Args:
            data: a path; a list is accepted only when it holds one path.
            kwargs: unused, for MONAI's reader interface.

        Returns:
            A ``SimpleITK.Image``; DICOM notes are kept on the reader for ``get_data``.

        Raises:
            InvalidImageError: several series in one folder, no series at all, or
                unevenly spaced slices.
        """
        names = [data] if isinstance(data, str | os.PathLike) else list(data)
        if len(names) != 1:
            raise ValueError(f"SimpleITKReader reads one image at a time, got {len(names)} paths")
        path = Path(names[0])
        self._dicom_notes: list[str] = []
        if path.is_dir():
            return self._read_series(path)
        _check_data_file(path)
        head = sitk.ImageFileReader()
        head.SetFileName(str(path))
        head.ReadImageInformation()
        _check_header(path, head.GetSize(), head.GetPixelID(), head.GetNumberOfComponents())
        return sitk.ReadImage(str(path))

    def _read_series(self, folder: Path) -> sitk.Image:
        uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
        if not uids:
            raise InvalidImageError(
                folder,
                "no DICOM series found",
                expected="a folder of DICOM files of one series",
                found=_folder_contents(folder),
            )
        if self.series_uid is not None:
            if self.series_uid not in uids:
                raise InvalidImageError(
                    folder,
                    "DICOM series not found",
                    expected=f"series {self.series_uid}",
                    found="series " + ", ".join(uids),
                )
            uid = self.series_uid
        elif len(uids) > 1:
            listing = "; ".join(
                f"{s['uid']} ({s['description'] or 'no description'}, {s['files']} files)"
                for s in describe_dicom_series(folder)
            )
            raise InvalidImageError(
                folder,
                "DICOM folder holds several series, say which one to read (series_uid)",
                expected="one series",
                found=f"{len(uids)} series: {listing}",
            )
        else:
            uid = uids[0]
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
        head = sitk.ImageFileReader()
        head.SetFileName(files[0])
        head.ReadImageInformation()
        size = list(head.GetSize())
        size[2:] = [max(1, size[2] if len(size) > 2 else 1) * len(files)]
        _check_header(folder, size, head.GetPixelID(), head.GetNumberOfComponents())
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(files)
        reader.MetaDataDictionaryArrayUpdateOn()
        image = reader.Execute()
        self._check_slice_positions(folder, reader, image, len(files))
        return image

    def _check_slice_positions(
        self, folder: Path, reader: sitk.ImageSeriesReader, image: sitk.Image, n_files: int
    ) -> None:
        """Refuse gaps between slices; note where the header's thickness disagrees with them."""
        if n_files < 2:
            return
        normal = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)[:, 2]
        positions = []
        for i in range(n_files):
            text = _tag(reader, _IMAGE_POSITION, i)
            if not text:
                return  # no positions (e.g. a multi-frame file): nothing to check against
            positions.append(float(np.dot(normal, [float(v) for v in text.split("\\")])))
        gaps = np.diff(np.sort(positions))
        step = float(np.median(gaps))
        if step <= 0 or np.max(np.abs(gaps - step)) > _UNEVEN_SLICE_TOLERANCE * step:
            raise InvalidImageError(
                folder,
                "DICOM slices are unevenly spaced (missing or duplicate slices?)",
                expected=f"one gap between consecutive slices (median {step:.3f} mm)",
                found=f"gaps from {gaps.min():.3f} to {gaps.max():.3f} mm",
            )
        thickness = _tag(reader, _SLICE_THICKNESS, 0)
        if thickness and abs(float(thickness) - step) > 0.01 * step:
            self._dicom_notes.append(
                f"SliceThickness tag says {float(thickness):g} mm; slices are {step:g} mm apart "
                "(ImagePositionPatient), which is the spacing used"
            )

    def get_data(self, img: sitk.Image) -> tuple[np.ndarray, dict]:
        """Return the voxel array in ``(x, y, z[, c])`` order and MONAI metadata with a RAS affine.

        Args:
            img: an image returned by ``read``.

        Returns:
            ``(array, meta)``: the array keeps the file's dtype; a 4D file gives
            ``(x, y, z, t)`` and a vector image ``(x, y, z, components)``.
        """
        array = sitk.GetArrayFromImage(img)
        n_spatial = img.GetDimension()
        if img.GetNumberOfComponentsPerPixel() > 1:
            # (z, y, x, c) -> (x, y, z, c)
            array = np.moveaxis(array, list(range(n_spatial)), list(range(n_spatial))[::-1])
        else:
            array = array.transpose()
        spatial = min(n_spatial, 3)
        meta: dict = {
            MetaKeys.SPATIAL_SHAPE: np.asarray(array.shape[:spatial]),
            MetaKeys.SPACE: SpaceKeys.RAS,
            MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan") if array.ndim == spatial else -1,
            "dicom_notes": list(getattr(self, "_dicom_notes", [])),
        }
        if n_spatial >= 3:
            affine = _sitk_affine(img)
        else:  # a 2D file: keep what it says, the caller refuses it
            affine = np.eye(4)
            affine[:2, :2] = np.asarray(img.GetDirection()).reshape(2, 2) * np.asarray(img.GetSpacing())
            affine[:2, 3] = img.GetOrigin()
            affine = lps_to_ras(affine)
        meta[MetaKeys.AFFINE] = affine
        meta[MetaKeys.ORIGINAL_AFFINE] = affine.copy()
        return array, meta
