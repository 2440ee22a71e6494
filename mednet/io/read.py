"""Read one medical image into a validated MONAI ``MetaTensor``.

NIfTI goes through :class:`~mednet.io.nifti_reader.NiftiReader` (MONAI's ``NibabelReader``
without its header rewriting); NRRD, MetaImage and DICOM series go
through :class:`~mednet.io.sitk_reader.SimpleITKReader`. Whatever the format, the
result is a ``(1, x, y, z)`` float32 ``MetaTensor`` whose ``affine`` maps voxel
indices to RAS world millimetres, and every problem is reported as an
:class:`~mednet.errors.InvalidImageError` naming the file.
"""

from __future__ import annotations

import errno
import gzip
import math
import os
import re
import stat
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

from mednet.errors import ImageNotFoundError, InvalidImageError, MednetError
from mednet.io.memory import check_memory, decode_bytes, format_bytes
from mednet.io.nifti_reader import NiftiReader, header_notes
from mednet.io.sitk_reader import SITK_SUFFIXES, SimpleITKReader, itk_error_text
from mednet.io.validation import (
    SPACING_RANGE_MM,
    check_affine,
    check_values,
    check_voxel_type,
    squeeze_to_3d,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageKind",
    "RawImage",
    "describe_content",
    "is_image_path",
    "load_raw",
    "looks_like_dicom",
    "read_image",
    "to_metatensor",
    "validate",
]

NIFTI_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz")
IMAGE_SUFFIXES: tuple[str, ...] = NIFTI_SUFFIXES + SITK_SUFFIXES

# SimpleITK prints ITK's warnings straight to stderr; mednet reports problems itself.
sitk.ProcessObject_SetGlobalWarningDisplay(False)

# How much of a file's start is enough to tell its format (NIfTI-2 headers are 540 bytes).
_SNIFF_BYTES = 1024


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


def _sniff(head: bytes) -> tuple[str, str]:
    """``(format, description)`` of a file from its first bytes (gzip streams are not opened here)."""
    if not head:
        return "empty", "an empty file (0 bytes)"
    if head[:2] == b"\x1f\x8b":
        return "gzip", "gzip-compressed data"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png", "a PNG image"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg", "a JPEG image"
    if head[:4] == b"PK\x03\x04":
        return "zip", "a ZIP archive"
    if head[:4] == b"NRRD":
        return "nrrd", "a NRRD file"
    if head[128:132] == b"DICM":
        return "dicom", "a DICOM file"
    for order in ("little", "big"):
        size = int.from_bytes(head[:4], order)
        if size == 348 and head[344:347] in (b"n+1", b"ni1"):
            return "nifti", "a NIfTI-1 file"
        if size == 540 and head[4:7] in (b"n+2", b"ni2"):
            return "nifti", "a NIfTI-2 file"
        if size == 348:
            return "analyze", "an Analyze 7.5 header (no NIfTI magic)"
    if re.search(rb"^\s*(ObjectType|NDims|DimSize|ElementType)\s*=", head, re.MULTILINE):
        return "metaimage", "a MetaImage file"
    text = head[:200]
    if all(32 <= b < 127 or b in b"\t\r\n" for b in text):
        return "text", f"a text file starting {text[:40].decode('ascii')!r}"
    return "unknown", f"unrecognised binary data starting {text[:8].hex(' ')}"


def describe_content(path: os.PathLike | str) -> tuple[str, str]:
    """What a file holds, judged from its first bytes, whatever its name says.

    Returns:
        ``(format, description)``: format is one of ``nifti``, ``gzip-nifti``, ``nrrd``,
        ``metaimage``, ``dicom``, ``analyze``, ``png``, ``jpeg``, ``zip``, ``gzip``
        (something else compressed), ``gzip-damaged``, ``text``, ``empty``, ``unknown``.

    Raises:
        InvalidImageError: the file cannot be opened.
    """
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            head = stream.read(_SNIFF_BYTES)
        kind, description = _sniff(head)
        if kind == "gzip":
            try:
                with gzip.open(path, "rb") as stream:
                    inner_kind, inner = _sniff(stream.read(_SNIFF_BYTES))
            except (EOFError, OSError, zlib.error):
                return "gzip-damaged", "damaged gzip-compressed data"
            if inner_kind == "nifti":
                return "gzip-nifti", f"gzip-compressed {inner.removeprefix('a ')}"
            return "gzip", f"gzip-compressed {inner.removeprefix('a ').removeprefix('an ')}"
    except OSError as err:
        raise InvalidImageError(
            path, "cannot open the file", expected="a readable file", found=err.strerror or str(err)
        ) from err
    return kind, description


