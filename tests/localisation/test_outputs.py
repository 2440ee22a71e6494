"""The case files written from class probabilities: label map, label table, lesion table."""

from __future__ import annotations

import json
import os
import stat

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from highdicom.seg import segread
from monai.data import MetaTensor

from mednet.io import read_image
from mednet.io.dicom_seg import read_source_series
from mednet.localisation import LabelScheme, LocalisationResult, localise_from_probabilities, write_localisation
from mednet.localisation.outputs import DicomSegWarning
from mednet.transforms import Localised, WriteLocalisationd
from tests.conftest import lps_affine, write_nifti
from tests.io.dicom_helpers import write_dicom_series

TABLE = [{"value": 1, "name": "kidney", "colour": "#ff00ff"}, {"value": 2, "name": "tumour", "colour": "#ff7f0e"}]


def _probabilities(labels: np.ndarray, n_classes: int = 3) -> np.ndarray:
    """One-hot probabilities with 0.9 on the labelled class."""
    probs = np.full((n_classes, *labels.shape), 0.1 / (n_classes - 1), dtype=np.float32)
    for c in range(n_classes):
        probs[c][labels == c] = 0.9
    return probs


def test_organ_cleanup_small_lesion_removal_and_table():
    labels = np.zeros((20, 20, 10), dtype=np.int16)
    labels[2:10, 2:10, 2:8] = 1  # kidney
    labels[15, 15, 5] = 1  # stray kidney voxel: removed by the clean-up
    labels[5, 5, 4] = 0  # hole in the kidney: filled
    labels[9:12, 9:12, 3:6] = 2  # tumour of 27 voxels touching the kidney
    labels[17, 2, 2] = 2  # one-voxel tumour: under min_lesion_mm3
    scheme = LabelScheme(TABLE, lesion_classes={"2": "tumour"}, organ_components={"1": 1},
                         compartments={"kidney": "retroperitoneum"}, min_lesion_mm3=5.0)  # fmt: skip
    result = localise_from_probabilities(_probabilities(labels), np.diag([1.0, 1.0, 2.0, 1.0]), scheme)
    assert result.labels[15, 15, 5] == 0 and result.labels[5, 5, 4] == 1 and result.labels[17, 2, 2] == 0
    assert len(result.lesions) == 1
    lesion = result.lesions[0]
    assert lesion["voxels"] == 27 and lesion["volume_ml"] == pytest.approx(0.054)
    assert lesion["host_organ"] == "kidney" and lesion["compartment"] == "retroperitoneum"
    assert lesion["mean_probability"] == pytest.approx(0.9)


def test_lesion_threshold_finds_a_faint_lesion_that_argmax_misses():
    table = [*TABLE, {"value": 3, "name": "metastasis", "colour": "#ffdd00"}]
    probs = np.zeros((4, 12, 12, 6), dtype=np.float32)
    probs[0] = 1.0
    probs[:, 2:6, 2:6, 1:4] = np.array([0.1, 0.5, 0.25, 0.15])[:, None, None, None]  # kidney wins the arg-max
    probs[:, 8:10, 8:10, 1:3] = np.array([0.6, 0.0, 0.1, 0.3])[:, None, None, None]  # metastasis-like, 0.4 lesion
    affine = np.eye(4)
    plain = LabelScheme(table, lesion_classes={2: "tumour", 3: "metastasis"})
    assert localise_from_probabilities(probs, affine, plain).lesions == []
    lowered = LabelScheme(table, lesion_classes={2: "tumour", 3: "metastasis"}, lesion_threshold=0.35)
    result = localise_from_probabilities(probs, affine, lowered)
    assert [(r["class_name"], r["voxels"]) for r in result.lesions] == [("tumour", 48), ("metastasis", 8)]
    assert np.all(result.labels[2:6, 2:6, 1:4] == 2) and np.all(result.labels[8:10, 8:10, 1:3] == 3)
    assert result.lesions[0]["mean_probability"] == pytest.approx(0.4)
    strict = LabelScheme(table, lesion_classes={2: "tumour", 3: "metastasis"}, lesion_threshold=0.45)
    assert localise_from_probabilities(probs, affine, strict).lesions == []


