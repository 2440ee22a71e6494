"""``mednet predict`` conventions that need no trained bundle: aliases, the device, one image file, a reused folder.

The runs themselves (progress bar, --json, Ctrl-C, --partition all, a reused folder end to
end) are in tests/bundles/test_predict_cli.py, with the tiny trained bundles.
"""

from __future__ import annotations

import json

import pytest

from mednet.cli.main import build_parser, main
from mednet.pipeline.cohort import _plan_output, load_cases
from mednet.pipeline.summary import write_run
from tests.conftest import write_nifti


def test_short_aliases_and_auto_device_by_default():
    parser = build_parser()
    args = parser.parse_args(["predict", "--disease", "cpa", "-i", "cases", "-o", "out"])
    assert (args.input, args.out, args.device) == ("cases", "out", "auto")
    assert not (args.quiet or args.verbose or args.json or args.progress)
    args = parser.parse_args(["predict", "--disease", "cpa", "--input", "a", "--out", "b", "-q", "--json"])
    assert (args.input, args.out, args.quiet, args.json) == ("a", "b", True, True)
    with pytest.raises(SystemExit):  # --quiet and --verbose contradict each other
        parser.parse_args(["predict", "--disease", "cpa", "-i", "a", "-o", "b", "-q", "-v"])
    args = parser.parse_args(["demo", "-o", "somewhere"])
    assert (args.out, args.device) == ("somewhere", "auto")
    assert parser.parse_args(["report", "out", "--json"]).json


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:7"])
def test_an_absent_gpu_is_refused_before_any_work(device, tmp_path, volume, capsys):
    """On this CPU-only machine: one line, exit code 2, no output folder, before the bundles are even read."""
    import torch

    assert not torch.cuda.is_available()  # the test is about a machine without one
    image = write_nifti(tmp_path / "P1_t2.nii.gz", volume)
    out = tmp_path / "out"
    args = ["predict", "--disease", "cpa", "-i", str(image), "-o", str(out), "--device", device,
            "--bundles", str(tmp_path / "no_bundles_here")]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err == f"mednet predict: error: device {device!r} asked for, but PyTorch finds no CUDA GPU; " \
                  "use --device cpu or auto\n"  # fmt: skip
    assert not out.exists()
    assert main(["demo", "-o", str(tmp_path / "demo"), "--device", device]) == 2
    assert "finds no CUDA GPU" in capsys.readouterr().err and not (tmp_path / "demo").exists()


@pytest.mark.parametrize(("precision", "message"), [
    ("float16", "precision float16 needs a GPU; on the CPU use float32 (the default) or bfloat16"),
    ("fp8", "precision: expected one of auto, float32, bfloat16, float16, found 'fp8'"),
])  # fmt: skip
def test_a_precision_the_device_cannot_run_is_refused_before_any_work(precision, message, tmp_path, volume, capsys):
    image = write_nifti(tmp_path / "P1_t2.nii.gz", volume)
    out = tmp_path / "out"
    args = ["predict", "--disease", "cpa", "-i", str(image), "-o", str(out), "--device", "cpu", "--precision",
            precision, "--bundles", str(tmp_path / "no_bundles_here")]  # fmt: skip
    assert main(args) == 2
    assert capsys.readouterr().err == f"mednet predict: error: {message}\n"
    assert not out.exists()
    assert build_parser().parse_args(["predict", "--disease", "cpa", "-i", "a", "-o", "b"]).precision == "auto"


