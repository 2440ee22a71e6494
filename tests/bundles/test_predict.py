"""``mednet predict`` end to end on ``small`` synthetic cases, with briefly trained bundles.

The bundles' weights come from one tiny epoch (tests/bundles/conftest.py), so the
diagnoses are not meaningful; these tests check the pipeline: files present and on the
input's grid, complete JSON, resume, a bad case, the report, the exit code.
"""

from __future__ import annotations

import csv
import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from mednet.cli.main import main
from mednet.pipeline import DISEASES, disease_spec, predict_cohort
from tests.bundles.helpers import BUNDLES

pytestmark = pytest.mark.bundle


@pytest.fixture(scope="module")
def trained_bundles(tiny_checkpoints, grading_checkpoints, tmp_path_factory):
    """A bundles folder: mednet's configs with the tiny checkpoints as ``models/model.pt``."""
    root = tmp_path_factory.mktemp("bundles")
    for name, work in {**tiny_checkpoints, **grading_checkpoints}.items():
        shutil.copytree(BUNDLES / name / "configs", root / name / "configs")
        (root / name / "models").mkdir(parents=True)
        shutil.copy(work / "models" / "model.pt", root / name / "models" / "model.pt")
    return root


def _rows(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("disease", sorted(DISEASES))
def test_predict_writes_every_output_on_the_input_grid(disease, trained_bundles, grading_cohorts, tmp_path):
    datalist = grading_cohorts[DISEASES[disease][1]]
    out = tmp_path / "out"
    result = predict_cohort(datalist, disease, out, bundles=trained_bundles, progress=lambda line: None)
    testing = json.loads(datalist.read_text())["testing"]
    assert result["cases"] == len(testing) and result["failed"] == 0
    spec = disease_spec(disease, trained_bundles)
    for case in testing:
        case_id = case["case_id"]
        folder = out / case_id
        for suffix in ("_labels.nii.gz", "_labels.json", "_lesions.csv", "_lesions.json", ".json", "_overview.png"):
            assert (folder / f"{case_id}{suffix}").is_file(), suffix
        reference = nib.load(datalist.parent / case[spec.required[0]])
        labels = nib.load(folder / f"{case_id}_labels.nii.gz")
        assert labels.shape == reference.shape
        np.testing.assert_allclose(labels.affine, reference.affine, atol=1e-5)
        record = json.loads((folder / f"{case_id}.json").read_text())
        assert record["disease"] == disease and record["bundles"] == spec.versions
        assert all(row["colour"].startswith("#") for row in record["label_table"])  # not MONAI's "::" for "#"
        assert set(record["inputs"]) == set(spec.required) and record["timings"]["localise_s"] >= 0
        if record["fused_class"] is None:  # the tiny localisation model found no lesion
            assert "no lesion" in record["note"] and record["sequences"] == {}
        else:
            assert record["fused_class"] in spec.classes
            assert sum(record["fused"].values()) == pytest.approx(1.0, abs=1e-5)
            assert set(record["sequences"]) <= set(spec.required) and record["fusion"]["method"]
            if disease == "cpa":
                assert record["fusion"]["method"] == "dl_mdt" and record["clinicians"] == case["clinicians"]
    assert not list((out / ".partial").iterdir())
    rows = _rows(out / "summary.csv")
    assert [r["case_id"] for r in rows] == [c["case_id"] for c in testing]
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(testing) and "Research use only" in page


def test_resume_bad_case_and_exit_code(trained_bundles, grading_cohorts, tmp_path, capsys):
    source = grading_cohorts["glioma_mri_classification"]
    doc = json.loads(source.read_text())
    good = doc["testing"][0]
    bad = {**good, "case_id": "BAD_1", "patient_id": "BAD_1"}
    bad.pop("flair")  # a required sequence missing
    doc["testing"] = [good, bad]
    datalist = source.parent / "with_bad_case.json"
    datalist.write_text(json.dumps(doc))
    out = tmp_path / "out"
    args = ["predict", "--disease", "glioma", "--input", str(datalist), "--out", str(out),
            "--bundles", str(trained_bundles)]  # fmt: skip
    assert main(args) == 1  # one case failed
    rows = {r["case_id"]: r for r in _rows(out / "summary.csv")}
    assert rows[good["case_id"]]["status"] == "ok"
    assert rows["BAD_1"]["status"] == "failed" and "missing required sequence(s) flair" in rows["BAD_1"]["error"]
    # an interrupted case: its files half made in .partial, none in OUT/<case>
    record = out / good["case_id"] / f"{good['case_id']}.json"
    before = json.loads(record.read_text())
    shutil.move(str(out / good["case_id"]), str(out / ".partial" / good["case_id"]))
    (out / ".partial" / good["case_id"] / f"{good['case_id']}.json").unlink()
    capsys.readouterr()
    assert main(args) == 1
    assert json.loads(record.read_text())["lesions"] == before["lesions"]  # redone, same result
    assert not (out / ".partial" / good["case_id"]).exists()
    mtime = record.stat().st_mtime_ns
    assert main(args) == 1  # complete cases are skipped
    assert record.stat().st_mtime_ns == mtime
    assert "complete, skipped" in capsys.readouterr().err


def test_bundle_without_weights_says_how_to_train(tmp_path, grading_cohorts):
    for name in DISEASES["cpa"]:
        shutil.copytree(BUNDLES / name / "configs", tmp_path / "bundles" / name / "configs")
    with pytest.raises(FileNotFoundError, match=r"has no trained weights(.|\n)*mednet demo"):
        predict_cohort(grading_cohorts["cpa_mri_classification"], "cpa", tmp_path / "out", bundles=tmp_path / "bundles")
