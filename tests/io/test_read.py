"""Reading images of every supported format, and every validation failure with its message."""

from __future__ import annotations

import gzip
import shutil

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from monai.transforms import LoadImage

from mednet.errors import ImageNotFoundError, InvalidImageError
from mednet.io import SimpleITKReader, read_image
from mednet.io.sitk_reader import lps_to_ras
from tests.conftest import write_nifti
from tests.io.dicom_helpers import write_dicom_series

OBLIQUE = np.array([[0.0, -1.2, 0.3, 40.0], [-0.9, 0.0, 0.0, 25.0], [0.0, 0.2, 3.5, -60.0], [0.0, 0.0, 0.0, 1.0]])


def write_sitk(path, volume: np.ndarray, affine_ras: np.ndarray):
    """Write an (x, y, z) volume with a RAS affine through SimpleITK (stored as LPS)."""
    lps = lps_to_ras(affine_ras)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.transpose(2, 1, 0)))
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps[:3, :3] / spacing).flatten().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    sitk.WriteImage(image, str(path))
    return path


# ---- formats -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["scan.nii", "scan.nii.gz", "scan.nrrd", "scan.mha", "scan.mhd"])
def test_every_format_gives_the_same_voxels_and_affine(tmp_path, volume, name):
    path = tmp_path / name
    if name.startswith("scan.nii"):
        write_nifti(path, volume, OBLIQUE)
    else:
        write_sitk(path, volume, OBLIQUE)
    image = read_image(path)
    assert image.shape == (1, 10, 20, 30)
    assert image.dtype.is_floating_point
    np.testing.assert_allclose(image[0].numpy(), volume, rtol=1e-6)
    np.testing.assert_allclose(image.affine.numpy(), OBLIQUE, atol=1e-5)
    assert image.meta["filename_or_obj"] == str(path)


def test_dicom_series_spacing_comes_from_positions_not_header(tmp_path, rng):
    volume = rng.integers(0, 1000, (6, 7, 5)).astype(np.int16)
    folder = write_dicom_series(tmp_path / "dicom", volume, spacing=(0.8, 0.8, 2.0), slice_thickness=3.0)
    image = read_image(folder)
    np.testing.assert_array_equal(image[0].numpy(), volume)
    # LPS origin (-10, -20, 5) is RAS (10, 20, 5); x and y axes point to L and P
    expected = np.array([[-0.8, 0, 0, 10.0], [0, -0.8, 0, 20.0], [0, 0, 2.0, 5.0], [0, 0, 0, 1]])
    np.testing.assert_allclose(image.affine.numpy(), expected, atol=1e-4)
    assert any("SliceThickness tag says 3 mm" in note for note in image.meta["notes"])


def test_simpleitk_reader_plugs_into_monai_loadimage(tmp_path, volume):
    path = write_sitk(tmp_path / "scan.nrrd", volume, OBLIQUE)
    image = LoadImage(reader=SimpleITKReader(), image_only=True, ensure_channel_first=True)(path)
    assert image.shape == (1, 10, 20, 30)
    np.testing.assert_allclose(image.affine.numpy(), OBLIQUE, atol=1e-5)


def test_single_volume_4d_is_squeezed(tmp_path, volume):
    image = read_image(write_nifti(tmp_path / "one.nii.gz", volume[..., None]))
    assert image.shape == (1, 10, 20, 30)


def test_label_map_reads_as_integer_values(tmp_path, rng):
    labels = rng.integers(0, 4, (10, 20, 30)).astype(np.uint8)
    image = read_image(write_nifti(tmp_path / "seg.nii.gz", labels), "label")
    np.testing.assert_array_equal(image[0].numpy(), labels)
    assert image.meta["original_dtype"] == "uint8"


def test_empty_label_map_is_valid(tmp_path):
    image = read_image(write_nifti(tmp_path / "seg.nii.gz", np.zeros((10, 20, 30), np.uint8)), "label")
    assert float(image.max()) == 0


# ---- validation failures -----------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ImageNotFoundError, match=r"nope\.nii\.gz: file not found"):
        read_image(tmp_path / "nope.nii.gz")


def test_truncated_gzip(tmp_path, volume):
    path = write_nifti(tmp_path / "cut.nii.gz", volume)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InvalidImageError, match=r"cut\.nii\.gz: truncated gzip stream"):
        read_image(path)


def test_corrupt_gzip(tmp_path, volume):
    path = write_nifti(tmp_path / "bad.nii.gz", volume)
    data = bytearray(path.read_bytes())
    data[200:400] = bytes(200)
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidImageError, match=r"bad\.nii\.gz: corrupt gzip stream"):
        read_image(path)


