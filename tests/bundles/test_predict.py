"""``mednet predict`` end to end on ``small`` synthetic cases, with briefly trained bundles.

The bundles' weights come from one tiny epoch (tests/bundles/conftest.py), so the
diagnoses are not meaningful; these tests check the pipeline: files present and on the
input's grid, complete JSON, resume, a bad case, the report, the exit code.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from matplotlib.image import imread as plt_imread

from mednet.cli.main import main
from mednet.pipeline import DISEASES, disease_spec, predict_cohort
from tests.bundles.helpers import BUNDLES
from tests.report.browser import chromium, render

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


@pytest.mark.parametrize(  # neuroblastoma's (the longest, 13 organs) in the slow run
    "disease", [pytest.param(d, marks=pytest.mark.slow) if d == "neuroblastoma" else d for d in sorted(DISEASES)]
)
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
        reference = nib.load(datalist.parent / case[spec.sequences[0]])
        labels = nib.load(folder / f"{case_id}_labels.nii.gz")
        assert labels.shape == reference.shape
        np.testing.assert_allclose(labels.affine, reference.affine, atol=1e-5)
        record = json.loads((folder / f"{case_id}.json").read_text())
        assert record["disease"] == disease and record["bundles"] == spec.versions
        assert all(row["colour"].startswith("#") for row in record["label_table"])  # not MONAI's "::" for "#"
        assert set(record["inputs"]) == set(spec.sequences) and record["timings"]["localise_s"] >= 0
        first = record["inputs"][spec.sequences[0]]  # what was read, fingerprinted, with what read it
        assert record["inputs_sha256"][spec.sequences[0]]["sha256"] == hashlib.sha256(Path(first).read_bytes()).hexdigest()
        assert set(spec.sequences) <= set(record["inputs_sha256"]) and record["timings"]["checksum_s"] < 1
        assert record["provenance"]["torch"] and record["provenance"]["time"][-6] in "+-"
        assert record["sequences_used"]["localisation"] == list(spec.localisation.sequences)
        assert record["missing_sequences"] == [] and record["reference_sequence"] == spec.sequences[0]
        gradable = [lesion for lesion in record["lesions"] if lesion["label"] in spec.grading.lesion_values]
        if not gradable:  # the tiny localisation model found no lesion
            assert "no lesion" in record["note"] and record["sequences"] == {} and record["fused_class"] is None
        else:
            assert record["fused_class"] in spec.classes
            assert sum(record["fused"].values()) == pytest.approx(1.0, abs=1e-5)
            assert set(record["sequences"]) <= set(spec.branches) and record["fusion"]["method"]
            if disease == "cpa":
                assert record["fusion"]["method"] == "dl_mdt" and record["clinicians"] == case["clinicians"]
    assert not list((out / ".partial").iterdir())
    rows = _rows(out / "summary.csv")
    assert [r["case_id"] for r in rows] == [c["case_id"] for c in testing]
    page = (out / "report.html").read_text()
    assert page.count('<img class="thumb"') == len(testing) and "Research use only" in page
    assert "<h2>Provenance</h2>" in page and all(f"id='case-{c['case_id']}'" in page for c in testing)


@pytest.fixture(scope="module")
def lesion_everywhere(trained_bundles, tmp_path_factory):
    """The trained bundles with each localisation network's last bias set so that every voxel is a lesion."""
    import torch

    root = tmp_path_factory.mktemp("lesion_everywhere")
    shutil.copytree(trained_bundles, root, dirs_exist_ok=True)
    for disease in DISEASES:
        spec = disease_spec(disease, root)
        weights = spec.localisation.weights
        state = torch.load(weights, map_location="cpu", weights_only=True)
        last = [k for k in state if k.endswith(".conv.bias")][-1]
        bias = torch.full_like(state[last], -50.0)
        bias[spec.grading.lesion_values[0]] = 50.0
        state[last] = bias
        torch.save(state, weights)
    return root


