"""``predict_cohort`` on a case given as a DICOM series: the label map also comes out as a DICOM SEG.

The bundles carry seeded, untrained weights (the label map's content does not matter
here, only that the SEG holds exactly the NIfTI label map, voxel for voxel, on the
source series' slices).
"""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from highdicom.seg import segread
from monai.bundle import ConfigParser

from mednet.io import read_image
from mednet.io.dicom_seg import read_source_series
from mednet.pipeline import DISEASES, disease_spec, predict_cohort
from tests.bundles.helpers import BUNDLES
from tests.io.dicom_helpers import write_dicom_series

pytestmark = pytest.mark.bundle


@pytest.fixture(scope="module")
def glioma_bundles(tmp_path_factory):
    """The glioma bundles' configs with seeded, untrained weights as ``models/model.pt``."""
    root = tmp_path_factory.mktemp("bundles")
    for name in DISEASES["glioma"]:
        shutil.copytree(BUNDLES / name / "configs", root / name / "configs")
        parser = ConfigParser()
        parser.read_config(str(root / name / "configs" / "inference.json"))
        parser["bundle_root"] = str(root / name)
        torch.manual_seed(0)
        (root / name / "models").mkdir()
        torch.save(parser.get_parsed_content("network_def").state_dict(), root / name / "models" / "model.pt")
    return root


def test_predict_writes_a_dicom_seg_of_the_label_map_for_a_dicom_case(glioma_bundles, tmp_path):
    spec = disease_spec("glioma", glioma_bundles)
    reference = spec.sequences[0]
    shape = (32, 40, 20)  # every voxel its own code (1..25600), so each source pixel names its voxel
    codes = np.arange(1, int(np.prod(shape)) + 1).reshape(shape)
    tilt = np.deg2rad(12.0)
    direction = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(tilt), np.sin(tilt)], [0.0, -np.sin(tilt), np.cos(tilt)]])
    folder = write_dicom_series(tmp_path / "dcm1" / reference, codes, spacing=(1.2, 1.0, 3.0), direction=direction)
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"testing": [{"case_id": "dcm1", "patient_id": "p1", reference: str(folder)}]}))

    out = tmp_path / "out"
    result = predict_cohort(datalist, "glioma", out, bundles=glioma_bundles, device="cpu", progress=lambda line: None)
    assert result["failed"] == 0
    record = json.loads((out / "dcm1" / "dcm1.json").read_text())
    assert record["labels_dicom_seg"] == "dcm1_labels.seg.dcm"
    labels = np.asarray(nib.load(out / "dcm1" / record["labels"]).dataobj).astype(np.int64)
    assert 0 < np.count_nonzero(labels) < labels.size  # these seeded weights find tumour in part of the volume
    grid = read_image(folder)[0].numpy().astype(np.int64)  # the codes on the grid the labels are on
    label_of_code = np.zeros(codes.size + 1, dtype=np.int64)
    label_of_code[grid.ravel()] = labels.ravel()

    seg = segread(out / "dcm1" / record["labels_dicom_seg"])
    table = [row for row in record["label_table"] if row["value"]]
    assert [s.SegmentLabel for s in seg.SegmentSequence] == [row["name"] for row in table]
    datasets = read_source_series(folder)
    frames = seg.get_pixels_by_source_instance([d.SOPInstanceUID for d in datasets], combine_segments=True)
    values = np.asarray([0] + [row["value"] for row in table])[frames]  # segment number -> label value
    for dataset, frame in zip(datasets, values, strict=True):
        np.testing.assert_array_equal(frame, label_of_code[pydicom.dcmread(dataset.filename).pixel_array])
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == datasets[0].SeriesInstanceUID
