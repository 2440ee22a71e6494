"""``mednet train``: one patient-level split for both stages, resume, determinism, grade sources, run_models."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from mednet.cli.main import main
from mednet.errors import DatalistError, OutputExistsError
from mednet.io.splits import PARTITIONS, patient_of
from mednet.synthetic import generate_cohort
from mednet.training import TrainingRunError, parse_setting, prepare_split, read_grades, run_models
from tests.conftest import write_nifti

#: Seconds-long stages: one epoch of tiny patches, narrow networks, no worker processes.
TINY = [
    "localisation.roi_size=[32,32,16]", "localisation.pixdim=[4.0,4.0,3.0]", "localisation.num_samples=1",
    "localisation.num_workers=0", "localisation.network_def#channels=[4,8,16,32,64]",
    "grading.n_slices=4", "grading.slice_size=[16,16]", "grading.num_workers=0", "grading.batch_size=2",
    'grading.network_kwargs={"channels":[4,8],"hidden":8}', "grading.n_boot=50",
]  # fmt: skip


def _command(source, run, *extra) -> list[str]:
    sets = [x for s in TINY for x in ("--set", s)]
    return ["train", "--disease", "cpa", "--input", str(source), "--out", str(run), "--epochs", "1",
            "--ratios", "0.6", "0.2", "0.2", *sets, *extra]  # both classes in validation and testing  # fmt: skip


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Ten ``small`` CPA patients (both classes) with their manifest."""
    root = tmp_path_factory.mktemp("cpa_cohort")
    generate_cohort("cpa", 10, root, size="small", seed=4, workers=1, balance={"AN": 1, "MG": 1})
    return root