@pytest.mark.parametrize("disease", sorted(DISEASES))
def test_predict_grades_and_fuses_a_found_lesion(disease, lesion_everywhere, grading_cohorts, tmp_path):
    datalist = grading_cohorts[DISEASES[disease][1]]
    out = tmp_path / "out"
    result = predict_cohort(datalist, disease, out, bundles=lesion_everywhere, progress=lambda line: None)
    assert result["failed"] == 0
    spec = disease_spec(disease, lesion_everywhere)
    for case in json.loads(datalist.read_text())["testing"]:
        record = json.loads((out / case["case_id"] / f"{case['case_id']}.json").read_text())
        assert any(lesion["label"] == spec.grading.lesion_values[0] for lesion in record["lesions"])
        assert record["note"] == "" and record["fused_class"] in spec.classes and record["slices"] > 0
        assert set(record["sequences"]) == set(spec.branches)
        for probabilities in record["sequences"].values():
            assert set(probabilities) == set(spec.classes) and sum(probabilities.values()) == pytest.approx(1, abs=1e-5)
        assert max(record["fused"], key=record["fused"].get) == record["fused_class"] or disease == "cpa"
        assert record["timings"]["grade_and_fuse_s"] > 0
        assert any(f.startswith("lesions take ") and "of the body volume" in f for f in record["flags"])  # all lesion
        assert (out / case["case_id"] / f"{case['case_id']}_grading_slices.csv").is_file()
        if disease == "cpa":  # DL-MDT with both clinicians' readings, weights 0.25 each
            assert record["fusion"]["method"] == "dl_mdt" and not record["fusion"]["renormalised"]
            assert record["clinicians"] == case["clinicians"]
    rows = _rows(out / "summary.csv")
    assert all(r["fused_class"] in spec.classes for r in rows)
    assert all("lesions take " in r["flags"] for r in rows)  # the plausibility flags reach the summary
    assert (out / "metrics.json").is_file() and "grading" in json.loads((out / "metrics.json").read_text())


