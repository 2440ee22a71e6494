"""DICOM SEG output: references, segments and voxel-for-voxel geometry against the source series.

Each test series stores a unique code in every voxel, so a source slice's own pixels say
which voxels of the label map its SEG frame must hold: an axis swapped or flipped
anywhere between mednet's ``(x, y, z)`` grid and DICOM's ``(rows, columns)`` frames fails.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pydicom
import pytest
from highdicom.color import CIELabColor
from highdicom.seg import segread
from monai.data import MetaTensor

from mednet.errors import InvalidImageError, OutputExistsError
from mednet.io import read_image
from mednet.io.dicom_seg import read_source_series, series_affine, write_dicom_seg
from mednet.localisation import LabelScheme
from tests.io.dicom_helpers import write_dicom_series

TABLE = [
    {"value": 0, "name": "background", "colour": "#000000"},
    {"value": 1, "name": "liver", "colour": "#8c564b"},
    {"value": 2, "name": "spleen", "colour": [148, 103, 189]},
    {"value": 3, "name": "primary_tumour", "colour": "#ff7f0e"},
]


def _rotation(axis: int, degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    i, j = [a for a in range(3) if a != axis]
    rotation = np.eye(3)
    rotation[[i, i, j, j], [i, j, i, j]] = [c, -s, s, c]
    return rotation


#: name -> columns = LPS directions of the stored x (along a row), y (down a column), z (slice to slice)
ORIENTATIONS = {
    "axial": np.eye(3),
    # sagittal-like, tilted 20 degrees, slices stored against the normal (SimpleITK reverses them)
    "oblique_reversed": _rotation(1, 20.0) @ np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
    # coronal, rows running inferior, slices stored posterior to anterior, tilted about two axes
    "coronal_tilted": _rotation(2, 10.0) @ _rotation(0, -15.0) @ np.array([[1.0, 0, 0], [0, 0, -1.0], [0, -1.0, 0]]),
}


def _coded_series(folder, direction, shape=(7, 5, 4), spacing=(0.8, 1.1, 2.5)):
    """A series whose every voxel holds its own code (1..N), and that series as mednet reads it."""
    codes = np.arange(1, int(np.prod(shape)) + 1).reshape(shape)
    write_dicom_series(folder, codes, spacing=spacing, direction=direction, origin=(12.0, -30.0, 41.0))
    return folder, read_image(folder)


def _lut(n_codes: int, seed: int = 0, n_slices: int = 4) -> np.ndarray:
    """Code -> label value: random labels, background on the first slice written (codes 1, 1 + n_slices, ...)."""
    lut = np.random.default_rng(seed).integers(0, 4, n_codes + 1)
    lut[1::n_slices] = 0
    return lut


def _frames_by_instance(seg_path, datasets) -> np.ndarray:
    """The SEG's segments as a ``(instances, rows, columns)`` segment-number map, one per source instance."""
    seg = segread(seg_path)
    uids = [d.SOPInstanceUID for d in datasets]
    return seg.get_pixels_by_source_instance(uids, combine_segments=True, skip_overlap_checks=True)


def _check_voxels(seg_path, datasets, lut):
    """Every source slice's SEG frame holds the labels of exactly that slice's voxels."""
    frames = _frames_by_instance(seg_path, datasets)
    for dataset, frame in zip(datasets, frames, strict=True):
        pixels = pydicom.dcmread(dataset.filename).pixel_array  # (rows, columns) of codes
        np.testing.assert_array_equal(frame, lut[pixels], err_msg=dataset.filename)


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_seg_references_the_series_and_matches_the_label_map_voxel_for_voxel(orientation, tmp_path):
    folder, image = _coded_series(tmp_path / "t1", ORIENTATIONS[orientation])
    codes = image[0].numpy().astype(int)
    lut = _lut(codes.max())
    labels = MetaTensor(lut[codes][None], affine=image.affine)
    path = write_dicom_seg(labels, folder, TABLE, tmp_path / "labels.seg.dcm", lesion_values=[3])

    datasets = read_source_series(folder)
    _check_voxels(path, datasets, lut)
    seg = pydicom.dcmread(path)
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    for key in ("FrameOfReferenceUID", "StudyInstanceUID", "PatientID"):
        assert getattr(seg, key) == getattr(datasets[0], key), key
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == datasets[0].SeriesInstanceUID != seg.SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in referenced.ReferencedInstanceSequence} == {
        d.SOPInstanceUID for d in datasets
    }
    # geometry: the source's orientation, spacing and slice positions, frame by frame
    shared = seg.SharedFunctionalGroupsSequence[0]
    np.testing.assert_allclose(
        [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient],
        [float(v) for v in datasets[0].ImageOrientationPatient],
    )
    np.testing.assert_allclose(
        [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing], [float(v) for v in datasets[0].PixelSpacing]
    )
    assert (seg.Rows, seg.Columns) == (datasets[0].Rows, datasets[0].Columns) == (5, 7)
    positions = {d.SOPInstanceUID: [float(v) for v in d.ImagePositionPatient] for d in datasets}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        source = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(position, positions[source], atol=1e-3)
    # segments: named and coloured from the table, lesions coded as such; empty slice frames omitted
    segments = list(seg.SegmentSequence)
    assert [(s.SegmentNumber, s.SegmentLabel) for s in segments] == [(1, "liver"), (2, "spleen"), (3, "primary_tumour")]
    colours = [CIELabColor.from_dicom_value(tuple(s.RecommendedDisplayCIELabValue)).to_rgb() for s in segments]
    assert colours == [(140, 86, 75), (148, 103, 189), (255, 127, 14)]
    assert [s.SegmentedPropertyTypeCodeSequence[0].CodeMeaning for s in segments] == ["Organ", "Organ", "Lesion"]
    present = sum(int(np.any(lut[codes][..., k] == v)) for k in range(codes.shape[2]) for v in (1, 2, 3))
    assert seg.NumberOfFrames == present < 3 * len(datasets)


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_series_affine_is_the_grid_mednet_reads(orientation, tmp_path):
    folder, image = _coded_series(tmp_path / "t1", ORIENTATIONS[orientation])
    affine, shape = series_affine(read_source_series(folder))
    assert shape == tuple(image.shape[1:]) == (7, 5, 4)
    np.testing.assert_allclose(affine, image.affine.numpy(), atol=1e-4)