# What each suffix promises, and the suffix that fits each content.
_PROMISED = {".nii.gz": "gzip-nifti", ".nii": "nifti", ".nrrd": "nrrd", ".nhdr": "nrrd", ".mha": "metaimage",
             ".mhd": "metaimage", ".dcm": "dicom"}  # fmt: skip
_PROMISE_WORDS = {"gzip-nifti": "a gzip-compressed NIfTI file", "nifti": "an uncompressed NIfTI file",
                  "nrrd": "a NRRD file", "metaimage": "a MetaImage file", "dicom": "a DICOM file"}  # fmt: skip
_RENAME = {"gzip-nifti": ".nii.gz", "nifti": ".nii", "nrrd": ".nrrd", "metaimage": ".mha", "dicom": ".dcm"}


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in sorted(_PROMISED, key=len, reverse=True) if name.endswith(s)), "")


def _check_path(path: Path) -> None:
    """Refuse, by name, a path that holds no file mednet could read: before opening anything."""
    if path.is_symlink() and not path.exists():
        try:
            os.stat(path)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise InvalidImageError(
                    path,
                    "symbolic link loop",
                    expected="a link to an image file",
                    found="links pointing back on themselves",
                ) from err
        raise ImageNotFoundError(
            path,
            "dangling symbolic link",
            expected="a link to an existing image file",
            found=f"a link to {os.readlink(path)}, which does not exist",
        )
    if not path.exists():
        raise ImageNotFoundError(
            path, "file not found", expected="an image file or a DICOM folder", found="nothing at this path"
        )
    if path.is_dir():
        if is_image_path(path) and _suffix(path) != ".dcm":  # a DICOM series' folder may be named *.dcm
            raise InvalidImageError(
                path,
                "a folder named like an image file",
                expected=f"a {_suffix(path) or 'image'} file",
                found=f"a folder ({sum(1 for _ in path.iterdir())} entries)",
            )
        return
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        what = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise InvalidImageError(path, "not a regular file", expected="an image file", found=what)
    if not is_image_path(path):
        raise InvalidImageError(
            path,
            "not an image file",
            expected="one of " + ", ".join(IMAGE_SUFFIXES) + " or a DICOM folder",
            found=f"suffix {''.join(path.suffixes) or '(none)'}",
        )
    if path.stat().st_size == 0:
        raise InvalidImageError(path, "empty file", expected="an image file", found="0 bytes")


def _check_content(path: Path) -> None:
    """Refuse a file whose content is not what its suffix says (a NRRD named .nii.gz, a PNG named .nii)."""
    suffix = _suffix(path)
    promised = _PROMISED[suffix]
    kind, description = describe_content(path)
    if kind == promised or (promised, kind) == ("gzip-nifti", "gzip-damaged"):
        return  # a damaged stream is described by the full pass over it (_gunzip)
    if promised == "dicom" and kind in ("unknown", "gzip", "gzip-damaged"):
        return  # DICOM files may lack the preamble (and may be compressed); ITK judges them
    hint = f" (rename it {path.name[: -len(suffix)]}{_RENAME[kind]} to read it)" if kind in _RENAME else ""
    raise InvalidImageError(
        path,
        f"not {_PROMISE_WORDS[promised]}",
        expected=f"{_PROMISE_WORDS[promised]} (from the suffix {suffix})",
        found=description + hint,
    )