def test_not_an_image_suffix(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(InvalidImageError, match=r"notes\.txt: not an image file: expected one of .*found suffix \.txt"):
        read_image(path)


def test_not_an_image_content(tmp_path):
    path = tmp_path / "fake.nii.gz"
    with gzip.open(path, "wb") as stream:
        stream.write(b"this is a text file, not a NIfTI header" * 20)
    with pytest.raises(
        InvalidImageError,
        match=r"fake\.nii\.gz: not a gzip-compressed NIfTI file: expected a gzip-compressed NIfTI file "
        r"\(from the suffix \.nii\.gz\), found gzip-compressed text file starting 'this is a text",
    ):
        read_image(path)


@pytest.mark.parametrize("shape", [(10, 20), (10, 20, 1)])
def test_2d_image(tmp_path, shape):
    path = write_nifti(tmp_path / "slice.nii.gz", np.ones(shape, np.float32))
    with pytest.raises(InvalidImageError, match=r"not a 3D volume: .*found a 2D image of shape"):
        read_image(path)


def test_4d_with_several_volumes(tmp_path, rng):
    path = write_nifti(tmp_path / "dwi.nii.gz", rng.normal(size=(10, 20, 30, 3)).astype(np.float32))
    with pytest.raises(
        InvalidImageError,
        match=r"not a single 3D volume: .*found 4D array of shape \(10, 20, 30, 3\) holding 3 volumes",
    ):
        read_image(path)


@pytest.mark.parametrize(("bad", "found"), [(np.nan, "1 NaN and 0 Inf"), (np.inf, "0 NaN and 1 Inf")])
def test_non_finite_values(tmp_path, volume, bad, found):
    volume[3, 4, 5] = bad
    with pytest.raises(
        InvalidImageError, match=f"non-finite voxel values: expected finite values everywhere, found {found}"
    ):
        read_image(write_nifti(tmp_path / "nan.nii.gz", volume))


def test_zero_spacing(tmp_path, volume):
    # nibabel cannot make a qform from such an affine: store the sform only
    image = nib.Nifti1Image(volume, None)
    image.set_sform(np.diag([1.0, 0.0, 2.0, 1.0]), code=1)
    path = tmp_path / "zero.nii.gz"
    nib.save(image, path)
    with pytest.raises(
        InvalidImageError, match=r"zero voxel spacing: expected positive spacing, found spacing \(1, 0, 2\) mm"
    ):
        read_image(path)


def test_negative_spacing_in_header(tmp_path, volume):
    # nibabel refuses to save a negative pixdim, so patch the header bytes (pixdim[3] at offset 88)
    path = write_nifti(tmp_path / "neg.nii", volume)
    data = bytearray(path.read_bytes())
    data[88:92] = np.float32(-3.0).tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(
        InvalidImageError, match=r"zero or negative voxel spacing in the header: .*found spacing \(1\.0, 1\.5, -3\.0\)"
    ):
        read_image(path)


@pytest.mark.parametrize("size", [0.001, 100.0])
def test_implausible_spacing(tmp_path, volume, size):
    with pytest.raises(
        InvalidImageError,
        match=r"implausible voxel spacing \(wrong units in the header\?\): expected spacing between 0\.05 and 30 mm",
    ):
        read_image(write_nifti(tmp_path / "units.nii.gz", volume, np.diag([size, size, size, 1.0])))


def test_singular_affine(tmp_path, volume):
    affine = np.array([[1.0, 1.0, 0, 0], [0, 0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1]])
    with pytest.raises(InvalidImageError, match=r"singular affine: expected an invertible voxel-to-world matrix"):
        read_image(write_nifti(tmp_path / "singular.nii.gz", volume, affine))


def test_constant_image(tmp_path):
    with pytest.raises(
        InvalidImageError, match=r"constant image: expected varying intensities, found every voxel equal to 7"
    ):
        read_image(write_nifti(tmp_path / "flat.nii.gz", np.full((10, 20, 30), 7.0, np.float32)))


def test_label_map_with_fractional_values(tmp_path, volume):
    with pytest.raises(
        InvalidImageError, match=r"label map with non-integer values: expected integer labels, found \d+ voxels"
    ):
        read_image(write_nifti(tmp_path / "seg.nii.gz", volume), "label")


def test_label_map_with_negative_values(tmp_path):
    labels = np.zeros((10, 20, 30), np.int16)
    labels[1, 1, 1] = -1
    with pytest.raises(
        InvalidImageError, match=r"label map with negative values: expected labels >= 0, found minimum -1"
    ):
        read_image(write_nifti(tmp_path / "seg.nii.gz", labels), "label")


def test_dicom_folder_with_several_series_names_them(tmp_path, rng):
    folder = tmp_path / "exam"
    volume = rng.integers(0, 1000, (6, 7, 4)).astype(np.int16)
    write_dicom_series(folder / "a", volume, series_uid="1.2.3.100", description="T1 AX")
    write_dicom_series(folder / "b", volume, series_uid="1.2.3.200", description="T2 AX")
    for file in (folder / "b").iterdir():
        shutil.move(file, folder / "a" / f"b_{file.name}")
    with pytest.raises(
        InvalidImageError,
        match=r"several series.*found 2 series: 1\.2\.3\.100 \(T1 AX, 4 files\); 1\.2\.3\.200 \(T2 AX, 4 files\)",
    ):
        read_image(folder / "a")
    chosen = read_image(folder / "a", series_uid="1.2.3.200")
    assert chosen.shape == (1, 6, 7, 4)


def test_dicom_series_with_a_missing_slice(tmp_path, rng):
    volume = rng.integers(0, 1000, (6, 7, 6)).astype(np.int16)
    folder = write_dicom_series(tmp_path / "gap", volume, skip_slices=(3,))
    with pytest.raises(
        InvalidImageError, match=r"DICOM slices are unevenly spaced .*found gaps from 2\.000 to 4\.000 mm"
    ):
        read_image(folder)


def test_folder_without_dicom(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidImageError, match=r"no DICOM series found"):
        read_image(tmp_path / "empty")


def test_kind_typo_suggests_the_right_word(tmp_path, volume):
    with pytest.raises(ValueError, match=r"label"):
        read_image(write_nifti(tmp_path / "a.nii.gz", volume), "lable")


# ---- real scans ----------------------------------------------------------------------------


def test_every_real_file_reads(realdata):
    files = sorted(realdata.glob("*/*.nii.gz"))
    assert len(files) >= 11
    for path in files:
        kind = "label" if "_seg" in path.name else "image"
        image = read_image(path, kind)
        reference = nib.load(path)
        assert image.shape[1:] == reference.shape
        np.testing.assert_allclose(image.affine.numpy(), reference.affine, atol=1e-6)


def test_real_dicom_series_has_its_true_slice_spacing(realdata):
    image = read_image(realdata / "totalsegmentator_examples" / "example_ct_dicom")
    assert image.shape == (1, 512, 512, 20)
    spacing = np.linalg.norm(image.affine.numpy()[:3, :3], axis=0)
    np.testing.assert_allclose(spacing, [0.9765625, 0.9765625, 2.0], atol=1e-6)
    assert any("SliceThickness tag says 3 mm" in note for note in image.meta["notes"])
    # the model's segmentation of this series (stored LAS) lies on the same voxels
    seg = nib.load(realdata / "totalsegmentator_examples" / "example_seg_dicom.nii.gz")
    flip_y = np.diag([1.0, -1.0, 1.0, 1.0])
    flip_y[1, 3] = 511
    np.testing.assert_allclose(image.affine.numpy() @ flip_y, seg.affine, atol=1e-3)


def test_sform_kept_when_pixdim_disagrees(tmp_path, volume):
    # MONAI's NibabelReader would replace such an sform; mednet keeps it and says so
    sform = np.diag([2.0, 2.0, 4.0, 1.0])
    image = nib.Nifti1Image(volume, None)
    image.set_sform(sform, code=1)
    image.set_qform(np.eye(4), code=1)
    image.header.set_zooms((1.0, 1.0, 1.0))
    nib.save(image, tmp_path / "mixed.nii.gz")
    loaded = read_image(tmp_path / "mixed.nii.gz")
    np.testing.assert_allclose(loaded.affine.numpy(), sform)
    assert any("disagrees with the sform voxel sizes (2.0, 2.0, 4.0)" in n for n in loaded.meta["notes"])


def test_reading_dicom_keeps_the_text_encoding(tmp_path):
    """Reading DICOM leaves the locale alone (GDCM's writer does not: tests' helper restores it)."""
    import locale
    import subprocess
    import sys

    from mednet.io.sitk_reader import describe_dicom_series

    before = locale.setlocale(locale.LC_ALL)
    folder = write_dicom_series(tmp_path / "series", np.arange(4 * 5 * 3, dtype=np.int16).reshape(4, 5, 3))
    assert locale.setlocale(locale.LC_ALL) == before  # the helper put it back
    assert read_image(folder).shape == (1, 4, 5, 3) and len(describe_dicom_series(folder)) == 1
    assert locale.setlocale(locale.LC_ALL) == before
    if locale.getpreferredencoding(False).upper().replace("-", "") == "UTF8":  # the machine's own is UTF-8
        out = subprocess.run([sys.executable, "-c", "print('\\u00e9\\u2026')"], capture_output=True, text=True)
        assert out.stdout.strip() == "\u00e9\u2026"