def test_a_reoriented_label_map_gives_the_same_seg(tmp_path):
    folder, image = _coded_series(tmp_path / "t1", ORIENTATIONS["oblique_reversed"])
    codes = image[0].numpy().astype(int)
    lut = _lut(codes.max(), seed=1)
    # the same labels with the axes permuted (z, x, y) and the new first axis flipped, and the affine to match
    permuted = lut[codes].transpose(2, 0, 1)[::-1]
    to_original = np.zeros((4, 4))
    to_original[[2, 0, 1, 3], [0, 1, 2, 3]] = [-1.0, 1.0, 1.0, 1.0]
    to_original[2, 3] = codes.shape[2] - 1
    affine = image.affine.numpy() @ to_original
    path = write_dicom_seg(permuted, folder, TABLE, tmp_path / "permuted.seg.dcm", affine=affine)
    _check_voxels(path, read_source_series(folder), lut)
    # a plain array without an affine is taken on the grid mednet reads from the series
    plain = write_dicom_seg(lut[codes], folder, TABLE, tmp_path / "plain.seg.dcm")
    np.testing.assert_array_equal(_frames_by_instance(plain, read_source_series(folder)),
                                  _frames_by_instance(path, read_source_series(folder)))  # fmt: skip


def test_empty_label_map_gives_a_valid_seg_with_every_segment(tmp_path):
    folder, image = _coded_series(tmp_path / "t1", np.eye(3))
    scheme = LabelScheme(TABLE[1:], {3: "primary_tumour"})
    path = write_dicom_seg(np.zeros(image.shape[1:], dtype=np.uint8), folder, scheme, tmp_path / "empty.seg.dcm",
                           affine=image.affine)  # fmt: skip
    datasets = read_source_series(folder)
    seg = segread(path)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["liver", "spleen", "primary_tumour"]
    assert seg.NumberOfFrames == 3 * len(datasets)  # nothing to omit: every frame, empty
    assert not _frames_by_instance(path, datasets).any()


def test_a_label_map_off_the_source_grid_is_refused(tmp_path):
    folder, image = _coded_series(tmp_path / "t1", ORIENTATIONS["coronal_tilted"])
    labels = np.zeros(image.shape[1:], dtype=np.uint8)
    with pytest.raises(ValueError, match=r"t1: the label map is not on the source series' grid: .*slice000\.dcm "
                       r"\(5 rows x 7 columns\) reaches outside the label map of shape \(7, 5, 3\)"):  # fmt: skip
        write_dicom_seg(labels[:, :, :3], folder, TABLE, tmp_path / "a.dcm", affine=image.affine)
    with pytest.raises(ValueError, match=r"its shape \(7, 5, 5\) is not covered once by the 4 slices of 5 rows x 7"):
        write_dicom_seg(np.zeros((7, 5, 5)), folder, TABLE, tmp_path / "a.dcm", affine=image.affine)
    with pytest.raises(ValueError, match="not on the source series' grid: expected its axes along the slices'"):
        write_dicom_seg(labels, folder, TABLE, tmp_path / "a.dcm", affine=image.affine.numpy() @ np.diag([2, 1, 1, 1]))
    shifted = image.affine.numpy().copy()
    shifted[:3, 3] += shifted[:3, 0] * 0.5  # half a voxel along x
    with pytest.raises(ValueError, match=r"off the voxel centres by more than 0\.25"):
        write_dicom_seg(labels, folder, TABLE, tmp_path / "a.dcm", affine=shifted)
    shifted[:3, 3] += shifted[:3, 0] * 0.5  # a whole voxel: the slices reach outside the map
    with pytest.raises(ValueError, match=r"reaches outside the label map of shape \(7, 5, 4\)"):
        write_dicom_seg(labels, folder, TABLE, tmp_path / "a.dcm", affine=shifted)
    labels[0, 0, 0] = 9
    with pytest.raises(ValueError, match=r"label values \[9\] are not in the label table \(values \[1, 2, 3\]\)"):
        write_dicom_seg(labels, folder, TABLE, tmp_path / "a.dcm", affine=image.affine)
    assert not (tmp_path / "a.dcm").exists()