def _gunzip(path: Path) -> tuple[bytes, int]:
    """A gzip NIfTI file's content, decompressed in one pass that also checks its CRC.

    Only as much as the header says the file holds is kept (the header's voxel offset plus
    its voxels, or everything when the header cannot be read); what follows is read
    through, for the CRC, and counted. The header's memory need is checked before the
    voxels are decompressed (:func:`_check_nifti_header` checks it again, with the rest).

    Returns:
        ``(content, length)``: the content kept and the length of the whole decompressed stream.

    Raises:
        InvalidImageError: a truncated or corrupt stream; an image too large for the memory.
    """
    keep = _declared_size(path)
    parts: list[bytes] = []
    kept = length = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(1 << 24):
                if keep is None or kept < keep:
                    part = chunk if keep is None else chunk[: keep - kept]
                    parts.append(part)
                    kept += len(part)
                length += len(chunk)
    except EOFError as err:
        raise InvalidImageError(
            path,
            "truncated gzip stream (the file was cut short, e.g. an interrupted copy)",
            expected="a complete gzip-compressed NIfTI file",
            found=f"a stream without its end, {format_bytes(path.stat().st_size)} on disk",
        ) from err
    except (gzip.BadGzipFile, zlib.error, OSError) as err:
        raise InvalidImageError(
            path,
            "corrupt gzip stream (damaged in storage or transfer)",
            expected="a complete gzip-compressed NIfTI file",
            found=" ".join(str(err).split()) or type(err).__name__,
        ) from err
    content = parts[0] if len(parts) == 1 else b"".join(parts)
    return content, length


def _declared_size(path: Path) -> int | None:
    """The bytes a NIfTI file's header says it holds (offset + voxels), after checking their memory need.

    None when the header cannot be read here (the reader then says what is wrong).
    """
    try:
        header = _nifti_header(path)
        shape = tuple(int(s) for s in header.get_data_shape())
        dtype = header.get_data_dtype()
        offset = int(header.get_data_offset())
    except Exception:  # a damaged or foreign header: read everything, the reader then refuses it
        return None
    if not shape or min(shape) < 1:
        return None
    check_memory(path, decode_bytes(shape, dtype), "decode", " x ".join(map(str, shape)) + f" {dtype} voxels")
    return offset + math.prod(shape) * dtype.itemsize


def _check_nifti_header(path: Path, image: nib.Nifti1Image, content_length: int) -> None:
    """Refuse, from the header alone, voxels mednet cannot use, missing voxel data and images too large."""
    header = image.header
    dtype = header.get_data_dtype()
    if problems := check_voxel_type(path, dtype):
        raise problems[0]
    shape = tuple(int(s) for s in header.get_data_shape())
    described = " x ".join(str(s) for s in shape) + f" {dtype} voxels"
    if not shape or min(shape) < 1:
        raise InvalidImageError(
            path, "invalid dimensions in the header", expected="positive sizes", found=f"shape {shape}"
        )
    offset = int(getattr(image.dataobj, "offset", header.get_data_offset()))  # a loaded header says 0
    need = math.prod(shape) * dtype.itemsize
    if content_length - offset < need:
        raise InvalidImageError(
            path,
            "voxel data shorter than the header says (a cut file or a corrupt header)",
            expected=f"{format_bytes(need)} of voxels ({described}) after the {offset}-byte header",
            found=f"{format_bytes(max(content_length - offset, 0))}",
        )
    check_memory(path, decode_bytes(shape, dtype), "decode", described)


def _nifti_header(path: Path, head: bytes | None = None) -> nib.Nifti1Header:
    """A NIfTI-1 or NIfTI-2 header as stored, unchecked, from the file or its first bytes ``head``."""
    if head is None:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as stream:
            head = stream.read(540)
    nifti1 = 348 in (int.from_bytes(head[:4], order) for order in ("little", "big"))
    header_class, size = (nib.Nifti1Header, 348) if nifti1 else (nib.Nifti2Header, 540)
    return header_class(binaryblock=head[:size], check=False)