def test_a_lesion_threshold_above_one_half_trims_what_the_arg_max_calls_lesion():
    table = [*TABLE, {"value": 3, "name": "metastasis", "colour": "#ffdd00"}]
    probs = np.zeros((4, 12, 12, 6), dtype=np.float32)
    probs[0] = 1.0
    probs[:, 2:6, 2:6, 1:4] = np.array([0.1, 0.05, 0.85, 0.0])[:, None, None, None]  # a sure tumour core
    probs[:, 2:6, 6:8, 1:4] = np.array([0.2, 0.25, 0.55, 0.0])[:, None, None, None]  # its unsure rim
    probs[:, 2:6, 8:9, 1:4] = np.array([0.45, 0.0, 0.3, 0.25])[:, None, None, None]  # arg-max background, 0.55 lesion
    scheme = {"lesion_classes": {2: "tumour", 3: "metastasis"}}
    plain = localise_from_probabilities(probs, np.eye(4), LabelScheme(table, **scheme))
    assert np.all(plain.labels[2:6, 2:8, 1:4] == 2) and np.all(plain.labels[2:6, 8:9, 1:4] == 0)
    trimmed = localise_from_probabilities(probs, np.eye(4), LabelScheme(table, **scheme, lesion_threshold=0.7))
    assert np.all(trimmed.labels[2:6, 2:6, 1:4] == 2)  # the core stays
    assert np.all(trimmed.labels[2:6, 6:8, 1:4] == 1) and np.all(trimmed.labels[2:6, 8:9, 1:4] == 0)  # likeliest other
    assert [(r["class_name"], r["voxels"]) for r in trimmed.lesions] == [("tumour", 48)]
    half = localise_from_probabilities(probs, np.eye(4), LabelScheme(table, **scheme, lesion_threshold=0.5))
    assert np.all(half.labels[2:6, 8:9, 1:4] == 2)  # 0.55 summed: a lesion of its likeliest lesion class
    with pytest.raises(ValueError, match="lesion_threshold"):
        LabelScheme(table, lesion_classes={2: "tumour"}, lesion_threshold=1.5)


def test_label_scheme_rejects_values_outside_the_table():
    with pytest.raises(ValueError, match=r"label values \[7\] are not in the label table"):
        LabelScheme(TABLE, lesion_classes={7: "x"})


def test_write_localisation_files_on_the_reference_grid(tmp_path):
    reference_path = write_nifti(
        tmp_path / "in" / "case_t2w.nii.gz", np.arange(4000, dtype=np.int16).reshape(20, 20, 10), lps_affine()
    )
    reference = read_image(reference_path)
    labels = np.zeros((20, 20, 10), dtype=np.int16)
    labels[4:9, 4:9, 2:6] = 2
    scheme = LabelScheme(TABLE, {2: "tumour"})
    result = localise_from_probabilities(_probabilities(labels), np.asarray(reference.affine), scheme)
    paths = write_localisation(result, reference, tmp_path / "out", "case", scheme)
    written = nib.load(paths["labels"])
    source = nib.load(reference_path)
    assert written.shape == source.shape
    np.testing.assert_array_equal(written.header.get_sform(), source.header.get_sform())
    np.testing.assert_array_equal(written.header.get_qform(), source.header.get_qform())
    np.testing.assert_array_equal(np.asarray(written.dataobj), labels)
    table = json.loads(paths["label_table"].read_text())["labels"]
    assert [row["name"] for row in table] == ["background", "kidney", "tumour"]
    assert json.loads(paths["lesions_json"].read_text())["count"] == 1
    umask = os.umask(0o022)
    os.umask(umask)
    assert sorted(paths["labels"].parent.iterdir()) == sorted(paths.values())  # no temporary file left
    assert {stat.S_IMODE(p.stat().st_mode) for p in paths.values()} == {0o666 & ~umask}  # as open() makes them
    with pytest.raises(Exception, match="output exists"):
        write_localisation(result, reference, tmp_path / "out", "case", scheme)