def test_sources_a_seg_cannot_reference_are_refused_by_name(tmp_path):
    volume = np.arange(1, 7 * 5 * 4 + 1).reshape(7, 5, 4)
    folder = write_dicom_series(tmp_path / "no_frame", volume, frame_of_reference_uid="")
    labels = np.zeros((7, 5, 4), dtype=np.uint8)
    with pytest.raises(InvalidImageError, match=r"slice000\.dcm: DICOM instance without the geometry .* no Frame"):
        write_dicom_seg(labels, folder, TABLE, tmp_path / "a.dcm")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not DICOM")
    with pytest.raises(InvalidImageError, match=r"notes: DICOM series not found: .*found no DICOM series"):
        write_dicom_seg(labels, tmp_path / "notes", TABLE, tmp_path / "a.dcm")
    write_dicom_series(tmp_path / "two", volume, series_uid="1.2.3.100")
    for file in write_dicom_series(tmp_path / "other", volume, series_uid="1.2.3.200").iterdir():
        file.rename(tmp_path / "two" / f"other_{file.name}")
    with pytest.raises(InvalidImageError, match=r"two: DICOM folder holds several series.*1\.2\.3\.100"):
        write_dicom_seg(labels, tmp_path / "two", TABLE, tmp_path / "a.dcm")
    path = write_dicom_seg(labels, tmp_path / "two", TABLE, tmp_path / "a.dcm", series_uid="1.2.3.200")
    assert pydicom.dcmread(path).ReferencedSeriesSequence[0].SeriesInstanceUID == "1.2.3.200"
    with pytest.raises(OutputExistsError, match=r"a\.dcm: output exists"):
        write_dicom_seg(labels, tmp_path / "two", TABLE, path, series_uid="1.2.3.200")


def test_real_ct_series_and_its_las_segmentation(realdata, tmp_path):
    """TotalSegmentator's map of a real CT series, stored LAS (y flipped against the series' grid).

    The series was de-identified without new UIDs (empty SOP, series and study UIDs): it is
    refused by name, then written with the UIDs its files' meta headers still hold.
    """
    folder = realdata / "totalsegmentator_examples" / "example_ct_dicom"
    stored = nib.load(realdata / "totalsegmentator_examples" / "example_seg_dicom.nii.gz")
    values = np.asarray(stored.dataobj).astype(np.int64)
    table = [{"value": int(v), "name": f"structure {v}", "colour": [int(v), 255 - int(v), 128]}
             for v in np.unique(values) if v]  # fmt: skip
    with pytest.raises(InvalidImageError, match=r"example_ct_dicom/CT\.[0-9.]+: DICOM instance without the UIDs a SEG "
                       r"references it by .*found no SOPClassUID, SOPInstanceUID, SeriesInstanceUID"):  # fmt: skip
        write_dicom_seg(values, folder, table, tmp_path / "ct.seg.dcm", affine=stored.affine)
    datasets = []
    for file in sorted(folder.iterdir()):
        dataset = pydicom.dcmread(file, stop_before_pixels=True)
        dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID
        dataset.SeriesInstanceUID, dataset.StudyInstanceUID = (
            "1.2.826.0.1.3680043.2.1125.71",
            "1.2.826.0.1.3680043.2.1125.72",
        )
        datasets.append(dataset)
    path = write_dicom_seg(values, datasets, table, tmp_path / "ct.seg.dcm", affine=stored.affine)
    image = read_image(folder)
    np.testing.assert_allclose(image.affine.numpy(), stored.affine @ _flip_y(values.shape[1]), atol=1e-3)
    on_series_grid = values[:, ::-1, :]  # LAS -> the series' grid as mednet reads it (tests/io/test_read.py)
    number_to_value = np.zeros(len(table) + 1, dtype=np.int64)
    number_to_value[1:] = [row["value"] for row in table]
    frames = number_to_value[_frames_by_instance(path, datasets)]
    order = np.argsort([float(d.ImagePositionPatient[2]) for d in datasets])  # axial, z ascending = mednet's z
    np.testing.assert_array_equal(frames[order], on_series_grid.transpose(2, 1, 0))
    assert frames.any()


def _flip_y(n: int) -> np.ndarray:
    flip = np.diag([1.0, -1.0, 1.0, 1.0])
    flip[1, 3] = n - 1
    return flip
