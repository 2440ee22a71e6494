"""A corpus of bad and unusual inputs, each made on the spot by the test that uses it.

Every kind is a tiny file, folder or case entry (a few hundred voxels), never real data,
with what mednet must do with it: load it (the valid-but-unusual kinds: dtypes, intensity
ranges, 4D files of one volume, non-ASCII paths, other formats), or refuse it with a
:class:`~mednet.errors.MednetError` subclass whose message matches ``message``. The same
``message`` is looked for in ``mednet info``'s output for a refused file.

Each kind makes a two-sequence case: a valid reference ``t1`` and the kind's file as
``t2`` (or as the label map), as ``mednet predict`` reads it (``load_case(case, ["t1",
"t2"], allow_missing=True)``). docs/reliability.md lists the kinds by group.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
import torch
from monai.data import MetaTensor

from mednet.errors import DatalistError, FieldOfViewError, ImageNotFoundError, InvalidImageError, MednetError
from mednet.io import LoadedCase
from mednet.io.sitk_reader import lps_to_ras
from tests.io.dicom_helpers import write_dicom_series

__all__ = ["KINDS", "Kind", "Made"]

SHAPE = (8, 9, 6)
#: The reference grid: LPS axes, 1 x 1.5 x 3 mm voxels.
AFFINE = np.array([[-1.0, 0, 0, 20.0], [0, -1.5, 0, 30.0], [0, 0, 3.0, -10.0], [0, 0, 0, 1]])


@dataclass
class Made:
    """What a kind made in a test's folder.

    Attributes:
        case: the case entry given to ``load_case``.
        path: what ``mednet info`` is given (None: a fault of the case entry, not of a file).
        blame: what the error message must name (default ``path``).
        sequences: the sequences asked for.
        label_keys: the case's label keys.
        info_args: extra ``mednet info`` options (``--label`` for label maps).
        env: environment variables the kind needs (set by the test).
        data: the voxels written, for kinds that check them after loading.
    """

    case: dict
    path: Path | None
    blame: str | None = None
    sequences: tuple[str, ...] = ("t1", "t2")
    label_keys: tuple[str, ...] = ("label",)
    info_args: tuple[str, ...] = ()
    env: dict = field(default_factory=dict)
    data: np.ndarray | None = None


@dataclass(frozen=True)
class Kind:
    """One kind of input and what mednet must do with it.

    Attributes:
        name: the test id.
        group: the row group in docs/reliability.md.
        make: writes the input into a folder.
        error: the exact exception class ``load_case`` must raise; None: it loads.
        message: regex the error message (and ``mednet info``'s output) must contain.
        info_ok: ``mednet info`` describes the file without a problem (exit code 0)
            although the case is refused (a fault of the case, not of the file).
        check: for kinds that load, a check of the :class:`~mednet.io.LoadedCase`.
        info_message: regex ``mednet info``'s output must contain when it differs from ``message``.
        entry_only: a fault of the case entry (a key, a value): no file for ``mednet info``.
    """

    name: str
    group: str
    make: Callable[[Path], Made]
    error: type[MednetError] | None = None
    message: str = ""
    info_ok: bool = False
    check: Callable[[LoadedCase, Made], None] | None = None
    info_message: str | None = None
    entry_only: bool = False


# ---- writers --------------------------------------------------------------------------------


def _rng() -> np.random.Generator:
    return np.random.default_rng(7)


def volume(shape=SHAPE, dtype=np.float32) -> np.ndarray:
    """Seeded random intensities, never constant."""
    return (_rng().normal(100.0, 20.0, shape)).astype(dtype)


def nifti(path: Path, data: np.ndarray, affine=AFFINE, sform_code=1, qform_code=1) -> Path:
    """Save ``data`` as NIfTI with its own dtype; sform and qform from ``affine`` with the given codes.

    With ``qform_code=0`` the qform is not computed at all (nibabel cannot make one from a
    singular affine) and ``pixdim`` holds the affine's column norms.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.asarray(affine, dtype=float)
    if qform_code:
        image = nib.Nifti1Image(data, affine, dtype=data.dtype)
        image.set_qform(affine, code=qform_code)
    else:
        image = nib.Nifti1Image(data, None, dtype=data.dtype)
        image.header.set_zooms(tuple(np.linalg.norm(affine[:3, :3], axis=0))[: data.ndim] + (1.0,) * (data.ndim - 3))
    image.set_sform(affine, code=sform_code)
    nib.save(image, path)
    return path


def sitk_file(path: Path, data: np.ndarray, affine=AFFINE) -> Path:
    """Save an ``(x, y, z[, c])`` array through SimpleITK (NRRD, MetaImage, ...) with a RAS affine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lps = lps_to_ras(np.asarray(affine, dtype=float))
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    vector = data.ndim == 4
    zyx = np.ascontiguousarray(np.moveaxis(data, [0, 1, 2], [2, 1, 0]) if vector else data.transpose(2, 1, 0))
    image = sitk.GetImageFromArray(zyx, isVector=vector)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps[:3, :3] / spacing).flatten().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    sitk.WriteImage(image, str(path))
    return path


def patch(path: Path, offset: int, raw: bytes) -> Path:
    """Overwrite bytes of an uncompressed file (a NIfTI header field nibabel will not write)."""
    data = bytearray(path.read_bytes())
    data[offset : offset + len(raw)] = raw
    path.write_bytes(bytes(data))
    return path


def case(folder: Path, bad: Path | object | None, key: str = "t2", **made) -> Made:
    """A case: a valid reference ``t1`` and ``bad`` under ``key`` (absent when None)."""
    entry = {"case_id": "c1", "t1": nifti(folder / "ref" / "c1_t1.nii.gz", volume())}
    if bad is not None:
        entry[key] = bad
    if key == "label" and "info_args" not in made:
        made["info_args"] = ("--label",)
    return Made(case=entry, path=bad if isinstance(bad, Path) else None, **made)


def huge_nifti_header(path: Path, shape, header_class=nib.Nifti1Header) -> Path:
    """A NIfTI header claiming ``shape`` int16 voxels, followed by 16 bytes of data."""
    header = header_class()
    header.set_data_dtype(np.int16)
    header.set_data_shape(shape)
    header.set_sform(np.eye(4), code=1)
    header.set_data_offset(352 if header_class is nib.Nifti1Header else 544)
    with open(path, "wb") as stream:
        header.write_to(stream)
        stream.write(bytes(header.get_data_offset() - stream.tell()) + bytes(16))
    return path


# ---- kinds ----------------------------------------------------------------------------------

KINDS: list[Kind] = []


def kind(group: str, error: type[MednetError] | None = None, message: str = "", **options):
    """Register the decorated maker as a kind of the corpus."""

    def register(make: Callable[[Path], Made]) -> Callable[[Path], Made]:
        KINDS.append(Kind(make.__name__, group, make, error, message, **options))
        return make

    return register


NOT_IMAGES = "Files that are not (whole) images"


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"truncated gzip stream .*: expected a complete gzip-compressed NIfTI file, found a stream without its end, \d+ B on disk",
)
def truncated_gzip(folder):
    path = nifti(folder / "t2.nii.gz", volume())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return case(folder, path)


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"corrupt gzip stream \(damaged in storage or transfer\): expected a complete gzip-compressed NIfTI file, found CRC check failed 0x[0-9a-f]+ != 0x[0-9a-f]+",
)
def gzip_bad_crc(folder):
    path = nifti(folder / "t2.nii.gz", volume())
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # the CRC32 of the content, in the gzip trailer
    path.write_bytes(bytes(data))
    return case(folder, path)


@kind(NOT_IMAGES, InvalidImageError, r"corrupt gzip stream \(damaged in storage or transfer\): expected a complete gzip-compressed NIfTI file, found Error -3 while decompressing data")
def gzip_corrupt_data(folder):
    path = nifti(folder / "t2.nii.gz", volume())
    data = bytearray(path.read_bytes())
    data[60:400] = bytes(340)
    path.write_bytes(bytes(data))
    return case(folder, path)


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"not a gzip-compressed NIfTI file: expected a gzip-compressed NIfTI file \(from the suffix \.nii\.gz\), found a text file starting 'patient 12",
)
def text_named_nii_gz(folder):
    path = folder / "t2.nii.gz"
    path.write_text("patient 12, see report\n" * 20)
    return case(folder, path)


@kind(NOT_IMAGES, InvalidImageError, r"found gzip-compressed text file starting 'patient 12")
def gzipped_text_named_nii_gz(folder):
    path = folder / "t2.nii.gz"
    with gzip.open(path, "wb") as stream:
        stream.write(b"patient 12, see report\n" * 20)
    return case(folder, path)


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"not an uncompressed NIfTI file: expected an uncompressed NIfTI file \(from the suffix \.nii\), found a PNG image",
)
def png_named_nii(folder):
    path = folder / "t2.nii"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return case(folder, path)


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"not a gzip-compressed NIfTI file: .*found a NRRD file \(rename it t2\.nrrd to read it\)",
)
def nrrd_named_nii_gz(folder):
    path = sitk_file(folder / "t2.nrrd", volume()).rename(folder / "t2.nii.gz")
    return case(folder, path)


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"not a NRRD file: expected a NRRD file \(from the suffix \.nrrd\), found a NIfTI-1 file \(rename it t2\.nii to read it\)",
)
def nifti_named_nrrd(folder):
    path = nifti(folder / "t2.nii", volume()).rename(folder / "t2.nrrd")
    return case(folder, path)


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"not an uncompressed NIfTI file: .*found gzip-compressed NIfTI-1 file \(rename it t2\.nii\.gz to read it\)",
)
def gzipped_nifti_named_nii(folder):
    path = nifti(folder / "t2.nii.gz", volume()).rename(folder / "t2.nii")
    return case(folder, path)


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"not a gzip-compressed NIfTI file: .*found a NIfTI-1 file \(rename it t2\.nii to read it\)",
)
def uncompressed_nifti_named_nii_gz(folder):
    path = nifti(folder / "t2.nii", volume()).rename(folder / "t2.nii.gz")
    return case(folder, path)


@kind(
    NOT_IMAGES, InvalidImageError, r"not an uncompressed NIfTI file: .*found an Analyze 7\.5 header \(no NIfTI magic\)"
)
def analyze_named_nii(folder):
    image = nib.AnalyzeImage(volume(), AFFINE)
    nib.save(image, folder / "t2.img")
    path = (folder / "t2.hdr").rename(folder / "t2.nii")
    return case(folder, path)


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"not a MetaImage file: expected a MetaImage file \(from the suffix \.mha\), found unrecognised binary data starting",
)
def binary_named_mha(folder):
    path = folder / "t2.mha"
    path.write_bytes(bytes(range(256))[::-1] * 8)
    return case(folder, path)


@kind(NOT_IMAGES, InvalidImageError, r"empty file: expected an image file, found 0 bytes")
def empty_file(folder):
    path = folder / "t2.nii.gz"
    path.write_bytes(b"")
    return case(folder, path)


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"not an image file: expected one of \.nii, \.nii\.gz, .* or a DICOM folder, found suffix \.txt",
)
def unknown_suffix(folder):
    path = folder / "t2.txt"
    path.write_text("not an image")
    return case(folder, path)


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"voxel data shorter than the header says .*: expected 3\.46 kB of voxels \(8 x 9 x 6 float64 voxels\) after the 352-byte header, found 1\.73 kB",
)
def truncated_nifti(folder):
    path = nifti(folder / "t2.nii", volume(dtype=np.float64))
    path.write_bytes(path.read_bytes()[: 352 + 8 * 9 * 6 * 4])
    return case(folder, path)


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"voxel data shorter than the header says .*: expected 54 TB of voxels \(30000 x 30000 x 30000 int16 voxels\) after the 352-byte header, found 16 B",
)
def huge_nifti1_header(folder):
    return case(folder, huge_nifti_header(folder / "t2.nii", (30000, 30000, 30000)))


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"voxel data shorter than the header says .*: expected 2 PB of voxels \(100000 x 100000 x 100000 int16 voxels\)",
)
def huge_nifti2_header(folder):
    return case(folder, huge_nifti_header(folder / "t2.nii", (100000, 100000, 100000), nib.Nifti2Header))


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"too large for the memory available: expected at most .* \(50% of the .* of memory available; set MEDNET_MAX_IMAGE_GB to change\), found 30000 x 30000 x 30000 int16 voxels, which would need 162 TB to decode",
)
def huge_metaimage_header(folder):
    path = folder / "t2.mha"
    header = ("ObjectType = Image\nNDims = 3\nDimSize = 30000 30000 30000\nElementSpacing = 1 1 1\n"
              "ElementType = MET_SHORT\nElementDataFile = LOCAL\n")  # fmt: skip
    path.write_bytes(header.encode() + bytes(16))
    return case(folder, path)


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"too large for the memory available: expected at most 10 kB \(MEDNET_MAX_IMAGE_GB=0\.00001\), found 20 x 20 x 10 float32 voxels, which would need 32 kB to decode, 10 kB are available",
)
def beyond_memory_budget(folder):
    made = case(folder, nifti(folder / "t2.nii.gz", volume((20, 20, 10)), np.diag([0.4, 0.6, 1.8, 1])))
    made.case["t1"] = nifti(folder / "ref" / "c1_t1.nii.gz", volume((6, 6, 5)))  # 1.4 kB to decode
    made.env = {"MEDNET_MAX_IMAGE_GB": "0.00001"}
    return made


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"the voxel data file named by the header is missing: expected t2\.raw beside the header, found no file .*t2\.raw",
)
def metaimage_data_file_missing(folder):
    path = sitk_file(folder / "t2.mhd", volume())
    (folder / "t2.raw").unlink()
    return case(folder, path)


@kind(
    NOT_IMAGES, InvalidImageError, r"unreadable image: expected a valid nrrd file, found RuntimeError: .*fread got only"
)
def truncated_nrrd(folder):
    path = sitk_file(folder / "t2.nrrd", volume())
    path.write_bytes(path.read_bytes()[:-40])
    return case(folder, path)


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"unreadable image: expected a valid nifti file, found HeaderDataError: data code 1 not supported",
)
def nifti_binary_datatype(folder):
    path = nifti(folder / "t2.nii", volume().astype(np.uint8))
    patch(path, 70, np.int16(1).tobytes())  # datatype DT_BINARY (1 bit per voxel)
    return case(folder, patch(path, 72, np.int16(1).tobytes()))


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"unsupported voxel type: expected real numbers \(integer or floating point\), found complex64 voxels \(complex numbers\)",
)
def complex_nifti(folder):
    return case(folder, nifti(folder / "t2.nii.gz", volume().astype(np.complex64)))


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"colour voxels: expected one real value per voxel \(a grey-level volume\), found a structured voxel type R, G, B",
)
def rgb_nifti(folder):
    rgb = np.zeros(SHAPE, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["G"] = volume().astype(np.uint8)
    return case(folder, nifti(folder / "t2.nii.gz", rgb))


@kind(
    NOT_IMAGES,
    InvalidImageError,
    r"vector or colour voxels: expected one value per voxel \(a grey-level volume\), found 3 values per voxel \(vector of 8-bit unsigned integer\)",
)
def rgb_nrrd(folder):
    return case(folder, sitk_file(folder / "t2.nrrd", np.stack([volume().astype(np.uint8)] * 3, axis=-1)))


PATHS = "Paths"


@kind(
    PATHS, ImageNotFoundError, r"file not found: expected an image file or a DICOM folder, found nothing at this path"
)
def missing_file(folder):
    return case(folder, folder / "t2.nii.gz")


@kind(
    PATHS,
    ImageNotFoundError,
    r"dangling symbolic link: expected a link to an existing image file, found a link to .*gone\.nii\.gz, which does not exist",
)
def dangling_symlink(folder):
    path = folder / "t2.nii.gz"
    path.symlink_to(folder / "gone.nii.gz")
    return case(folder, path)


@kind(
    PATHS,
    InvalidImageError,
    r"symbolic link loop: expected a link to an image file, found links pointing back on themselves",
)
def symlink_loop(folder):
    path, other = folder / "t2.nii.gz", folder / "other.nii.gz"
    path.symlink_to(other)
    other.symlink_to(path)
    return case(folder, path)


@kind(
    PATHS,
    InvalidImageError,
    r"no DICOM series found: expected a folder of DICOM files of one series, found an empty folder",
)
def folder_instead_of_file(folder):
    path = folder / "t2"
    path.mkdir()
    return case(folder, path)


@kind(
    PATHS,
    InvalidImageError,
    r"no DICOM series found: .*found 1 file\(s\), none of them DICOM \(e\.g\. notes\.txt\), and 1 sub-folder\(s\) \(e\.g\. series1\): a DICOM series is read from its own folder",
)
def folder_without_dicom(folder):
    path = folder / "t2"
    (path / "series1").mkdir(parents=True)
    (path / "notes.txt").write_text("x")
    return case(folder, path)


@kind(
    PATHS,
    InvalidImageError,
    r"a folder named like an image file: expected a \.nii\.gz file, found a folder \(1 entries\)",
)
def folder_named_like_image(folder):
    path = folder / "t2.nii.gz"
    nifti(path / "inner.nii.gz", volume())
    return case(folder, path)


@kind(PATHS, InvalidImageError, r"not a regular file: expected an image file, found a FIFO \(named pipe\)")
def fifo_named_like_image(folder):
    path = folder / "t2.nii.gz"
    os.mkfifo(path)  # reading it would block for ever
    return case(folder, path)


def _loads_voxels(loaded: LoadedCase, made: Made) -> None:
    np.testing.assert_allclose(loaded.images["t2"][0].numpy(), made.data.astype(np.float64), rtol=1e-6)


@kind(PATHS, check=_loads_voxels)
def non_ascii_path(folder):
    data = volume()
    return case(folder, nifti(folder / "Ünïcødé 患者" / "t2 é.nii.gz", data), data=data)


@kind(PATHS, check=_loads_voxels)
def space_in_path_nrrd(folder):
    data = volume()
    return case(folder, sitk_file(folder / "my scans" / "T2 axial.nrrd", data), data=data)


@kind(PATHS, check=_loads_voxels)
def symlink_to_image(folder):
    data = volume()
    path = folder / "t2.nii.gz"
    path.symlink_to(nifti(folder / "store" / "scan.nii.gz", data))
    return case(folder, path, data=data)


SHAPES = "Shapes and sizes"


@kind(
    SHAPES,
    InvalidImageError,
    r"not a 3D volume: expected a 3D volume with at least 2 voxels along each axis, found a 2D image of shape \(8, 9\)",
)
def image_2d(folder):
    return case(folder, nifti(folder / "t2.nii.gz", volume((8, 9))))


@kind(SHAPES, InvalidImageError, r"not a 3D volume: .*found a 2D image of shape \(8, 9, 1\)")
def single_slice(folder):
    return case(folder, nifti(folder / "t2.nii.gz", volume((8, 9, 1))))


@kind(SHAPES, InvalidImageError, r"invalid dimensions in the header: expected positive sizes, found shape \(8, 0, 6\)")
def zero_size_axis(folder):
    return case(folder, nifti(folder / "t2.nii.gz", np.zeros((8, 0, 6), np.float32)))


@kind(
    SHAPES,
    InvalidImageError,
    r"not a single 3D volume: expected one 3D volume \(x, y, z\) or \(x, y, z, 1\), found 4D array of shape \(8, 9, 6, 3\) holding 3 volumes",
)
def image_4d_several_volumes(folder):
    return case(folder, nifti(folder / "t2.nii.gz", volume((*SHAPE, 3))))


def _same_grid(loaded: LoadedCase, made: Made) -> None:
    assert loaded.images["t2"].shape == (1, *SHAPE)
    assert loaded.resampling[1]["resampled"] is False
    if made.data is not None:
        np.testing.assert_allclose(loaded.images["t2"][0].numpy(), made.data.reshape(SHAPE), rtol=1e-6)


@kind(SHAPES, check=_same_grid)
def image_4d_one_volume(folder):
    data = volume((*SHAPE, 1))
    return case(folder, nifti(folder / "t2.nii.gz", data), data=data)


GEOMETRY = "Geometry (affine, spacing, sform and qform)"


@kind(
    GEOMETRY,
    InvalidImageError,
    r"zero or negative voxel spacing in the header: expected positive spacing, found spacing \(1\.0, 0\.0, 3\.0\)",
)
def zero_spacing(folder):
    return case(folder, nifti(folder / "t2.nii.gz", volume(), np.diag([1.0, 0.0, 3.0, 1.0]), qform_code=0))


@kind(
    GEOMETRY,
    InvalidImageError,
    r"zero or negative voxel spacing in the header: expected positive spacing, found spacing \(1\.0, 1\.5, -3\.0\)",
)
def negative_spacing(folder):
    path = nifti(folder / "t2.nii", volume())
    return case(folder, patch(path, 88, np.float32(-3.0).tobytes()))  # pixdim[3]


@kind(
    GEOMETRY,
    InvalidImageError,
    r"implausible voxel spacing \(wrong units in the header\?\): expected spacing between 0\.05 and 30 mm, found spacing \(1e\+06, 1e\+06, 1e\+06\) mm",
)
def spacing_1e6_mm(folder):
    return case(folder, nifti(folder / "t2.nii.gz", volume(), np.diag([1e6, 1e6, 1e6, 1.0])))


@kind(
    GEOMETRY,
    InvalidImageError,
    r"implausible voxel spacing \(wrong units in the header\?\): .*found spacing \(1e-06, 1e-06, 1e-06\) mm",
)
def spacing_1e_6_mm(folder):
    return case(folder, nifti(folder / "t2.nii.gz", volume(), np.diag([1e-6, 1e-6, 1e-6, 1.0])))


@kind(
    GEOMETRY,
    InvalidImageError,
    r"singular affine: expected an invertible voxel-to-world matrix, found determinant 0 for rows",
)
def singular_affine(folder):
    affine = np.array([[1.0, 1.0, 0, 0], [0, 0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1]])  # two parallel axes
    return case(folder, nifti(folder / "t2.nii.gz", volume(), affine, qform_code=0))


@kind(
    GEOMETRY,
    InvalidImageError,
    r"singular affine: expected an invertible voxel-to-world matrix, found determinant 0 for rows",
)
def rank_deficient_affine(folder):
    affine = np.array([[1.0, 0, 1.0, 0], [0, 1.5, 1.5, 0], [0, 0, 0, 0], [0, 0, 0, 1]])  # z axis in the x-y plane
    return case(folder, nifti(folder / "t2.nii.gz", volume(), affine, qform_code=0))


@kind(
    GEOMETRY,
    InvalidImageError,
    r"zero or negative voxel spacing in the header: expected positive spacing, found spacing \(0\.0, 0\.0, 0\.0\)",
)
def all_zero_affine(folder):
    return case(folder, nifti(folder / "t2.nii.gz", volume(), np.zeros((4, 4)), qform_code=0))


@kind(GEOMETRY, InvalidImageError, r"invalid affine: expected a finite 4x4 matrix, found \[\[ ?nan, nan, nan, nan\]")
def nan_affine(folder):
    path = nifti(folder / "t2.nii", volume(), qform_code=0)
    return case(folder, patch(path, 280, np.full(4, np.nan, np.float32).tobytes()))  # srow_x


def _sform_used(loaded: LoadedCase, made: Made) -> None:
    np.testing.assert_allclose(loaded.resampling[1]["grid"]["affine"], made.data, atol=1e-4)
    notes = loaded.images["t2"].meta["notes"]
    assert any("sform and qform disagree (by up to" in n and "the sform is used" in n for n in notes), notes


@kind(GEOMETRY, check=_sform_used, info_ok=True, info_message=r"note: sform and qform disagree .*the sform is used")
def sform_qform_disagree(folder):
    sform = AFFINE.copy()
    sform[:3, 3] += (2.0, -3.0, 6.0)  # shifted by whole voxels: overlaps the reference
    image = nib.Nifti1Image(volume(), None)
    image.set_qform(AFFINE, code=1)
    image.set_sform(sform, code=2)
    nib.save(image, folder / "t2.nii.gz")
    return case(folder, folder / "t2.nii.gz", data=sform)


def _qform_used(loaded: LoadedCase, made: Made) -> None:
    assert loaded.resampling[1]["resampled"] is False  # the qform is the reference's affine
    np.testing.assert_allclose(loaded.resampling[1]["grid"]["affine"], AFFINE, atol=1e-4)


@kind(GEOMETRY, check=_qform_used, info_ok=True)
def qform_only(folder):
    return case(folder, nifti(folder / "t2.nii.gz", volume(), sform_code=0))


def _orientation_unknown(loaded: LoadedCase, made: Made) -> None:
    notes = loaded.labels["label"].meta["notes"]
    assert any("the orientation is unknown" in n for n in notes), notes


@kind(
    GEOMETRY,
    check=_orientation_unknown,
    info_ok=True,
    info_message=r"note: no sform or qform \(both codes 0\): the orientation is unknown",
)
def no_sform_no_qform(folder):
    made = case(folder, None)
    made.case["t1"] = nifti(folder / "ref" / "c1_t1.nii.gz", volume(), sform_code=0, qform_code=0)
    made.case["label"] = made.path = nifti(folder / "seg.nii.gz", np.zeros(SHAPE, np.uint8), sform_code=0, qform_code=0)
    made.info_args = ("--label",)
    return made


def _pixdim_note(loaded: LoadedCase, made: Made) -> None:
    assert any("disagrees with the sform voxel sizes" in n for n in loaded.images["t2"].meta["notes"])


@kind(GEOMETRY, check=_pixdim_note, info_ok=True, info_message=r"note: header pixdim \(1\.0, 1\.0, 1\.0\) disagrees")
def pixdim_disagrees_with_sform(folder):
    path = nifti(folder / "t2.nii", volume())
    for offset in (80, 84, 88):
        patch(path, offset, np.float32(1.0).tobytes())  # pixdim[1..3], the sform unchanged
    return case(folder, path)


VALUES = "Voxel values"


@kind(
    VALUES,
    InvalidImageError,
    r"non-finite voxel values: expected finite values everywhere, found 1 NaN and 0 Inf voxels of 432",
)
def nan_voxels(folder):
    data = volume()
    data[1, 2, 3] = np.nan
    return case(folder, nifti(folder / "t2.nii.gz", data))


@kind(VALUES, InvalidImageError, r"non-finite voxel values: .*found 0 NaN and 2 Inf voxels of 432")
def inf_voxels(folder):
    data = volume()
    data[1, 2, 3], data[0, 0, 0] = np.inf, -np.inf
    return case(folder, nifti(folder / "t2.nii.gz", data))


@kind(VALUES, InvalidImageError, r"constant image: expected varying intensities, found every voxel equal to 0")
def all_zero(folder):
    return case(folder, nifti(folder / "t2.nii.gz", np.zeros(SHAPE, np.int16)))


@kind(VALUES, InvalidImageError, r"constant image: expected varying intensities, found every voxel equal to 7")
def constant(folder):
    return case(folder, nifti(folder / "t2.nii.gz", np.full(SHAPE, 7.0, np.float32)))


@kind(
    VALUES,
    InvalidImageError,
    r"values beyond the float32 range: expected magnitudes below 3\.4e\+38 \(mednet computes in float32\), found values from .* to 1e\+300",
)
def beyond_float32_range(folder):
    data = volume(dtype=np.float64)
    data[0, 0, 0] = 1e300
    return case(folder, nifti(folder / "t2.nii.gz", data))


def _values_kept(loaded: LoadedCase, made: Made) -> None:
    got = loaded.images["t2"][0].numpy()
    assert loaded.images["t2"].dtype == torch.float32
    if np.issubdtype(made.data.dtype, np.integer):
        np.testing.assert_array_equal(got, made.data)  # exact: every value fits float32's 24-bit mantissa
    else:
        np.testing.assert_allclose(got, made.data, rtol=1e-6)
    assert loaded.images["t2"].meta["original_dtype"] == str(made.data.dtype)


def _dtype_kind(dtype) -> Kind:
    def make(folder):
        info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
        lo, hi = (max(info.min, -(2**24)), min(info.max, 2**24)) if info else (-1e4, 1e4)
        data = _rng().integers(lo, hi, SHAPE, endpoint=True).astype(dtype) if info else volume(dtype=dtype)
        data.flat[:2] = (lo, hi)  # the extremes the dtype holds (integers: up to 2**24, exact in float32)
        return case(folder, nifti(folder / f"t2_{np.dtype(dtype)}.nii.gz", data), data=data)

    make.__name__ = f"dtype_{np.dtype(dtype)}"
    return Kind(make.__name__, "Voxel types and intensity ranges that work", make, check=_values_kept)


KINDS += [_dtype_kind(d) for d in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64, np.float32, np.float64)]  # fmt: skip


def _range_kind(name: str, scale: float, offset: float) -> Kind:
    def make(folder):
        data = (_rng().random(SHAPE) * scale + offset).astype(np.float32)
        return case(folder, nifti(folder / "t2.nii.gz", data), data=data)

    make.__name__ = name
    return Kind(name, "Voxel types and intensity ranges that work", make, check=_values_kept)


KINDS += [
    _range_kind("intensities_around_1e-8", 1e-8, 1e-8),
    _range_kind("intensities_around_1e9", 1e9, 1e9),
    _range_kind("negative_intensities_only", 500.0, -1000.5),
]


def _scaled(loaded: LoadedCase, made: Made) -> None:
    np.testing.assert_allclose(loaded.images["t2"][0].numpy(), made.data * 0.5 + 10.0, rtol=1e-6)


@kind("Voxel types and intensity ranges that work", check=_scaled)
def int16_with_scaling(folder):
    data = (_rng().integers(0, 1000, SHAPE)).astype(np.int16)
    image = nib.Nifti1Image(data, AFFINE, dtype=np.int16)
    image.header.set_slope_inter(0.5, 10.0)
    image.set_qform(AFFINE, code=1)
    nib.save(image, folder / "t2.nii.gz")
    return case(folder, folder / "t2.nii.gz", data=data)


LABELS = "Label maps"


@kind(
    LABELS,
    InvalidImageError,
    r"label map with non-integer values: expected integer labels, found \d+ voxels with fractional values",
)
def float_label_map(folder):
    return case(folder, nifti(folder / "seg.nii.gz", volume()), key="label")


def _labels_exact(loaded: LoadedCase, made: Made) -> None:
    np.testing.assert_array_equal(loaded.label[0].numpy(), made.data)


@kind(LABELS, check=_labels_exact)
def float_label_map_with_integer_values(folder):
    data = _rng().integers(0, 4, SHAPE).astype(np.float32)
    return case(folder, nifti(folder / "seg.nii.gz", data), key="label", data=data)


@kind(LABELS, check=_labels_exact)
def empty_label_map(folder):
    data = np.zeros(SHAPE, np.uint8)
    return case(folder, nifti(folder / "seg.nii.gz", data), key="label", data=data)


@kind(LABELS, InvalidImageError, r"label map with negative values: expected labels >= 0, found minimum -1")
def negative_label_map(folder):
    data = np.zeros(SHAPE, np.int16)
    data[1, 1, 1] = -1
    return case(folder, nifti(folder / "seg.nii.gz", data), key="label")


@kind(
    LABELS,
    InvalidImageError,
    r"label map with too many distinct values: expected at most 1000 labels, found \d{4} distinct values from \d+ to \d+ \(an intensity image passed as a label map\?\)",
)
def label_map_with_absurd_number_of_values(folder):
    data = _rng().integers(0, 30000, (16, 16, 10)).astype(np.int16)
    return case(folder, nifti(folder / "seg.nii.gz", data), key="label")


@kind(
    LABELS,
    InvalidImageError,
    r"label values too large: expected labels up to 16777216 \(held exactly in float32\), found maximum 33554433",
)
def label_values_beyond_float32(folder):
    data = np.zeros(SHAPE, np.int32)
    data[2, 2, 2] = 2**25 + 1
    return case(folder, nifti(folder / "seg.nii.gz", data), key="label")


def _label_resampled(loaded: LoadedCase, made: Made) -> None:
    record = loaded.resampling[-1]
    assert record["key"] == "label" and record["resampled"] and record["interpolation"] == "nearest"
    assert loaded.label.shape == (1, *SHAPE)
    values = set(np.unique(loaded.label[0].numpy()).tolist())
    assert values <= {0.0, 1.0, 2.0} and {1.0, 2.0} <= values  # nearest neighbour: no new values


@kind(LABELS, check=_label_resampled)
def label_map_on_another_grid(folder):
    data = np.zeros((16, 18, 12), np.uint8)
    data[2:10, 3:12, 2:8], data[10:14, 3:12, 2:8] = 1, 2
    affine = AFFINE.copy()
    affine[:3, :3] /= 2.0  # twice as fine, same origin
    return case(folder, nifti(folder / "seg.nii.gz", data, affine), key="label")


CASES = "Cases (several sequences, keys)"


@kind(
    CASES,
    FieldOfViewError,
    r"field of view does not overlap the reference sequence 't1' \(.*c1_t1\.nii\.gz\): expected at least 10% of the reference field of view covered, found 0\.0% covered",
    info_ok=True,
)
def sequences_not_overlapping(folder):
    affine = AFFINE.copy()
    affine[:3, 3] += (500.0, 0, 0)
    return case(folder, nifti(folder / "t2.nii.gz", volume(), affine))


@kind(CASES, FieldOfViewError, r"field of view does not overlap .*found 2\.0% covered", info_ok=True)
def sequence_covering_a_sliver(folder):
    # the reference is sampled at 10 x 10 x 5 = 500 points; the sequence covers 2 x 5 x 1 of them
    sliver = np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0.5, -0.25], [0, 0, 0, 1]])
    made = case(folder, nifti(folder / "t2.nii.gz", volume((2, 5, 2)), sliver))
    made.case["t1"] = nifti(folder / "ref" / "c1_t1.nii.gz", volume((10, 10, 5)), np.eye(4))
    return made


def _half_covered(loaded: LoadedCase, made: Made) -> None:
    record = loaded.resampling[1]
    assert record["resampled"] and record["interpolation"] == "trilinear"
    assert 0.4 < record["fov_overlap"] < 0.6
    assert loaded.images["t2"].shape == (1, *SHAPE)


@kind(CASES, check=_half_covered)
def sequence_covering_half(folder):
    affine = AFFINE.copy()
    affine[0, 3] -= 4.0  # shifted by half the reference's 8 mm along x
    return case(folder, nifti(folder / "t2.nii.gz", volume(), affine))


@kind(
    CASES,
    InvalidImageError,
    r"too large for the memory available: expected at most 10 kB \(MEDNET_MAX_IMAGE_GB=0\.00001\), found the reference grid of 6 x 6 x 5 voxels \(.*c1_t1\.nii\.gz\), which would need 13 kB to resample it onto that grid",
    info_ok=True,
)
def resampling_beyond_memory_budget(folder):
    made = case(folder, nifti(folder / "t2.nii.gz", volume((6, 6, 5)), np.diag([1.1, 1.1, 2.0, 1])))
    made.case["t1"] = nifti(folder / "ref" / "c1_t1.nii.gz", volume((6, 6, 5)), np.diag([1.0, 1.0, 2.0, 1]))
    made.env = {"MEDNET_MAX_IMAGE_GB": "0.00001"}  # decoding each (1.4 kB) fits, resampling does not
    return made


def _recorded_missing(loaded: LoadedCase, made: Made) -> None:
    assert list(loaded.images) == ["t1"] and loaded.missing == ["t2"]


@kind(CASES, check=_recorded_missing, entry_only=True)
def missing_sequence(folder):
    return case(folder, None)


@kind(
    CASES,
    DatalistError,
    r"case c1: missing sequence\(s\) t1, t2; expected t1, t2 \(at least one\), found none",
    entry_only=True,
)
def every_sequence_missing(folder):
    made = case(folder, None)
    del made.case["t1"]
    made.blame = "case c1"
    return made


def _ignored(loaded: LoadedCase, made: Made) -> None:
    assert list(loaded.images) == ["t1", "t2"]


@kind(CASES, check=_ignored, entry_only=True)
def unknown_extra_key(folder):
    made = case(folder, nifti(folder / "t2.nii.gz", volume()))
    made.case["scanner"] = "unit 3"  # metadata: not a sequence spelling, ignored
    made.path = None
    return made


@kind(
    CASES,
    DatalistError,
    r"case c1: key 't1ce' is another spelling of 't1c': expected mednet's key 't1c' .*, found 't1ce'; rename it, or it would be ignored",
    entry_only=True,
)
def sequence_key_misspelled(folder):
    made = case(folder, nifti(folder / "t1ce.nii.gz", volume()), key="t1ce")
    made.path, made.blame = None, "case c1"
    return made


@kind(CASES, DatalistError, r"case c1: key 'seg' is another spelling of 'label'", entry_only=True)
def label_key_misspelled(folder):
    made = case(folder, nifti(folder / "seg.nii.gz", np.zeros(SHAPE, np.uint8)), key="seg")
    made.path, made.blame = None, "case c1"
    return made


@kind(
    CASES,
    DatalistError,
    r"case c1: t2: expected a file path or an image already read, found list \"\['a\.nii\.gz', 'b\.nii\.gz'\]\"",
    entry_only=True,
)
def sequence_value_not_a_path(folder):
    made = case(folder, ["a.nii.gz", "b.nii.gz"])
    made.blame = "case c1"
    return made


@kind(
    CASES,
    DatalistError,
    r"case c1: t2: expected a \(1, x, y, z\) image already read, found shape \(8, 9, 6\)",
    entry_only=True,
)
def image_in_memory_without_channel(folder):
    made = case(folder, MetaTensor(torch.zeros(SHAPE)))
    made.blame = "case c1"
    return made


@kind(
    CASES,
    DatalistError,
    r"expected a case entry \(a mapping of case_id and sequence keys to paths\), found str",
    entry_only=True,
)
def case_entry_not_a_mapping(folder):
    return Made(case="c1_t1.nii.gz", path=None, blame="found str")


FORMATS = "Formats"


def _format_loads(loaded: LoadedCase, made: Made) -> None:
    assert loaded.images["t2"].shape == (1, *SHAPE) and loaded.resampling[1]["resampled"] is False
    np.testing.assert_allclose(loaded.images["t2"][0].numpy(), made.data, rtol=1e-6)


def _format_kind(suffix: str) -> Kind:
    def make(folder):
        data = volume()
        return case(folder, sitk_file(folder / f"t2{suffix}", data), data=data)

    make.__name__ = f"format_{suffix.strip('.')}"
    return Kind(make.__name__, FORMATS, make, check=_format_loads)


KINDS += [_format_kind(s) for s in (".nrrd", ".nhdr", ".mha", ".mhd")]


def _dicom_loads(loaded: LoadedCase, made: Made) -> None:
    np.testing.assert_array_equal(loaded.images["t2"][0].numpy(), made.data)


@kind(FORMATS, check=_dicom_loads)
def dicom_series(folder):
    data = _rng().integers(0, 1000, SHAPE).astype(np.int16)
    # the reference's grid in LPS: origin (-20, -30, -10), 1 x 1.5 x 3 mm, x and y towards L and P
    path = write_dicom_series(folder / "t2_dicom", data, spacing=(1.0, 1.5, 3.0), origin=(-20.0, -30.0, -10.0))
    return case(folder, path, data=data)


@kind(FORMATS, check=_dicom_loads)
def dicom_series_in_a_folder_named_dcm(folder):
    data = _rng().integers(0, 1000, SHAPE).astype(np.int16)
    path = write_dicom_series(folder / "t2.dcm", data, spacing=(1.0, 1.5, 3.0), origin=(-20.0, -30.0, -10.0))
    return case(folder, path, data=data)


@kind(FORMATS, check=_values_kept)
def nifti2(folder):
    data = volume()
    image = nib.Nifti2Image(data, AFFINE)
    image.set_qform(AFFINE, code=1)
    nib.save(image, folder / "t2.nii")
    return case(folder, folder / "t2.nii", data=data)


@kind(
    FORMATS,
    InvalidImageError,
    r"DICOM folder holds several series, say which one to read \(series_uid\): expected one series, found 2 series: 1\.2\.3\.100 \(T1 AX, 6 files\); 1\.2\.3\.200 \(T2 AX, 6 files\)",
)
def dicom_folder_with_two_series(folder):
    data = _rng().integers(0, 1000, SHAPE).astype(np.int16)
    path = write_dicom_series(folder / "t2_dicom", data, series_uid="1.2.3.100", description="T1 AX")
    write_dicom_series(folder / "other", data, series_uid="1.2.3.200", description="T2 AX")
    for file in (folder / "other").iterdir():
        shutil.move(file, path / f"b_{file.name}")
    return case(folder, path)


@kind(
    FORMATS,
    InvalidImageError,
    r"DICOM slices are unevenly spaced \(missing or duplicate slices\?\): expected one gap between consecutive slices \(median 3\.000 mm\), found gaps from 3\.000 to 6\.000 mm",
)
def dicom_series_with_a_missing_slice(folder):
    data = _rng().integers(0, 1000, SHAPE).astype(np.int16)
    return case(folder, write_dicom_series(folder / "t2_dicom", data, spacing=(1.0, 1.5, 3.0), skip_slices=(2,)))


@kind(
    FORMATS,
    InvalidImageError,
    r"not a 3D volume: expected a 3D volume with at least 2 voxels along each axis, found a 2D image of shape \(8, 9, 1\)",
)
def single_dicom_slice(folder):
    data = _rng().integers(0, 1000, SHAPE).astype(np.int16)
    series = write_dicom_series(folder / "series", data)
    return case(folder, Path(shutil.copy(series / "slice000.dcm", folder / "t2.dcm")))
