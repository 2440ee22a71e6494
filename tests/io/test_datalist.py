"""Case discovery (BraTS 2021, BraTS 2023, case folders, manifest) and datalist files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mednet.errors import DatalistError, PatientLeakageError
from mednet.io import (
    SliceSplitWarning,
    build_datalist,
    discover_cases,
    load_datalist,
    read_manifest,
    save_datalist,
    slice_split_partitions,
)
from mednet.io.datalist import datalist_cases
from mednet.io.sequences import normalise_sequence_key
from tests.conftest import write_nifti

TINY = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)


def touch(path):
    return write_nifti(path, TINY)


def test_sequence_spellings():
    assert [
        normalise_sequence_key(s)
        for s in ["T1", "t1n", "T1ce", "t1_gd", "T1 post-Gd", "T2", "t2w", "FLAIR", "t2f", "seg", "Mask", "age"]
    ] == ["t1", "t1", "t1c", "t1c", "t1c", "t2", "t2w", "flair", "flair", "label", "label", None]


def test_brats_2021_names_and_hgg_lgg_folders(tmp_path):
    for grade, case in [("HGG", "BraTS19_A_1"), ("LGG", "BraTS19_B_1")]:
        for seq in ["t1", "t1ce", "t2", "flair", "seg"]:
            touch(tmp_path / grade / case / f"{case}_{seq}.nii.gz")
    found = discover_cases(tmp_path)
    assert [c["case_id"] for c in found.cases] == ["BraTS19_A_1", "BraTS19_B_1"]
    first = found.cases[0]
    assert list(first)[:7] == ["case_id", "patient_id", "t1", "t1c", "t2", "flair", "label"]
    assert first["t1c"].endswith("BraTS19_A_1_t1ce.nii.gz")
    assert [c["class"] for c in found.cases] == ["HGG", "LGG"]
    assert found.skipped == []
    assert "BraTS 2021 (10 files)" in found.report()


def test_brats_2023_names_group_time_points_into_patients(tmp_path):
    for case in ["BraTS-GLI-00001-000", "BraTS-GLI-00001-001", "BraTS-GLI-00002-000"]:
        for seq in ["t1n", "t1c", "t2w", "t2f", "seg"]:
            touch(tmp_path / case / f"{case}-{seq}.nii.gz")
    found = discover_cases(tmp_path)
    assert {c["case_id"]: c["patient_id"] for c in found.cases} == {
        "BraTS-GLI-00001-000": "BraTS-GLI-00001",
        "BraTS-GLI-00001-001": "BraTS-GLI-00001",
        "BraTS-GLI-00002-000": "BraTS-GLI-00002",
    }
    case = found.cases[0]
    assert case["t2"].endswith("-t2w.nii.gz") and case["flair"].endswith("-t2f.nii.gz")
    assert "t2w" not in case
    assert "2 patient(s)" in found.report()


def test_case_folders_with_bare_sequence_names_and_skips(tmp_path):
    touch(tmp_path / "patient01" / "T2w.nii.gz")
    touch(tmp_path / "patient01" / "T1c.nrrd.nii.gz")  # odd but legal name: "t1c.nrrd" is not a sequence
    touch(tmp_path / "patient01" / "t1_post.nii")
    touch(tmp_path / "patient02" / "patient02_t2w.nii.gz")
    touch(tmp_path / "patient03" / "seg.nii.gz")
    touch(tmp_path / "patient04" / "t2w.nii.gz")
    touch(tmp_path / "patient04" / "patient04_T2W.nii.gz")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".DS_Store").write_text("x")
    found = discover_cases(tmp_path, require=["t2w"])
    assert {c["case_id"]: sorted(k for k in c if k not in ("case_id", "patient_id")) for c in found.cases} == {
        "patient01": ["t1c", "t2w"],
        "patient02": ["t2w"],
    }
    reasons = {s["path"].split("/")[-1]: s["reason"] for s in found.skipped}
    assert reasons["notes.txt"] == "not an image file"
    assert reasons["T1c.nrrd.nii.gz"].startswith("name matches no naming scheme")
    assert reasons["patient03"] == "no image sequence (only a label map?)"
    assert reasons["patient04"].startswith("ambiguous case: two files for t2w")
    assert ".DS_Store" not in reasons
    report = found.report()
    assert "skipped 4:" in report and "not an image file" in report


def test_missing_required_sequence_is_reported(tmp_path):
    touch(tmp_path / "c1_t1.nii.gz")
    touch(tmp_path / "c2_t1.nii.gz")
    touch(tmp_path / "c2_flair.nii.gz")
    found = discover_cases(tmp_path, require=["t1", "flair"])
    assert [c["case_id"] for c in found.cases] == ["c2"]
    assert found.skipped == [{"path": "c1", "reason": "missing required sequence(s) flair; has t1"}]


def test_dicom_folders_are_reported_not_silently_dropped(tmp_path):
    (tmp_path / "dicom").mkdir()
    (tmp_path / "dicom" / "IM0001").write_bytes(bytes(128) + b"DICM" + bytes(64))
    touch(tmp_path / "c1_t1.nii.gz")
    found = discover_cases(tmp_path)
    assert found.skipped[0]["reason"].startswith("DICOM folder (1 files): list it in a manifest")


def test_not_a_folder(tmp_path):
    with pytest.raises(DatalistError, match=r"nothing: expected a folder of images, found nothing"):
        discover_cases(tmp_path / "nothing")


def write_manifest(tmp_path, rows, header="case_id,patient_id,T1c,T2,seg,class,radiology,clinician_radiotherapy,age"):
    path = tmp_path / "manifest.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_manifest_columns(tmp_path):
    touch(tmp_path / "img" / "a_t1c.nii.gz")
    touch(tmp_path / "img" / "a_t2.nii.gz")
    touch(tmp_path / "img" / "b_t1c.nii.gz")
    path = write_manifest(
        tmp_path,
        [
            "a,P1,img/a_t1c.nii.gz,img/a_t2.nii.gz,,an,an,mg,54",
            "b,P2,img/b_t1c.nii.gz,,,mg,,,61",
            "c,P3,img/missing.nii.gz,,,mg,,,",
            ",P4,,,,,,,",
            "a,P1,img/a_t1c.nii.gz,,,an,,,",
        ],
    )
    found = read_manifest(path)
    assert [c["case_id"] for c in found.cases] == ["a", "b"]
    a = found.cases[0]
    assert a["patient_id"] == "P1" and a["class"] == "an"
    assert a["t1c"] == str(tmp_path / "img" / "a_t1c.nii.gz")
    assert a["clinicians"] == {"radiology": "an", "radiotherapy": "mg"}
    assert a["extra"] == {"age": "54"}
    assert "clinicians" not in found.cases[1]
    reasons = [s["reason"] for s in found.skipped]
    assert reasons[0].startswith("case c: t1c file not found")
    assert reasons[1] == "empty case id"
    assert reasons[2] == "case id a repeated (first row kept)"
    assert found.notes == ["extra columns kept under 'extra': age"]


def test_manifest_without_case_column(tmp_path):
    path = write_manifest(tmp_path, ["x"], header="subject_image")
    with pytest.raises(
        DatalistError, match=r"expected a case id column \(one of case_id, .*found columns subject_image"
    ):
        read_manifest(path)


def test_manifest_split_column_is_kept_and_checked(tmp_path):
    touch(tmp_path / "a.nii.gz")
    rows = ["a1,P1,a.nii.gz,train", "a2,P2,a.nii.gz,test", "a3,P1,a.nii.gz,val"]
    path = write_manifest(tmp_path, rows, header="case_id,patient_id,t2,split")
    with pytest.raises(PatientLeakageError, match=r"found 1 patient\(s\) in several: P1 in training, validation"):
        build_datalist(read_manifest(path))
    path = write_manifest(tmp_path, rows[:2], header="case_id,patient_id,t2,split")
    datalist = build_datalist(read_manifest(path))
    assert datalist["split"]["method"] == "given in the manifest"
    assert [c["case_id"] for c in datalist["training"]] == ["a1"]
    assert "split" not in datalist["training"][0]


def test_datalist_round_trip_with_relative_paths(tmp_path):
    for i in range(8):
        for seq in ["t1", "flair"]:
            touch(tmp_path / "data" / f"case{i}" / f"case{i}_{seq}.nii.gz")
    datalist = build_datalist(discover_cases(tmp_path / "data"), seed=3)
    out = save_datalist(datalist, tmp_path / "datalist.json")
    raw = json.loads(out.read_text())
    every = raw["training"] + raw["validation"] + raw["testing"]
    assert len(every) == 8
    assert all(c["t1"].startswith("data/case") for c in every)  # relative to the datalist's folder
    assert raw["split"]["unit"] == "patient" and raw["split"]["seed"] == 3
    loaded = load_datalist(out)
    assert all((tmp_path / "data").as_posix() in c["flair"] for c in loaded["training"])
    assert datalist_cases(out, "testing") == loaded["testing"]
    with pytest.raises(DatalistError, match=r"partition: expected one of training, validation, testing, found 'train'"):
        datalist_cases(out, "train")


def test_load_datalist_refuses_a_leaking_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(
            {"training": [{"case_id": "a", "patient_id": "P"}], "testing": [{"case_id": "b", "patient_id": "P"}]}
        )
    )
    with pytest.raises(PatientLeakageError, match="P in testing, training"):
        load_datalist(path)
    path.write_text("{not json")
    with pytest.raises(DatalistError, match="not valid JSON"):
        load_datalist(path)


def test_slice_split_is_accepted_only_when_asked_and_then_warns_loudly(tmp_path, caplog):
    patients = {"training": [{"case_id": f"c{i}", "patient_id": f"P{i}"} for i in range(3)],
                "testing": [{"case_id": "c9", "patient_id": "P9"}]}  # fmt: skip
    sliced = slice_split_partitions(patients, n_slices=20, seed=1)
    for case in ("c0", "c1", "c2", "c9"):  # every patient is in every partition, its 20 slices shared out 14/3/3
        ranks = {p: next(c["slice_ranks"] for c in sliced[p] if c["case_id"] == case) for p in sliced}
        assert [len(ranks[p]) for p in ("training", "validation", "testing")] == [14, 3, 3]
        assert sorted(r for p in ranks for r in ranks[p]) == list(range(20))
    path = tmp_path / "sliced.json"
    path.write_text(json.dumps(sliced))
    with pytest.raises(PatientLeakageError):
        datalist_cases(path, "training")
    with pytest.warns(SliceSplitWarning, match="SLICE-LEVEL SPLIT"):
        cases = datalist_cases(path, "testing", ["patient_id"], slice_split=True)
    assert len(cases) == 4 and all(len(c["slice_ranks"]) == 3 for c in cases)
    assert "inflated" in caplog.text
    # per-case counts (only the slices showing the lesion): 4 slices share out 3/1/0 and 1
    # slice 1/0/0, so those cases are left out of the partitions with no slice
    counts = {"c0": 4, "c1": 1, "c2": 20, "c9": 7}
    varied = slice_split_partitions(patients, n_slices=lambda case: counts[case["case_id"]], seed=1)
    for case, count in counts.items():
        held = [r for p in varied.values() for c in p if c["case_id"] == case for r in c["slice_ranks"]]
        assert sorted(held) == list(range(count))
    assert [c["case_id"] for c in varied["testing"]] == ["c2", "c9"]


def test_empty_folder_cannot_make_a_datalist(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DatalistError, match=r"no usable case found"):
        build_datalist(discover_cases(tmp_path))


def test_load_datalist_keeps_null_and_empty_sequences_missing(tmp_path):
    """A missing sequence given as null or "" stays missing: not the datalist's folder, not a TypeError."""
    from mednet.io.cases import present_sequences

    doc = {"testing": [{"case_id": "c1", "patient_id": "p1", "t1": "c1_t1.nii.gz", "t2": None, "flair": ""}]}
    (tmp_path / "d.json").write_text(json.dumps(doc))
    (case,) = load_datalist(tmp_path / "d.json")["testing"]
    assert case["t1"] == str(tmp_path / "c1_t1.nii.gz") and case["t2"] is None and case["flair"] == ""
    assert present_sequences(case, ["t1", "t2", "flair"]) == ["t1"]