def test_write_localisation_adds_a_dicom_seg_for_a_dicom_series(tmp_path):
    direction = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # sagittal, slices stored R to L
    folder = write_dicom_series(tmp_path / "in" / "t2", np.arange(1, 401).reshape(10, 8, 5), direction=direction)
    reference = read_image(folder)
    labels = np.zeros((10, 8, 5), dtype=np.int16)
    labels[2:6, 1:4, 1:3], labels[7:, 5:, 4] = 2, 1
    scheme = LabelScheme(TABLE, {2: "tumour"})
    paths = write_localisation(LocalisationResult(labels, []), reference, tmp_path / "out", "case", scheme)
    assert paths["dicom_seg"] == tmp_path / "out" / "case" / "case_labels.seg.dcm"
    assert sorted(paths["labels"].parent.iterdir()) == sorted(paths.values())  # no temporary file left
    seg = segread(paths["dicom_seg"])
    assert [(s.SegmentLabel, s.SegmentedPropertyTypeCodeSequence[0].CodeMeaning) for s in seg.SegmentSequence] == [
        ("kidney", "Organ"), ("tumour", "Lesion")
    ]  # fmt: skip
    datasets = read_source_series(folder)
    frames = seg.get_pixels_by_source_instance([d.SOPInstanceUID for d in datasets], combine_segments=True)
    by_code = np.zeros(401, dtype=np.int16)  # voxel code (1..400, unique) -> its label on the grid mednet read
    by_code[reference[0].numpy().astype(int).ravel()] = labels.ravel()
    for dataset, frame in zip(datasets, frames, strict=True):
        np.testing.assert_array_equal(frame, by_code[pydicom.dcmread(dataset.filename).pixel_array])
    np.testing.assert_array_equal(np.asarray(nib.load(paths["labels"]).dataobj), labels)  # the NIfTI as before
    with pytest.raises(Exception, match="output exists"):
        write_localisation(LocalisationResult(labels, []), reference, tmp_path / "out", "case", scheme)


def test_a_dicom_series_without_uids_gets_no_seg_and_a_warning(tmp_path):
    folder = write_dicom_series(tmp_path / "in" / "t2", np.arange(1, 401).reshape(10, 8, 5), frame_of_reference_uid="")
    reference = read_image(folder)
    scheme = LabelScheme(TABLE, {2: "tumour"})
    with pytest.warns(DicomSegWarning, match=r"case: no DICOM SEG written: .*slice000\.dcm: DICOM instance without "
                      r"the geometry a SEG references.*no FrameOfReferenceUID"):  # fmt: skip
        paths = write_localisation(LocalisationResult(np.zeros((10, 8, 5)), []), reference, tmp_path / "out", "case",
                                   scheme)  # fmt: skip
    assert "dicom_seg" not in paths and paths["labels"].is_file()
    assert sorted(paths["labels"].parent.iterdir()) == sorted(paths.values())