def test_predict_into_a_relative_folder(lesion_everywhere, grading_cohorts, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # as `mednet demo` and `mednet predict --out out` run from a shell
    datalist = grading_cohorts[DISEASES["cpa"][1]]
    result = predict_cohort(datalist, "cpa", "out", bundles=lesion_everywhere, progress=lambda line: None)
    assert result["failed"] == 0 and result["report"] == tmp_path / "out" / "report.html"
    assert all(r["fused_class"] in ("AN", "MG") for r in _rows(tmp_path / "out" / "summary.csv"))


def test_resume_bad_case_and_exit_code(trained_bundles, grading_cohorts, tmp_path, capsys):
    source = grading_cohorts["glioma_mri_classification"]
    doc = json.loads(source.read_text())
    good = doc["testing"][0]
    bad = {**good, "case_id": "BAD_1", "patient_id": "BAD_1", "flair": "no_such_flair.nii.gz"}
    doc["testing"] = [good, bad]
    datalist = source.parent / "with_bad_case.json"
    datalist.write_text(json.dumps(doc))
    out = tmp_path / "out"
    args = ["predict", "--disease", "glioma", "--input", str(datalist), "--out", str(out),
            "--bundles", str(trained_bundles)]  # fmt: skip
    assert main(args) == 1  # one case failed
    rows = {r["case_id"]: r for r in _rows(out / "summary.csv")}
    assert rows[good["case_id"]]["status"] == "ok"
    assert rows["BAD_1"]["status"] == "failed" and "no_such_flair.nii.gz: file not found" in rows["BAD_1"]["error"]
    assert not (out / "BAD_1").exists() and not (out / ".partial" / "BAD_1").exists()
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


def test_a_case_made_with_another_bundle_version_or_settings_is_predicted_again(trained_bundles, grading_cohorts,
                                                                                tmp_path):  # fmt: skip
    """Same weights, other post-processing: a resumed run does not mix the release before with this one."""
    source = grading_cohorts["glioma_mri_classification"]
    doc = json.loads(source.read_text())
    doc["testing"] = doc["testing"][:2]
    case_id, other = (case["case_id"] for case in doc["testing"])
    datalist = source.parent / "two_cases.json"
    datalist.write_text(json.dumps(doc))
    bundles = tmp_path / "bundles"
    shutil.copytree(trained_bundles, bundles)
    out, lines = tmp_path / "out", []

    record = out / case_id / f"{case_id}.json"

    def predict(settings=None, shard=(1, 1)) -> tuple[dict, int]:
        lines.clear()
        predict_cohort(datalist, "glioma", out, bundles=bundles, device="cpu", settings=settings, shard=shard,
                       progress=lines.append)  # fmt: skip
        return json.loads(record.read_text()), record.stat().st_mtime_ns

    first, made = predict()
    assert first["settings"] == {} and first["bundles"]["glioma_mri_segmentation"]
    assert predict()[1] == made and any("complete, skipped" in line for line in lines)
    strict = {"glioma_mri_segmentation": {"lesion_threshold": 0.99}}
    redone, made = predict(strict)  # other settings: predicted again, and recorded
    assert any("other weights, bundle versions or settings: predicted again" in line for line in lines)
    assert redone["settings"] == strict and redone["weights"] == first["weights"]
    assert predict(strict)[1] == made  # the same settings again: skipped
    metadata = bundles / "glioma_mri_classification" / "configs" / "metadata.json"
    meta = json.loads(metadata.read_text())
    metadata.write_text(json.dumps({**meta, "version": meta["version"] + "-next"}))  # a release: same weights
    released, _ = predict(strict, shard=(1, 2))  # only the first case: the other one stays as 0.x made it
    assert any("predicted again" in line for line in lines)
    assert released["bundles"]["glioma_mri_classification"].endswith("-next")
    assert json.loads((out / other / f"{other}.json").read_text())["bundles"] == redone["bundles"]
    assert "2 different sets of weights, bundle versions or settings" in (out / "report.html").read_text()


def test_a_case_lacking_sequences_is_localised_and_graded_with_the_others(lesion_everywhere, grading_cohorts, tmp_path):
    """BRATS 2013 gives T1c and FLAIR only: the glioma pipeline localises from those and grades with FLAIR."""
    source = grading_cohorts["glioma_mri_classification"]
    case = {k: v for k, v in json.loads(source.read_text())["testing"][0].items() if k not in ("t1", "t2")}
    datalist = source.parent / "t1c_flair_only.json"
    datalist.write_text(json.dumps({"testing": [case]}))
    result = predict_cohort(datalist, "glioma", tmp_path / "out", bundles=lesion_everywhere, progress=lambda line: None)
    assert result["failed"] == 0
    record = json.loads((tmp_path / "out" / case["case_id"] / f"{case['case_id']}.json").read_text())
    assert record["reference_sequence"] == "t1c" and record["missing_sequences"] == ["t1", "t2"]
    assert record["sequences_used"] == {"localisation": ["t1c", "flair"], "grading": ["flair"]}
    assert set(record["sequences"]) == {"flair"} and record["fused_class"] in ("LGG", "HGG")
    assert "missing sequence(s): t1, t2" in record["note"]
    labels = nib.load(tmp_path / "out" / case["case_id"] / f"{case['case_id']}_labels.nii.gz")
    reference = nib.load(source.parent / case["t1c"])
    assert labels.shape == reference.shape and np.allclose(labels.affine, reference.affine, atol=1e-5)


def test_bundle_without_weights_says_how_to_train(tmp_path, grading_cohorts):
    for name in DISEASES["cpa"]:
        shutil.copytree(BUNDLES / name / "configs", tmp_path / "bundles" / name / "configs")
    with pytest.raises(FileNotFoundError, match=r"has no weights here(.|\n)*train_reference.py --disease <disease> --install"):
        predict_cohort(grading_cohorts["cpa_mri_classification"], "cpa", tmp_path / "out", bundles=tmp_path / "bundles")


def test_report_renders_in_headless_chromium(trained_bundles, grading_cohorts, tmp_path):
    executable = chromium()
    if executable is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    source = grading_cohorts["cpa_mri_classification"]
    doc = json.loads(source.read_text())
    good = doc["testing"]
    bad = {**good[0], "case_id": "BAD_2", "patient_id": "BAD_2", "t2": "missing_t2.nii.gz"}
    doc["testing"] = [*good, bad]
    datalist = source.parent / "for_the_browser.json"
    datalist.write_text(json.dumps(doc))
    result = predict_cohort(datalist, "cpa", tmp_path / "out", bundles=trained_bundles, progress=lambda line: None)
    assert result["failed"] == 1
    probe, screenshot = render(result["report"], tmp_path, executable)
    header, *rows = probe["rows"]
    assert header[:3] == ["case", "status", "diagnosis"] and "overview" in header
    assert [r[0] for r in rows] == [c["case_id"] for c in good] + ["BAD_2"]
    ok = [r for r in rows if r[1] == "ok"]
    # a call the fusion is unsure of reads "indeterminate", with the class it leans to
    assert len(ok) == len(good) and all(r[2].split("\n")[0] in {"AN", "MG", "indeterminate"} for r in ok)
    assert rows[-1][1].startswith("failed") and "missing_t2.nii.gz: file not found" in rows[-1][1]
    # every case's overview and the metrics' figures decoded and laid out (a broken data URI has naturalWidth 0)
    figures = len(list((tmp_path / "out" / "metrics").glob("*.png")))
    assert probe["images"] == probe["decoded"] == probe["shown"] == len(good) + figures
    assert probe["table_height"] > 150 * len(good)
    assert any(h.startswith("Metrics") for h in probe["headings"])
    pixels = plt_imread(screenshot)
    assert pixels.shape[0] >= 900 and pixels[..., :3].std() > 0.05  # not a blank page


def test_output_problems_are_refused_before_any_work(trained_bundles, grading_cohorts, tmp_path, capsys):
    datalist = grading_cohorts["cpa_mri_classification"]
    a_file = tmp_path / "out.txt"
    a_file.write_text("not a folder")
    with pytest.raises(ValueError, match=r"out.txt: the output path is a file, not a folder"):
        predict_cohort(datalist, "cpa", a_file, bundles=trained_bundles, progress=lambda line: None)
    below = a_file / "sub"
    args = ["predict", "--disease", "cpa", "--input", str(datalist), "--out", str(below), "--bundles",
            str(trained_bundles)]  # fmt: skip
    assert main(args) == 2
    assert f"{below}: cannot write the outputs here" in capsys.readouterr().err
    assert a_file.read_text() == "not a folder"


def test_a_read_only_output_folder_is_refused_before_any_work(grading_cohorts, tmp_path, capsys):
    """An output folder that cannot be written stops the run at start, not after the work (as it once did)."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
    elif Path("/sys/kernel").is_dir():  # root writes through file modes: a folder of a read-only file system
        folder = Path("/sys/kernel")
    else:
        pytest.skip("running as root without /sys: no read-only folder to try")
    before = sorted(p.name for p in folder.iterdir())
    args = ["predict", "--disease", "cpa", "--input", str(grading_cohorts["cpa_mri_classification"]),
            "--out", str(folder)]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{folder}: cannot write the outputs here (Permission denied); choose another --out" in err, err
    assert "Traceback" not in err and sorted(p.name for p in folder.iterdir()) == before


@pytest.mark.parametrize(
    ("ids", "said"),
    [
        (["../escaped", "fine"], "'../escaped': it holds a path separator"),
        (["/tmp/abs", "fine"], "'/tmp/abs': it holds a path separator"),
        ([".partial", "fine"], "'.partial': it starts with a dot"),
        (["summary.csv", "fine"], "'summary.csv': summary.csv is the name of one of mednet's own files"),
        (["metrics", "fine"], "'metrics': metrics is the name of one of mednet's own files"),
        (["P1", "p1"], "case ids used by more than one case (letter case ignored, as some file systems do): P1 / p1"),
        (["P1", "P1"], "P1 (2 cases)"),
    ],
)
def test_case_ids_that_cannot_each_name_their_own_folder_are_refused_before_any_work(ids, said, grading_cohorts,
                                                                                      tmp_path, capsys):  # fmt: skip
    """Outputs go to OUT/<case id>/: ids that would write elsewhere, over mednet's files or over each other."""
    datalist = grading_cohorts["cpa_mri_classification"]
    doc = json.loads(datalist.read_text())
    cases = [{k: (str(datalist.parent / v) if k in ("t1c", "t2", "label") else v) for k, v in c.items()}
             for c in doc["testing"] + doc["validation"]][: len(ids)]  # fmt: skip
    for case, case_id in zip(cases, ids, strict=True):
        case.update(case_id=case_id, patient_id=f"patient {case_id}")
    crafted = tmp_path / "in" / "datalist.json"
    crafted.parent.mkdir()
    crafted.write_text(json.dumps({"training": [], "validation": [], "testing": cases}))
    out = tmp_path / "in" / "out"
    assert main(["predict", "--disease", "cpa", "--input", str(crafted), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{crafted}: case ids" in err and said in err
    assert not out.exists() and sorted(p.name for p in (tmp_path / "in").iterdir()) == ["datalist.json"]


def test_interrupted_run_summarises_the_cases_done(trained_bundles, grading_cohorts, tmp_path, monkeypatch):
    """SIGTERM (or Ctrl-C) mid-cohort: the summary and the report hold the cases done; a re-run finishes."""
    import os
    import signal

    import mednet.pipeline.cohort as cohort

    datalist = grading_cohorts["glioma_mri_classification"]
    cases = json.loads(datalist.read_text())["testing"]
    real = cohort.predict_case
    calls = []

    def terminated_on_the_second_case(case, *args, **kwargs):
        calls.append(case["case_id"])
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # what a scheduler sends to stop a job
        return real(case, *args, **kwargs)

    monkeypatch.setattr(cohort, "predict_case", terminated_on_the_second_case)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "out"
    result = predict_cohort(datalist, "glioma", out, bundles=trained_bundles, progress=lambda line: None)
    assert result["interrupted"].startswith(f"interrupted after 1 of {len(cases)} cases")
    assert [r["case_id"] for r in _rows(out / "summary.csv")] == [cases[0]["case_id"]]
    assert "interrupted after 1 of" in (out / "report.html").read_text()
    assert not (out / cases[1]["case_id"]).exists()  # the case in progress left nothing among the results
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back
    monkeypatch.setattr(cohort, "predict_case", real)
    again = predict_cohort(datalist, "glioma", out, bundles=trained_bundles, progress=lambda line: None)
    assert again["interrupted"] is None and again["skipped"] == 1 and again["ok"] == len(cases)


def test_corrupt_nan_and_nrrd_inputs_through_predict(trained_bundles, grading_cohorts, tmp_path):
    """Bad files are refused by name with mednet.io's message and leave nothing; a NRRD case works."""
    import SimpleITK as sitk

    source = grading_cohorts["cpa_mri_classification"]
    doc = json.loads(source.read_text())
    good = {k: (str(source.parent / v) if k in ("t1c", "t2", "label") else v) for k, v in doc["testing"][0].items()}
    nan_file, cut_file, nrrd_file = tmp_path / "nan_t2.nii.gz", tmp_path / "cut_t2.nii.gz", tmp_path / "case_t2.nrrd"
    image = nib.load(good["t2"])
    data = np.asarray(image.dataobj).astype(np.float32)
    data[data.shape[0] // 2, data.shape[1] // 2, data.shape[2] // 2] = np.nan
    nib.save(nib.Nifti1Image(data, image.affine), nan_file)  # float32 on disk: the NaN stays
    cut_file.write_bytes(Path(good["t2"]).read_bytes()[:-40])  # an interrupted copy
    sitk.WriteImage(sitk.ReadImage(good["t2"]), str(nrrd_file))
    cases = [{**good, "case_id": "NAN_1", "patient_id": "NAN_1", "t2": str(nan_file)},
             {**good, "case_id": "CUT_1", "patient_id": "CUT_1", "t2": str(cut_file)},
             {**good, "case_id": "NRRD_1", "patient_id": "NRRD_1", "t2": str(nrrd_file)}]  # fmt: skip
    datalist = tmp_path / "bad.json"
    datalist.write_text(json.dumps({"testing": cases}))
    out = tmp_path / "out"
    result = predict_cohort(datalist, "cpa", out, bundles=trained_bundles, progress=lambda line: None)
    rows = {r["case_id"]: r for r in _rows(out / "summary.csv")}
    assert result["failed"] == 2 and rows["NRRD_1"]["status"] == "ok", rows
    assert rows["NAN_1"]["error"].startswith(f"{nan_file}: ") and "NaN" in rows["NAN_1"]["error"]
    assert rows["CUT_1"]["error"].startswith(f"{cut_file}: truncated gzip stream")
    for bad in ("NAN_1", "CUT_1"):
        assert not (out / bad).exists() and not (out / ".partial" / bad).exists()
    reference = nib.load(good["t1c"])
    labels = nib.load(out / "NRRD_1" / "NRRD_1_labels.nii.gz")
    assert labels.shape == reference.shape and np.allclose(labels.affine, reference.affine, atol=1e-4)


def test_a_case_whose_field_of_view_search_would_not_fit_in_memory_fails_by_name(trained_bundles, grading_cohorts,
                                                                                   tmp_path, monkeypatch):  # fmt: skip
    """The bundle's FieldOfViewFilld refuses before allocating; the message is mednet's, not MONAI's wrapper."""
    source = grading_cohorts["cpa_mri_classification"]
    case = json.loads(source.read_text())["testing"][0]
    entry = {k: (str(source.parent / v) if k in ("t1c", "t2", "label") else v) for k, v in case.items()}
    banded = dict(entry, case_id="BAND_1", patient_id="BAND_1")
    for key in ("t1c", "t2"):  # a band of zeros along one edge in both sequences: beyond the field of view
        image = nib.load(entry[key])
        data = np.asarray(image.dataobj).astype(np.float32)
        data[: data.shape[0] // 5] = 0.0
        banded[key] = str(tmp_path / f"band_{key}.nii.gz")
        nib.save(nib.Nifti1Image(data, image.affine), banded[key])
    datalist = tmp_path / "two.json"
    datalist.write_text(json.dumps({"testing": [entry, banded]}))
    monkeypatch.setenv("MEDNET_MAX_IMAGE_GB", "0.02")  # reading fits, a field-of-view search does not
    out = tmp_path / "out"
    result = predict_cohort(datalist, "cpa", out, bundles=trained_bundles, progress=lambda line: None)
    rows = {r["case_id"]: r for r in _rows(out / "summary.csv")}
    assert rows[case["case_id"]]["status"] == "ok"  # no zeros at its border: nothing to search, nothing refused
    error = rows["BAND_1"]["error"]
    assert result["failed"] == 1 and error.startswith(f"{banded['t1c']}: too large for the memory available: "), error
    assert "to find and fill the zeros beyond its field of view, 20 MB are available" in error
    assert not (out / "BAND_1").exists() and not (out / ".partial" / "BAND_1").exists()


def test_sigkill_mid_run_then_the_same_command_completes_the_rest(trained_bundles, grading_cohorts, tmp_path):
    """A run killed without warning (SIGKILL) leaves complete cases and no half case among them."""
    import os
    import subprocess
    import sys
    import time

    datalist = grading_cohorts["glioma_mri_classification"]
    cases = [c["case_id"] for c in json.loads(datalist.read_text())["testing"]]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "mednet", "predict", "--disease", "glioma", "--input", str(datalist), "--out",
               str(out), "--bundles", str(trained_bundles), "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (out / cases[0] / f"{cases[0]}.json").is_file():
        time.sleep(0.2)
    process.kill()  # SIGKILL: no handler runs
    process.wait()
    assert (out / cases[0] / f"{cases[0]}.json").is_file() and not (out / "summary.csv").exists()
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{cases[0]}: complete, skipped" in again.stderr
    rows = _rows(out / "summary.csv")
    assert [r["case_id"] for r in rows] == cases and all(r["status"] == "ok" for r in rows)
    assert not list((out / ".partial").iterdir())


def test_two_shards_then_report_give_exactly_one_runs_summary(trained_bundles, grading_cohorts, tmp_path, capsys):
    """``--shard 1/2`` and ``--shard 2/2`` into one folder: the summary and metrics of a single run."""
    datalist = grading_cohorts["glioma_mri_classification"]
    cases = [c["case_id"] for c in json.loads(datalist.read_text())["testing"]]
    one, sharded = tmp_path / "one", tmp_path / "sharded"
    assert predict_cohort(datalist, "glioma", one, bundles=trained_bundles, progress=lambda line: None)["failed"] == 0
    args = ["predict", "--disease", "glioma", "--input", str(datalist), "--bundles", str(trained_bundles)]
    assert main([*args, "--out", str(sharded), "--shard", "2/2"]) == 0
    first = capsys.readouterr().out
    assert f"{len(cases[1::2])} of {len(cases[1::2])} cases of shard 2/2 done" in first
    assert f"{len(cases[0::2])} cases of the cohort are not done yet" in first
    assert [r["case_id"] for r in _rows(sharded / "summary.csv")] == cases[1::2]  # so far: shard 2's
    assert not (sharded / "metrics.json").exists()  # metrics only for the whole cohort
    assert main([*args, "--out", str(sharded), "--shard", "1/2"]) == 0  # the last shard writes the whole summary
    assert (sharded / "summary.csv").read_bytes() == (one / "summary.csv").read_bytes()
    headline = json.loads((one / "metrics.json").read_text())["headline"]
    assert json.loads((sharded / "metrics.json").read_text())["headline"] == headline
    (sharded / "summary.csv").unlink()
    (sharded / "metrics.json").unlink()
    assert main(["report", str(sharded)]) == 0  # whoever wrote the case folders
    assert (sharded / "summary.csv").read_bytes() == (one / "summary.csv").read_bytes()
    assert json.loads((sharded / "metrics.json").read_text())["headline"] == headline
    assert f"{len(cases)} cases: {len(cases)} done, 0 failed, 0 not done yet" in capsys.readouterr().out


def test_report_lists_failed_cases_and_shards_of_another_cohort_are_refused(
    trained_bundles, grading_cohorts, tmp_path, capsys
):
    """A failed case is a row with its error in the rebuilt summary; a shard of other cases is refused."""
    source = grading_cohorts["glioma_mri_classification"]
    doc = json.loads(source.read_text())
    good = {k: (str(source.parent / v) if isinstance(v, str) and (source.parent / v).is_file() else v)
            for k, v in doc["testing"][0].items()}  # fmt: skip
    missing = {**good, "case_id": "GONE_1", "patient_id": "GONE_1", "t1c": str(tmp_path / "absent.nii.gz"),
               "t1": str(tmp_path / "absent.nii.gz"), "t2": str(tmp_path / "absent.nii.gz"),
               "flair": str(tmp_path / "absent.nii.gz")}  # fmt: skip
    datalist = tmp_path / "cohort.json"
    datalist.write_text(json.dumps({"testing": [good, missing]}))
    out = tmp_path / "out"
    args = ["predict", "--disease", "glioma", "--input", str(datalist), "--out", str(out), "--bundles",
            str(trained_bundles)]  # fmt: skip
    assert main(args) == 1
    written = (out / "summary.csv").read_bytes()
    error = {r["case_id"]: r for r in _rows(out / "summary.csv")}["GONE_1"]["error"]
    assert "absent.nii.gz" in error, error
    (out / "summary.csv").unlink()
    assert main(["report", str(out)]) == 1  # a failed case: exit code 1, as predict's
    assert (out / "summary.csv").read_bytes() == written
    rows = {r["case_id"]: r for r in _rows(out / "summary.csv")}
    assert rows[good["case_id"]]["status"] == "ok" and rows["GONE_1"] == {**rows["GONE_1"], "status": "failed"}
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"testing": [good]}))
    capsys.readouterr()
    assert main(["predict", "--disease", "glioma", "--input", str(other), "--out", str(out), "--bundles",
                 str(trained_bundles), "--shard", "1/2"]) == 2  # fmt: skip
    assert "holds a run of other cases" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "not a `mednet predict` output folder" in capsys.readouterr().err


def test_files_written_behind_the_compute_are_the_same_and_a_failed_write_fails_its_case(
    trained_bundles, grading_cohorts, tmp_path, monkeypatch
):
    """Reading ahead and writing behind (the default) change no output; a case whose writing fails is failed, whole."""
    import mednet.pipeline.case as case_module

    datalist = grading_cohorts["glioma_mri_classification"]
    cases = [c["case_id"] for c in json.loads(datalist.read_text())["testing"]]
    assert len(cases) >= 2
    outs = {}
    for prefetch in (False, True):
        outs[prefetch] = tmp_path / f"out-{prefetch}"
        result = predict_cohort(datalist, "glioma", outs[prefetch], bundles=trained_bundles, prefetch=prefetch,
                                progress=lambda line: None)  # fmt: skip
        assert result["failed"] == 0 and result["ok"] == len(cases)
    assert (outs[False] / "summary.csv").read_bytes() == (outs[True] / "summary.csv").read_bytes()
    for case_id in cases:
        folder, other = outs[False] / case_id, outs[True] / case_id
        labels = [np.asarray(nib.load(f / f"{case_id}_labels.nii.gz").dataobj) for f in (folder, other)]
        assert np.array_equal(*labels)
        for name in (f"{case_id}_lesions.csv", f"{case_id}_overview.png"):
            assert (folder / name).read_bytes() == (other / name).read_bytes(), name
    # the first case's overview cannot be written: that case fails, the next is done, nothing half-written
    real = case_module.write_overview

    def broken_for_one_case(images, labels, table, values, title, out, **kwargs):
        if title.startswith(f"{cases[0]}:"):
            raise OSError(f"{out}: no space left on device")
        return real(images, labels, table, values, title, out, **kwargs)

    monkeypatch.setattr(case_module, "write_overview", broken_for_one_case)
    out = tmp_path / "broken"
    result = predict_cohort(datalist, "glioma", out, bundles=trained_bundles, progress=lambda line: None)
    assert result["failed"] == 1 and result["ok"] == len(cases) - 1
    assert [c["status"] for c in result["case_status"]] == ["failed"] + ["ok"] * (len(cases) - 1)
    assert "no space left on device" in result["case_status"][0]["error"]
    assert not (out / cases[0]).exists() and not list((out / ".partial").glob("*"))
    rows = {r["case_id"]: r for r in _rows(out / "summary.csv")}
    assert "no space left on device" in rows[cases[0]]["error"]