def test_load_datalist_refuses_entries_that_are_not_cases_and_leaves_odd_values_to_the_case(tmp_path):
    """A string where a case should be is named; a sequence that is not a path is left for load_case to refuse."""
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"testing": ["c1_t1.nii.gz"]}))
    with pytest.raises(DatalistError, match=r"testing\[0\]: expected a case entry .* found str 'c1_t1.nii.gz'"):
        load_datalist(path)
    path.write_text(json.dumps({"training": [], "testing": {"case_id": "c1"}}))
    with pytest.raises(DatalistError, match=r"testing: expected a list of case entries, found dict"):
        load_datalist(path)
    path.write_text(json.dumps({"testing": [{"case_id": "c1", "t1": "a.nii.gz", "t2": ["x", "y"]}]}))
    case = load_datalist(path)["testing"][0]
    assert case["t1"] == str(tmp_path / "a.nii.gz") and case["t2"] == ["x", "y"]


def test_datalist_cases_with_any_of_keeps_the_sequences_a_case_has(tmp_path):
    path = tmp_path / "datalist.json"
    cases = [{"case_id": "a", "t1c": "a.nii.gz", "flair": "f.nii.gz", "t1": None, "label": "l.nii.gz"},
             {"case_id": "b", "t2": "b.nii.gz", "label": "l.nii.gz", "scanner": "x"}]  # fmt: skip
    path.write_text(json.dumps({"training": [], "validation": [], "testing": cases}))
    got = datalist_cases(path, "testing", ["label"], any_of=["t1", "t1c", "t2", "flair"])
    assert [sorted(c) for c in got] == [["case_id", "flair", "label", "t1c"], ["case_id", "label", "t2"]]
    path.write_text(json.dumps({"testing": [*cases, {"case_id": "c", "t1": "", "label": "l.nii.gz"}]}))
    with pytest.raises(DatalistError, match=r"1 case\(s\) lack a required key: c \(no t1, t1c, t2 or flair\)"):
        datalist_cases(path, "testing", ["label"], any_of=["t1", "t1c", "t2", "flair"])


def test_datalist_cases_nonempty_names_an_empty_partition_and_those_with_cases(tmp_path):
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"training": [{"case_id": "a", "t1": "a.nii.gz"}], "validation": [], "testing": []}))
    assert datalist_cases(path, "testing", any_of=["t1"]) == []  # a caller that iterates partitions
    with pytest.raises(DatalistError, match=r"partition 'testing': expected at least one case, found none "
                                            r"\(partitions with cases: training \(1\)\)"):  # fmt: skip
        datalist_cases(path, "testing", any_of=["t1"], nonempty=True)
    assert [c["case_id"] for c in datalist_cases(path, "training", ["t1"], nonempty=True)] == ["a"]