def _state(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _same_weights(a, b) -> bool:
    a, b = _state(a), _state(b)
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.bundle
def test_train_end_to_end_resume_and_determinism(cohort, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_command(cohort / "manifest.csv", run)) == 0
    printed = capsys.readouterr()
    for path in ("datalist.json", "training.json", "localisation.log", "grading.log", "localisation/models/model.pt",
                 "grading/models/model.pt", "localisation/test/metrics.json", "grading/test/metrics.json"):  # fmt: skip
        assert (run / path).is_file(), path
    for stage in ("localisation", "grading"):
        assert list((run / stage / "train_log").glob("events.out.tfevents.*")), stage  # TensorBoard curves
        assert f"{stage}: 100%" in printed.err and "epoch=1/1" in printed.err  # the tqdm bar, on stderr
    assert "INFO" not in printed.out and "epoch 1/1, loss " in (run / "localisation.log").read_text()

    # one patient-level split, saved, the same for both stages
    record = json.loads((run / "training.json").read_text())
    datalist = json.loads((run / "datalist.json").read_text())
    ids = {name: [c["case_id"] for c in datalist[name]] for name in PARTITIONS}
    assert record["split"]["partitions"] == ids and all(ids.values())
    patients = [{patient_of(c) for c in datalist[name]} for name in PARTITIONS]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    with (cohort / "manifest.csv").open() as stream:
        assert sorted(c for v in ids.values() for c in v) == sorted(r["case_id"] for r in csv.DictReader(stream))
    done = {s: json.loads((run / s / "done.json").read_text()) for s in ("localisation", "grading")}
    assert done["localisation"]["settings"]["data_sha256"] == done["grading"]["settings"]["data_sha256"]

    # the record: source, settings, versions, per-stage seconds and test figures
    assert record["kind"] == "mednet train" and record["disease"] == "cpa"
    assert record["source"]["kind"] == "manifest" and record["source"]["cases"] == 10
    assert set(record["versions"]) >= {"mednet", "torch", "monai"} and record["versions"]["torch"] == torch.__version__
    assert record["settings"]["epochs"] == {"localisation": 1, "grading": 1} and record["settings"]["seed"] == 0
    assert record["settings"]["overrides"]["localisation"]["lr_anneal"] == "cosine"  # the reference recipe's
    for stage, bundle in (("localisation", "cpa_mri_segmentation"), ("grading", "cpa_mri_classification")):
        entry = record["stages"][stage]
        assert entry["bundle"] == bundle and not entry["skipped"] and entry["train_seconds"] >= 0
        assert entry["test_metrics"]["patients"] == len(ids["testing"]) and len(entry["test_metrics"]) > 1
    assert record["stages"]["grading"]["inference_overrides"] == {
        "n_slices": 4,
        "slice_size": [16, 16],
        "batch_size": 2,
        "network_kwargs": {"channels": [4, 8], "hidden": 8},
    }
    assert "lr_anneal" not in record["stages"]["localisation"]["inference_overrides"]
    assert "lesion Dice" in record["stages"]["localisation"]["test_metrics"]
    assert record["seconds"] > 0
    assert run_models(run) == {"cpa_mri_segmentation": run / "localisation" / "models" / "model.pt",
                               "cpa_mri_classification": run / "grading" / "models" / "model.pt"}  # fmt: skip

    # the weights load into the bundles' predictors with the settings the record says predicting needs
    from mednet.inference import GradingPredictor, LocalisationPredictor
    from mednet.pipeline.diseases import disease_spec

    spec, models = disease_spec("cpa"), run_models(run)
    for predictor, bundle in ((LocalisationPredictor, spec.localisation), (GradingPredictor, spec.grading)):
        stage = "localisation" if predictor is LocalisationPredictor else "grading"
        loaded = predictor(bundle, "cpu", models[bundle.name], **record["stages"][stage]["inference_overrides"])
        assert loaded.weights == models[bundle.name]

    # mednet predict --models RUN: the run's weights, with the settings they need, on its testing patients
    out = tmp_path / "predicted"
    assert main(["predict", "--disease", "cpa", "-i", str(run / "datalist.json"), "-o", str(out),
                 "--models", str(run), "--device", "cpu", "-q"]) == 0  # fmt: skip
    capsys.readouterr()
    for case in ids["testing"]:
        used = json.loads((out / case / f"{case}.json").read_text())["weights"]
        assert used == {b: hashlib.sha256(w.read_bytes()).hexdigest() for b, w in models.items()}
    assert main(["predict", "--disease", "glioma", "-i", str(run / "datalist.json"), "-o", str(tmp_path / "x"),
                 "--models", str(run)]) == 2  # fmt: skip
    assert "a cpa training run, not glioma" in capsys.readouterr().err

    # the same command again: both stages skipped, the weights untouched
    stamps = {s: (run / s / "models" / "model.pt").stat().st_mtime_ns for s in ("localisation", "grading")}
    assert main(_command(cohort / "manifest.csv", run)) == 0
    out = capsys.readouterr().out
    assert out.count("trained earlier with the same settings and data: skipped") == 2
    assert {s: (run / s / "models" / "model.pt").stat().st_mtime_ns for s in stamps} == stamps
    assert all(e["skipped"] for e in json.loads((run / "training.json").read_text())["stages"].values())

    # a grading setting changed: only the grading stage trains again
    assert main([*_command(cohort / "manifest.csv", run), "--set", "grading.learning_rate=0.01"]) == 0
    out = capsys.readouterr().out
    assert "localisation: trained earlier" in out and "grading: training cpa_mri_classification" in out
    assert (run / "localisation" / "models" / "model.pt").stat().st_mtime_ns == stamps["localisation"]

    # the same command into a fresh folder: the same split and the same weights
    again = tmp_path / "again"
    assert main(_command(cohort / "manifest.csv", again)) == 0
    assert json.loads((again / "training.json").read_text())["split"]["partitions"] == ids
    assert _same_weights(again / "localisation/models/model.pt", run / "localisation/models/model.pt")
    first = tmp_path / "first_grading.pt"
    assert main(_command(cohort / "manifest.csv", run)) == 0  # the original grading settings: retrained
    shutil.copy(run / "grading/models/model.pt", first)
    assert _same_weights(again / "grading/models/model.pt", first)


def _brats(root, cases: dict[str, str | None], skip: tuple[str, ...] = ()) -> None:
    """BraTS 2019 layout: ``root/<HGG|LGG>/<case>/<case>_<seq>.nii.gz`` (class None: no class folder)."""
    volume = np.zeros((6, 6, 4), np.float32)
    for case, grade in cases.items():
        folder = root / grade / case if grade else root / case
        for seq in ("t1", "t1ce", "t2", "flair", "seg"):
            if (case, seq) not in skip:
                write_nifti(folder / f"{case}_{seq}.nii.gz", volume)


def test_brats_folders_give_the_classes_and_a_seeded_patient_split(tmp_path):
    cases = {f"BraTS19_{i:03d}": ("HGG" if i % 2 else "LGG") for i in range(12)}
    _brats(tmp_path, cases)
    datalist = prepare_split("glioma", tmp_path, seed=1)
    every = [c for name in PARTITIONS for c in datalist[name]]
    assert {c["case_id"]: c["class"] for c in every} == cases
    assert all({"t1", "t1c", "t2", "flair", "label"} <= set(c) for c in every)
    patients = [{patient_of(c) for c in datalist[name]} for name in PARTITIONS]
    assert all(patients) and not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    assert prepare_split("glioma", tmp_path, seed=1) == datalist  # seeded: the same split
    others = [prepare_split("glioma", tmp_path, seed=s)["testing"] for s in range(2, 6)]
    assert any(o != datalist["testing"] for o in others)


def test_missing_grades_and_label_maps_are_named(tmp_path, capsys):
    _brats(tmp_path, {"A1": "HGG", "A2": "LGG", "A3": None, "A4": "HGG"}, skip=(("A4", "seg"),))
    with pytest.raises(DatalistError) as error:
        prepare_split("glioma", tmp_path)
    message = str(error.value)
    assert "1 case(s) without a grade" in message and "A3" in message.split("without a grade")[1].split("\n")[0]
    assert "--grades" in message and "DIR/HGG/<case>/" in message
    assert "1 case(s) without a label map" in message and ": A4" in message
    # the CLI: one line of error, exit code 2, before any training
    run = tmp_path / "run"
    assert main(["train", "--disease", "glioma", "--input", str(tmp_path), "--out", str(run)]) == 2
    assert "mednet train: error:" in capsys.readouterr().err and not run.exists()


def test_grades_from_a_csv(tmp_path):
    _brats(tmp_path / "data", {f"P{i}": None for i in range(8)})
    grades = tmp_path / "grades.csv"
    grades.write_text("case_id,class\n" + "".join(f"P{i},{'hgg' if i < 4 else 'LGG'}\n" for i in range(8)) + "Q9,HGG\n")
    datalist = prepare_split("glioma", tmp_path / "data", grades=grades)
    every = {c["case_id"]: c["class"] for name in PARTITIONS for c in datalist[name]}
    assert every == {f"P{i}": "HGG" if i < 4 else "LGG" for i in range(8)}  # spelled as the bundle does
    assert any("Q9" in note for note in datalist["notes"]) and datalist["source"]["grades"] == str(grades)

    grades.write_text("case_id,class\nP0,HGG\nP1,GBM\n")
    with pytest.raises(DatalistError) as error:
        prepare_split("glioma", tmp_path / "data", grades=grades)
    message = str(error.value)
    assert "6 case(s) without a grade" in message and "P2, P3, P4, P5, P6, P7" in message
    assert "1 case(s) with a class the glioma_mri_classification bundle does not know (expected LGG, HGG): P1 (GBM)" \
        in message  # fmt: skip


def test_grades_csv_errors(tmp_path):
    with pytest.raises(DatalistError, match=r"grades\.csv: file not found"):
        read_grades(tmp_path / "grades.csv")
    (tmp_path / "grades.csv").write_text("subject,result\nA,HGG\n")
    with pytest.raises(DatalistError, match=r"expected a case id column \(case_id, case\) and a class column "
                                            r"\(class, grade\), found subject, result"):  # fmt: skip
        read_grades(tmp_path / "grades.csv")
    (tmp_path / "grades.csv").write_text("case_id,grade\nA,HGG\nB,LGG\nA,LGG\n")
    with pytest.raises(DatalistError, match=r"grades.csv:4: case A given two classes, HGG and LGG"):
        read_grades(tmp_path / "grades.csv")
    (tmp_path / "grades.csv").write_text("case,grade\nA,HGG\nB, LGG \n")
    assert read_grades(tmp_path / "grades.csv") == {"A": "HGG", "B": "LGG"}


def test_a_datalist_keeps_its_split_unless_resplit(tmp_path):
    _brats(tmp_path / "data", {f"P{i}": ("HGG" if i % 2 else "LGG") for i in range(10)})
    given = prepare_split("glioma", tmp_path / "data", seed=7)
    (tmp_path / "given.json").write_text(json.dumps(given))
    kept = prepare_split("glioma", tmp_path / "given.json", seed=0)
    assert {n: [c["case_id"] for c in kept[n]] for n in PARTITIONS} == \
        {n: [c["case_id"] for c in given[n]] for n in PARTITIONS}  # fmt: skip
    assert kept["source"]["kind"] == "datalist"
    assert prepare_split("glioma", tmp_path / "given.json", seed=0, resplit=True)["split"]["seed"] == 0
    with pytest.raises(DatalistError, match="give no patient to validation"):
        prepare_split("glioma", tmp_path / "data", ratios=(1, 0, 0))


def test_run_models_errors(tmp_path):
    with pytest.raises(TrainingRunError, match="found nothing"):
        run_models(tmp_path / "nowhere")
    with pytest.raises(TrainingRunError, match=r"not a training run: no training.json"):
        run_models(tmp_path)
    (tmp_path / "training.json").write_text(json.dumps({"kind": "something else"}))
    with pytest.raises(TrainingRunError, match="not the record of a mednet train run"):
        run_models(tmp_path)
    record = {"kind": "mednet train", "disease": "cpa",
              "stages": {"localisation": {"bundle": "cpa_mri_segmentation"}}}  # fmt: skip
    (tmp_path / "training.json").write_text(json.dumps(record))
    with pytest.raises(TrainingRunError, match=r"weights .*localisation/models/model\.pt are missing"):
        run_models(tmp_path)
    (tmp_path / "localisation" / "models").mkdir(parents=True)
    torch.save({}, tmp_path / "localisation" / "models" / "model.pt")
    with pytest.raises(TrainingRunError, match=r"the grading stage of this cpa training run did not finish; run the "
                                               r"same mednet train command again to resume it"):  # fmt: skip
        run_models(tmp_path)


def test_out_must_be_a_training_run_or_new(tmp_path, cohort):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.tex").write_text("x")
    from mednet.training import train_run

    with pytest.raises(OutputExistsError, match="not a mednet training run"):
        train_run("cpa", cohort / "manifest.csv", tmp_path / "busy", epochs=1)
    with pytest.raises(DatalistError, match="--epochs: expected a whole number >= 1, found 0"):
        train_run("cpa", cohort / "manifest.csv", tmp_path / "new", epochs=0)


def test_parse_setting():
    assert parse_setting("localisation.roi_size=[64,64,32]") == ("localisation", "roi_size", [64, 64, 32])
    assert parse_setting("Grading.lr_anneal=cosine") == ("grading", "lr_anneal", "cosine")
    with pytest.raises(DatalistError, match=r"expected STAGE\.KEY=VALUE"):
        parse_setting("roi_size=3")
    with pytest.raises(DatalistError, match="give the run's length with --epochs"):
        parse_setting("grading.max_epochs=3")
    with pytest.raises(DatalistError, match="did you mean 'grading'"):
        parse_setting("gradin.batch_size=3")


def test_a_setting_the_bundle_does_not_have_is_refused(tmp_path, cohort):
    from mednet.training import train_run

    with pytest.raises(DatalistError, match=r"--set localisation\.roi_sise: cpa_mri_segmentation has no config entry "
                                            r"'roi_sise'; did you mean 'roi_size'\?"):  # fmt: skip
        train_run("cpa", cohort / "manifest.csv", tmp_path / "run", overrides={"localisation": {"roi_sise": [8, 8, 8]}})
    assert not (tmp_path / "run").exists()