def _nifti_pixdim(path: Path, head: bytes | None = None) -> np.ndarray:
    """The voxel sizes a NIfTI header stores, unchecked (nibabel silently takes abs of negative ones)."""
    return np.asarray(_nifti_header(path, head)["pixdim"][1:4], dtype=float)


def _reader_for(path: Path, series_uid: str | None) -> ImageReader:
    if path.is_dir() or path.name.lower().endswith(SITK_SUFFIXES):
        return SimpleITKReader(series_uid=series_uid)
    return NiftiReader()


def _reason(err: BaseException) -> str:
    """An exception from a reader, on one line, ITK's source locations removed."""
    text = itk_error_text(str(err)) if isinstance(err, RuntimeError) else " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def load_raw(path: os.PathLike | str, series_uid: str | None = None) -> RawImage:
    """Read a volume's voxels and geometry, refusing what cannot be read or is not 3D.

    Before any voxel is read, the path is checked (a file, a link that resolves, a
    folder only for DICOM), the content is checked against the suffix (a NRRD named
    ``.nii.gz`` is refused), a gzip stream is checked whole (CRC), and the header's
    voxel type, size and memory need are checked (:mod:`mednet.io.memory`).

    Args:
        path: a ``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd`` or
            ``.dcm`` file, or a folder holding one DICOM series.
        series_uid: which series to read from a DICOM folder holding several.

    Returns:
        The :class:`RawImage`, not yet checked for values or spacing.

    Raises:
        ImageNotFoundError: nothing at ``path``, or a dangling link.
        InvalidImageError: unsupported format, content unlike the suffix, unreadable or
            corrupt file, voxels shorter than the header says, too large for the memory
            available, not 3D.
    """
    path = Path(path)
    _check_path(path)
    content_length, content = None, None
    if path.is_file():
        _check_content(path)
        if path.name.lower().endswith(".gz"):
            # One pass decompresses and checks the gzip CRC (nibabel stops reading at the end
            # of the voxel data and would return a damaged stream's garbage without a word).
            content, content_length = _gunzip(path)
        elif path.name.lower().endswith(NIFTI_SUFFIXES):
            content_length = path.stat().st_size
    reader = _reader_for(path, series_uid)
    notes: list[str] = []
    try:
        loaded = reader.read_content(path, content) if content is not None else reader.read(path)
        if isinstance(reader, NiftiReader):
            _check_nifti_header(path, loaded, content_length)
            notes += header_notes(loaded)
        array, meta = reader.get_data(loaded)
    except MednetError:
        raise
    except MemoryError as err:
        raise InvalidImageError(
            path, "ran out of memory while decoding", expected="an image that fits in memory", found=_reason(err)
        ) from err
    except Exception as err:  # a third-party reader failing on this file, whatever the way
        raise InvalidImageError(
            path, "unreadable image", expected=f"a valid {_format_of(path)} file", found=_reason(err)
        ) from err
    array = np.asarray(array)
    header_spacing = _nifti_pixdim(path, content) if isinstance(reader, NiftiReader) else None
    return RawImage(
        path=path,
        array=squeeze_to_3d(path, array),
        affine=np.asarray(meta[MetaKeys.AFFINE], dtype=float),
        dtype=array.dtype,
        format=_format_of(path),
        notes=notes + list(meta.get("dicom_notes", [])),
        header_spacing=header_spacing,
    )


def validate(
    raw: RawImage, kind: ImageKind | str = ImageKind.IMAGE, spacing_range: tuple[float, float] = SPACING_RANGE_MM
) -> list[InvalidImageError]:
    """Every problem of a volume read by :func:`load_raw`: geometry, then values.

    :func:`read_image` raises the first; ``mednet info`` lists them all, so both judge a
    file the same way.
    """
    kind = ImageKind(getattr(kind, "value", kind))
    return check_affine(raw.path, raw.affine, raw.header_spacing, spacing_range) + check_values(
        raw.path, raw.array, kind.value
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
    if problems := validate(raw, kind, spacing_range):
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
