"""``mednet predict``'s console conventions on tiny trained bundles: --json, the progress bar, --quiet,
Ctrl-C, a reused output folder, ``--partition all``, one image file.

The conventions that need no bundle (aliases, an absent device, refusals) are in
tests/cli/test_predict_options.py; the fixtures are tests/bundles/test_predict.py's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mednet.cli.main import main
from tests.bundles.test_predict import _rows, trained_bundles  # noqa: F401  (a fixture)

pytestmark = pytest.mark.bundle


def _absolute(case: dict, root) -> dict:
    return {k: (str(root / v) if isinstance(v, str) and (root / v).is_file() else v) for k, v in case.items()}


def test_json_progress_quiet_a_reused_folder_and_partition_all(trained_bundles, grading_cohorts, tmp_path, capsys):  # noqa: F811
    source = grading_cohorts["cpa_mri_classification"]
    testing = [_absolute(c, source.parent) for c in json.loads(source.read_text())["testing"]]
    ids = [c["case_id"] for c in testing]
    out = tmp_path / "out"
    base = ["predict", "--disease", "cpa", "--bundles", str(trained_bundles), "-o", str(out), "--device", "cpu"]
    # --json and --progress: a bar on stderr although it is not a terminal; stdout is one JSON object
    assert main([*base, "-i", str(source), "--json", "--progress"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["exit_code"] == 0 and doc["partition"] == "testing" and doc["device"] == "cpu"
    assert doc["counts"] == {"cases": len(ids), "ok": len(ids), "failed": 0, "skipped": 0, "pending": 0, "kept": 0}
    assert [c["case_id"] for c in doc["cases"]] == ids and {c["status"] for c in doc["cases"]} == {"ok"}
    assert all(c["folder"] == str(out / c["case_id"]) for c in doc["cases"])
    assert doc["paths"]["summary"] == str(out / "summary.csv") and doc["interrupted"] is None
    assert f"cpa: {len(ids)} cases from datalist {source}, partition testing; device cpu" in captured.err
    assert f"{len(ids)}/{len(ids)}" in captured.err and "100%" in captured.err  # tqdm's bar, to the end
    assert f"[1/{len(ids)}]" not in captured.err  # beside a bar, no line per case
    # the default when stderr is not a terminal: a line per case, no bar; the closing line on stdout
    assert main([*base, "-i", str(source)]) == 0
    captured = capsys.readouterr()
    assert f"[1/{len(ids)}] {ids[0]}: complete, skipped" in captured.err and "%|" not in captured.err
    assert captured.out.startswith(f"{len(ids)} of {len(ids)} cases done ({len(ids)} already complete), 0 failed")
    # --quiet: nothing at all when nothing failed
    assert main([*base, "-i", str(source), "-q"]) == 0
    assert capsys.readouterr() == ("", "")
    # another datalist into the same folder, all its partitions: the earlier case it lacks stays in the summary
    new = {**testing[0], "case_id": "NEW_1", "patient_id": "NEW_1"}
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"training": [new], "testing": [testing[1]]}))
    assert main([*base, "-i", str(other), "--partition", "all", "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert [(c["case_id"], c["status"]) for c in doc["cases"]] == [("NEW_1", "ok"), (ids[1], "skipped")]
    assert doc["partition"] == "all" and doc["counts"]["kept"] == 1
    assert f"cpa: 2 cases from datalist {other}, partition all" in captured.err
    assert f"{out}: keeps 1 complete case(s) of earlier runs in the summary (3 cases in all)" in captured.err
    rows = _rows(out / "summary.csv")
    assert [r["case_id"] for r in rows] == [ids[0], "NEW_1", ids[1]] and {r["status"] for r in rows} == {"ok"}
    assert json.loads((out / "run.json").read_text())["case_ids"] == [ids[0], "NEW_1", ids[1]]
    # another disease into this folder: refused, the summary untouched
    written = (out / "summary.csv").read_bytes()
    glioma = ["predict", "--disease", "glioma", "--bundles", str(trained_bundles), "-o", str(out), "-i", str(source)]
    assert main(glioma) == 2
    assert "holds a cpa run (3 cases from" in capsys.readouterr().err
    assert (out / "summary.csv").read_bytes() == written


def test_one_image_file_for_a_disease_of_one_sequence(trained_bundles, grading_cohorts, tmp_path, monkeypatch, capsys):  # noqa: F811
    """No shipped disease reads one sequence: cpa made to read its T2 alone runs one image file as one case."""
    from mednet.pipeline.diseases import DiseaseSpec

    monkeypatch.setattr(DiseaseSpec, "sequences", property(lambda self: ("t2",)))
    source = grading_cohorts["cpa_mri_classification"]
    case = _absolute(json.loads(source.read_text())["testing"][0], source.parent)
    image = tmp_path / "P7_t2.nii.gz"
    image.symlink_to(case["t2"])
    out = tmp_path / "out"
    args = ["predict", "--disease", "cpa", "--bundles", str(trained_bundles), "-i", str(image), "-o", str(out)]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # as on a terminal: the bar by default
    assert main([*args, "--json", "-v"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert "100%" in captured.err and "1/1" in captured.err  # the bar
    assert "[1/1] P7: " in captured.err and "localise_s" in captured.err  # --verbose: a line per case, with timings
    import torch

    auto = "cuda" if torch.cuda.is_available() else "cpu"  # --device auto, the default: the GPU when present
    assert f"cpa: 1 cases from {image}; device {auto}" in captured.err and doc["device"] == auto
    assert [(c["case_id"], c["status"]) for c in doc["cases"]] == [("P7", "ok")] and doc["partition"] is None
    record = json.loads((out / "P7" / "P7.json").read_text())
    assert record["reference_sequence"] == "t2" and list(record["inputs"]) == ["t2"]
    assert [r["case_id"] for r in _rows(out / "summary.csv")] == ["P7"]
    assert main([*args, "-q"]) == 0  # --quiet: no bar, no line, even on a terminal
    assert capsys.readouterr() == ("", "")


@pytest.mark.slow  # two predict runs over a whole cohort (60 s); CI runs it with the slow tests
def test_ctrl_c_summarises_the_cases_done(trained_bundles, grading_cohorts, tmp_path):  # noqa: F811
    """SIGINT mid-cohort: exit code 130, the summary and --json hold the cases done; the same command finishes."""
    datalist = grading_cohorts["glioma_mri_classification"]
    doc = json.loads(datalist.read_text())  # every partition: enough cases that the interrupt lands mid-cohort
    cases = [c["case_id"] for p in ("training", "validation", "testing") for c in doc[p]]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "mednet", "predict", "--disease", "glioma", "-i", str(datalist), "-o", str(out),
               "--bundles", str(trained_bundles), "--device", "cpu", "--json", "--partition", "all"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # a shell without job control starts background commands with SIGINT ignored, and children inherit it:
    # the command gets the default disposition, as in a terminal
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (out / cases[0] / f"{cases[0]}.json").is_file():
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr[-2000:]
    done = [c for c in cases if (out / c / f"{c}.json").is_file()]
    assert done[0] == cases[0] and len(done) < len(cases)
    assert [r["case_id"] for r in _rows(out / "summary.csv")] == done
    assert f"interrupted after {len(done)} of {len(cases)} cases" in (out / "report.html").read_text()
    assert f"mednet predict: interrupted after {len(done)} of {len(cases)} cases" in stderr
    assert "Traceback" not in stderr
    doc = json.loads(stdout)
    assert doc["exit_code"] == 130 and doc["interrupted"].startswith(f"interrupted after {len(done)}")
    assert [c["status"] for c in doc["cases"]] == ["ok"] * len(done) + ["not run"] * (len(cases) - len(done))
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["counts"]["skipped"] == len(done)
    assert [r["case_id"] for r in _rows(out / "summary.csv")] == cases