def test_a_gpu_number_beyond_the_gpus_is_refused(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # one GPU, as PyTorch would say
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    out = tmp_path / "out"
    args = ["predict", "--disease", "cpa", "-i", str(tmp_path), "-o", str(out), "--device", "cuda:7", "--json"]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == "mednet predict: error: device 'cuda:7': PyTorch finds 1 GPU(s)"
    doc = json.loads(captured.out)  # --json: stdout still holds one JSON object
    assert doc["exit_code"] == 2 and "finds 1 GPU" in doc["error"] and not out.exists()


def test_one_image_file_is_refused_for_a_disease_of_several_sequences(tmp_path, volume, capsys):
    image = write_nifti(tmp_path / "P1_t2.nii.gz", volume)
    out = tmp_path / "out"
    assert main(["predict", "--disease", "cpa", "-i", str(image), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "codec" not in err
    assert f"{image}: one image file, but cpa reads 2 sequences (t1c, t2)" in err
    assert "a folder with one file per sequence named <case>_<sequence> (e.g. P1_t1c.nii.gz, P1_t2.nii.gz)" in err
    assert "or a datalist JSON" in err and not out.exists()
    assert main(["predict", "--disease", "glioma", "-i", str(image), "-o", str(out), "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert "glioma reads 4 sequences (t1, t1c, t2, flair)" in doc["error"]


def test_one_image_file_is_a_one_case_cohort_for_a_disease_of_one_sequence(tmp_path, volume):
    named = write_nifti(tmp_path / "P1_t2.nii.gz", volume)
    assert load_cases(named, sequences=("t2",), disease="x") == [
        {"case_id": "P1", "patient_id": "P1", "t2": str(named)}
    ]
    plain = write_nifti(tmp_path / "scan 3.nii.gz", volume)
    assert load_cases(plain, sequences=("t2",)) == [{"case_id": "scan 3", "patient_id": "scan 3", "t2": str(plain)}]
    in_folder = write_nifti(tmp_path / "P9" / "t2.nii.gz", volume)
    assert load_cases(in_folder, sequences=("t2",))[0]["case_id"] == "P9"
    other = write_nifti(tmp_path / "P2_flair.nii.gz", volume)
    with pytest.raises(ValueError, match=r"P2_flair.nii.gz: the file name says flair, but x reads t2; rename it "
                                         r"\(e.g. P2_t2.nii.gz\)"):  # fmt: skip
        load_cases(other, sequences=("t2",), disease="x")
    with pytest.raises(ValueError, match="one image file, but x reads 2 sequences"):
        load_cases(named, sequences=("t1c", "t2"), disease="x")


def test_an_empty_partition_says_what_the_datalist_has(tmp_path, volume):
    image = write_nifti(tmp_path / "P1_t2.nii.gz", volume)
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": [{"case_id": "P1", "t2": str(image)}], "testing": []}))
    with pytest.raises(ValueError, match=r"no case in partition 'testing' \(cases per partition: training 1, "
                                         r"validation 0, testing 0\); choose one with --partition"):  # fmt: skip
        load_cases(datalist)
    assert [c["case_id"] for c in load_cases(datalist, "all")] == ["P1"]
    with pytest.raises(ValueError, match="partition: expected one of training, validation, testing, all"):
        load_cases(datalist, "test")


def _complete_case(out, case_id, disease):
    (out / case_id).mkdir(parents=True)
    (out / case_id / f"{case_id}.json").write_text(json.dumps({"case_id": case_id, "disease": disease}))


def test_a_reused_folder_keeps_its_complete_cases_and_refuses_another_disease(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert _plan_output(out, "cpa", tmp_path, ["A", "B"], sharded=False) == (["A", "B"], [])  # a new folder
    write_run(out, "cpa", None, tmp_path / "first", "testing", ["A", "B", "C", "D"])
    _complete_case(out, "A", "cpa")
    _complete_case(out, "B", "cpa")  # C: failed (no folder), D: not run yet
    _complete_case(out, "Z", "cpa")  # a complete case a run before run.json listed
    _complete_case(out, "N", "neuroblastoma")  # not this disease's: left out
    (out / "Y").mkdir()  # a folder without a record: not a complete case
    summary, kept = _plan_output(out, "cpa", tmp_path / "second", ["E", "B"], sharded=False)
    assert kept == ["A", "Z"] and summary == ["A", "Z", "E", "B"]
    # the same cohort again: the cohort in its order, after the complete case it does not have
    assert _plan_output(out, "cpa", tmp_path, ["A", "B", "C", "D"], sharded=False) == (["Z", "A", "B", "C", "D"], ["Z"])
    (out / "Z" / "Z.json").unlink()
    assert _plan_output(out, "cpa", tmp_path, ["A", "B", "C", "D"], sharded=False) == (["A", "B", "C", "D"], [])
    with pytest.raises(ValueError, match=r"holds a cpa run \(4 cases from .*first\), and this one is glioma: one "
                                         "summary cannot list both; choose another --out"):  # fmt: skip
        _plan_output(out, "glioma", tmp_path, ["A"], sharded=False)
    # shards must all run the cohort of run.json
    assert _plan_output(out, "cpa", tmp_path, ["A", "B", "C", "D"], sharded=True) == (["A", "B", "C", "D"], [])
    with pytest.raises(ValueError, match="holds a run of other cases"):
        _plan_output(out, "cpa", tmp_path, ["A", "B"], sharded=True)


def test_another_disease_is_refused_by_the_command(tmp_path, volume, capsys):
    out = tmp_path / "out"
    out.mkdir()
    write_run(out, "glioma", None, tmp_path, "testing", ["A"])
    before = (out / "run.json").read_bytes()
    for i, seq in enumerate(("t1c", "t2")):
        write_nifti(tmp_path / "cases" / f"P1_{seq}.nii.gz", volume + i)
    code = main(["predict", "--disease", "cpa", "-i", str(tmp_path / "cases"), "-o", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "holds a glioma run (1 cases from" in err and "this one is cpa" in err
    assert (out / "run.json").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]  # refused before the weights are loaded