def test_localised_then_write_localisationd_names_the_case_and_needs_a_metatensor(tmp_path):
    reference = read_image(write_nifti(tmp_path / "GLI_7_t1.nii.gz", np.arange(144, dtype=np.int16).reshape(6, 6, 4)))
    probs = reference.clone().repeat(3, 1, 1, 1).float()
    probs[:] = 0.0
    probs[0] = 1.0
    probs[0, 1:4, 1:4, 1:3], probs[2, 1:4, 1:4, 1:3] = 0.0, 1.0  # an 18-voxel lesion of label 2
    localise = Localised("pred", TABLE, lesion_classes={"2": "tumour"})
    localised = localise({"pred": probs})
    labels = localised["pred"]
    assert isinstance(labels, MetaTensor) and tuple(labels.shape) == (1, 6, 6, 4)
    assert torch.equal(labels.affine, reference.affine) and int((labels == 2).sum()) == 18
    voxel_mm3 = abs(float(np.linalg.det(np.asarray(reference.affine)[:3, :3])))
    assert [row["volume_ml"] * 1000 for row in localised["pred_lesions"]] == [pytest.approx(18.0 * voxel_mm3)]
    write = WriteLocalisationd("pred", tmp_path / "out", TABLE)
    out = write(localised)
    assert out["pred_files"]["labels"].endswith("GLI_7_t1/GLI_7_t1_labels.nii.gz")
    written = nib.load(out["pred_files"]["labels"])
    assert np.array_equal(np.asarray(written.dataobj), labels[0].numpy()) and np.allclose(
        written.affine, reference.affine
    )
    out = write({**localised, "case_id": "GLI_7"})
    assert len(json.loads((tmp_path / "out" / "GLI_7" / "GLI_7_lesions.json").read_text())["lesions"]) == 1
    with pytest.raises(TypeError, match="MetaTensor"):
        localise({"pred": torch.zeros(3, 6, 6, 4)})
    with pytest.raises(KeyError, match="Localised before"):
        write({"pred": labels})


def _drop_small_reference(labels, values, voxel_mm3, min_mm3):
    """The plain rule: label every component of each lesion class over the whole volume, drop the small ones."""
    from scipy import ndimage

    out = labels.copy()
    for value in values:
        components, count = ndimage.label(out == value, structure=np.ones((3, 3, 3), dtype=bool))
        for index in range(1, count + 1):
            if (components == index).sum() * voxel_mm3 < min_mm3:
                out[components == index] = 0
    return out


@pytest.mark.parametrize("seed", range(6))
def test_small_lesions_dropped_as_the_plain_rule_does(seed):
    from mednet.localisation.outputs import _drop_small_lesions

    rng = np.random.default_rng(seed)
    labels = np.zeros((30, 26, 14), dtype=np.int16)
    labels[2:28, 2:24, 1:13] = 1  # an organ
    for _ in range(12):  # lesions of both classes, of many sizes, some touching
        value = int(rng.integers(2, 4))
        lo = rng.integers(0, (25, 21, 10))
        size = rng.integers(1, 5, size=3)
        labels[lo[0] : lo[0] + size[0], lo[1] : lo[1] + size[1], lo[2] : lo[2] + size[2]] = value
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    scheme = LabelScheme([{"value": 1, "name": "liver"}, {"value": 2, "name": "tumour"}, {"value": 3, "name": "met"}],
                         {2: "tumour", 3: "met"}, min_lesion_mm3=20.0)  # fmt: skip
    expected = _drop_small_reference(labels, (2, 3), 4.5, 20.0)
    assert np.array_equal(_drop_small_lesions(labels, scheme, affine), expected)
    assert (expected != labels).any() and np.isin(expected, (2, 3)).any()  # some dropped, some kept


def test_a_lesion_that_fills_its_box_is_still_measured():
    """A lone lesion is its class's whole bounding box: one value there, yet still dropped when small."""
    from mednet.localisation.outputs import _drop_small_lesions

    scheme = LabelScheme([{"value": 1, "name": "liver"}, {"value": 2, "name": "tumour"}], {2: "tumour"},
                         min_lesion_mm3=20.0)  # fmt: skip
    affine = np.diag([1.0, 2.0, 3.0, 1.0])  # 6 mm3 voxels
    labels = np.ones((12, 12, 8), dtype=np.int16)
    labels[4, 4, 4] = 2  # 6 mm3: dropped
    assert not (_drop_small_lesions(labels, scheme, affine) == 2).any()
    labels[4:6, 4:6, 4] = 2  # 24 mm3, a full 2 x 2 x 1 box: kept
    assert (_drop_small_lesions(labels, scheme, affine) == 2).sum() == 4
    labels[:] = 2  # the whole volume one lesion: kept
    assert (_drop_small_lesions(labels, scheme, affine) == 2).all()
