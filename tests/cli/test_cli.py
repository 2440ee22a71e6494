"""The mednet command: info, datalist, synth, and a fast --help (demo: tests/bundles/test_demo.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from mednet.cli.main import main
from tests.conftest import write_nifti
from tests.io.corpus import nifti


def test_help_does_not_import_torch():
    code = "import sys, mednet.cli.main as m; m.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_command_makes_waiting_threads_sleep_before_torch_loads_and_keeps_a_users_choice():
    """OMP_WAIT_POLICY=PASSIVE is set before torch (and its OpenMP runtime) is imported; a user's value stays."""
    import os

    code = ("import os, sys; import mednet.cli.main; "
            "print(os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["PASSIVE", "False"]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, "OMP_WAIT_POLICY": "ACTIVE"})  # fmt: skip
    assert out.stdout.split() == ["ACTIVE", "False"]


def test_info_prints_geometry_and_problems(tmp_path, volume, capsys):
    good = write_nifti(tmp_path / "a_t1.nii.gz", volume)
    flat = write_nifti(tmp_path / "b_t1.nii.gz", np.zeros((4, 5, 6), np.float32))
    assert main(["info", str(good)]) == 0
    out = capsys.readouterr().out
    assert "shape 10 x 20 x 30" in out and "spacing 1 x 1.5 x 3 mm" in out and "LPS" in out and "float32" in out
    assert main(["info", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM constant image" in out and str(flat) in out
    assert main(["info", "--json", str(tmp_path / "missing.nii.gz")]) == 1
    assert "file not found" in json.loads(capsys.readouterr().out)[0]["error"]


def test_info_describes_every_file_of_a_folder_even_broken_ones(tmp_path, volume, capsys):
    good = write_nifti(tmp_path / "a_t1.nii.gz", volume)
    zero = nifti(tmp_path / "b_t1.nii.gz", volume, np.zeros((4, 4)), qform_code=0)  # was a TypeError
    nan = write_nifti(tmp_path / "c_t1.nii.gz", np.full((4, 5, 6), np.nan, np.float32))
    (tmp_path / "d_t1.nii.gz").mkdir()  # was described as nothing
    assert main(["info", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{good}\n  nifti     shape 10 x 20 x 30" in out
    assert f"{zero}\n  nifti     shape 10 x 20 x 30    spacing 0 x 0 x 0 mm  ???  float32" in out
    assert "PROBLEM singular affine: expected an invertible voxel-to-world matrix" in out
    assert f"{nan}\n  nifti     shape 4 x 5 x 6" in out and "range [?, ?]" in out
    assert f"ERROR {tmp_path / 'd_t1.nii.gz'}: a folder named like an image file: expected a .nii.gz file" in out
    assert main(["info", "--json", str(nan)]) == 1
    described = json.loads(capsys.readouterr().out)[0]
    assert described["min"] is None and described["problems"][0].startswith("non-finite voxel values")


def test_info_on_a_folder_without_images_says_so(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["info", str(tmp_path / "empty")]) == 1
    assert "no DICOM series found: expected a folder of DICOM files of one series, found an empty folder" in (
        capsys.readouterr().out
    )


def test_datalist_command(tmp_path, capsys):
    for i in range(10):
        for seq in ["t1", "t1ce", "t2", "flair"]:
            write_nifti(
                tmp_path / "data" / f"BraTS2021_{i:05d}" / f"BraTS2021_{i:05d}_{seq}.nii.gz", np.ones((2, 2, 2))
            )
    (tmp_path / "data" / "name_mapping.csv").write_text("x")
    out = tmp_path / "datalist.json"
    assert main(["datalist", str(tmp_path / "data"), "--out", str(out), "--require", "t1,T1ce,flair"]) == 0
    printed = capsys.readouterr().out
    assert "found 10 case(s)" in printed and "10 with t1+t1c+t2+flair" in printed
    assert "name_mapping.csv: not an image file" in printed
    assert "training      7 patients" in printed
    doc = json.loads(out.read_text())
    # 10 patients at 7 : 1.5 : 1.5 -> 7, 2, 1 (largest remainder, ties to the earlier partition)
    assert [len(doc[n]) for n in ("training", "validation", "testing")] == [7, 2, 1]
    # existing output is not replaced without --overwrite; errors are one line, exit code 2
    assert main(["datalist", str(tmp_path / "data"), "--out", str(out)]) == 2
    assert "output exists" in capsys.readouterr().err
    assert main(["datalist", str(tmp_path / "data"), "--out", str(out), "--overwrite", "--require", "t7"]) == 2
    assert "--require: unknown sequence 't7'" in capsys.readouterr().err


def test_datalist_folds_and_manifest(tmp_path, capsys):
    rows = []
    for i in range(12):
        path = write_nifti(tmp_path / f"c{i}_t2w.nii.gz", np.ones((2, 2, 2)))
        rows.append(f"c{i},P{i // 2},{path.name},{'L1' if i % 4 else 'M'}")
    (tmp_path / "m.csv").write_text("case_id,patient_id,t2w,stage\n" + "\n".join(rows) + "\n")
    out = tmp_path / "dl.json"
    assert (
        main(
            [
                "datalist",
                "--manifest",
                str(tmp_path / "m.csv"),
                "--out",
                str(out),
                "--folds",
                "3",
                "--ratios",
                "0.8",
                "0",
                "0.2",
            ]
        )
        == 0
    )
    doc = json.loads(out.read_text())
    assert doc["split"]["folds"] == 3
    assert {c["fold"] for c in doc["training"] + doc["validation"]} == {0, 1, 2}
    assert "stratified by class" in capsys.readouterr().out


def test_synth_command(tmp_path, capsys):
    out = tmp_path / "cpa"
    assert (
        main(
            [
                "synth",
                "--disease",
                "cpa",
                "--cases",
                "2",
                "--out",
                str(out),
                "--balance",
                "AN=1,MG=1",
                "--workers",
                "1",
                "--preview",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "wrote 2 cpa cases" in printed and "preview.png" in printed
    rows = (out / "manifest.csv").read_text().splitlines()
    assert rows[0] == "case_id,patient_id,t1c,t2,label,class,radiology,radiotherapy"
    assert {r.split(",")[5] for r in rows[1:]} == {"AN", "MG"}


def test_synth_optional_sequences(tmp_path, capsys):
    out = tmp_path / "nb"
    args = ["synth", "--disease", "neuroblastoma", "--cases", "1", "--size", "small", "--out", str(out), "--workers", "1"]
    assert main([*args, "--t1", "--dwi"]) == 0
    header = (out / "manifest.csv").read_text().splitlines()[0].split(",")
    assert {"t2w", "t1c", "dwi", "t1"} <= set(header)
    assert json.loads((out / "cohort.json").read_text())["optional"] == ["dwi", "t1"]


def test_info_notes_zeros_beyond_a_reformatted_scans_field_of_view(tmp_path, capsys):
    import nibabel as nib
    from nibabel.affines import from_matvec
    from nibabel.processing import resample_to_output
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(0)
    values = rng.uniform(50, 500, (48, 40, 20)).astype(np.float32)  # acquired everywhere: no zero
    plain = write_nifti(tmp_path / "plain.nii.gz", values)
    rotation = from_matvec(Rotation.from_euler("z", 15, degrees=True).as_matrix(), [0, 0, 0])
    reformatted = resample_to_output(nib.Nifti1Image(values, rotation @ np.diag([1.5, 1.5, 3.0, 1.0])), order=1)
    nib.save(reformatted, tmp_path / "reformatted.nii.gz")
    assert main(["info", "--json", str(plain), str(tmp_path / "reformatted.nii.gz")]) == 0
    described = {Path(d["path"]).name: d for d in json.loads(capsys.readouterr().out)}
    assert not any("field of view" in n for n in described["plain.nii.gz"]["notes"])
    note = next(n for n in described["reformatted.nii.gz"]["notes"] if "field of view" in n)
    zeros = int((np.asarray(reformatted.dataobj) == 0).sum())
    assert note.startswith(f"{zeros} voxels (") and not described["reformatted.nii.gz"]["problems"]


def test_info_says_when_the_field_of_view_search_would_not_fit_in_memory(tmp_path, capsys, monkeypatch):
    values = np.random.default_rng(0).uniform(50, 500, (48, 40, 20)).astype(np.float32)
    values[:10] = 0.0  # a band of zeros along an edge: searched unless memory forbids
    image = write_nifti(tmp_path / "banded.nii.gz", values)
    plain = write_nifti(tmp_path / "plain.nii.gz", np.where(values > 0, values, 1.0).astype(np.float32))
    monkeypatch.setenv("MEDNET_MAX_IMAGE_GB", "0.01")  # decoding (300 kB) fits, the search (32 MB) does not
    assert main(["info", "--json", str(plain)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["notes"] == []  # no zeros at the border: nothing to search
    assert main(["info", "--json", str(image)]) == 0
    described = json.loads(capsys.readouterr().out)[0]
    assert described["notes"] == [
        "not searched for zeros beyond the field of view: too large for the memory available: 48 x 40 x 20 voxels, "
        "which would need 32.8 MB to find the zeros beyond its field of view, 10 MB are available"
    ]
    assert not described["problems"] and described["shape"] == [48, 40, 20]
    monkeypatch.delenv("MEDNET_MAX_IMAGE_GB")
    assert main(["info", "--json", str(image)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["notes"][0].startswith("8000 voxels (20.8%) of zeros beyond")
