"""Atomic writes: whole files or none, no temporary left behind, the mode the umask gives."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from mednet.io import read_image, write_image
from mednet.io.atomic import atomic_path, write_json_atomic, write_text_atomic
from tests.conftest import write_nifti


@pytest.fixture
def umask():
    """Set the process umask for one test (``umask(value)``) and restore it afterwards."""
    before = os.umask(0o022)
    os.umask(before)
    yield os.umask
    os.umask(before)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_mode_follows_the_umask(tmp_path, volume, umask, mask, expected):
    reference = read_image(write_nifti(tmp_path / "in.nii.gz", volume))
    umask(mask)
    labels = write_image((reference > 100).float(), tmp_path / "labels.nii.gz", reference, label=True)
    table = write_json_atomic(tmp_path / "labels.json", {"labels": []}, indent=2)
    text = write_text_atomic(tmp_path / "report.html", "<html></html>\n")
    assert [_mode(p) for p in (labels, table, text)] == [expected] * 3


def test_mode_is_kept_when_the_writer_replaces_the_file(tmp_path, umask):
    umask(0o022)
    with atomic_path(tmp_path / "out.txt") as tmp:
        fd, other = tempfile.mkstemp(dir=tmp_path)  # mode 0o600, as some libraries write
        os.write(fd, b"content")
        os.close(fd)
        os.replace(other, tmp)
    assert (tmp_path / "out.txt").read_bytes() == b"content" and _mode(tmp_path / "out.txt") == 0o644


def test_temporary_file_is_hidden_beside_the_target_with_the_suffix_asked(tmp_path):
    with atomic_path(tmp_path / "labels.nii.gz", suffix=".nii.gz") as tmp:
        assert tmp.parent == tmp_path and tmp.is_file() and tmp.stat().st_size == 0
        assert tmp.name.startswith(".labels.nii.gz.") and tmp.name.endswith(".tmp.nii.gz")
        assert not (tmp_path / "labels.nii.gz").exists()
        tmp.write_bytes(b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["labels.nii.gz"]


@pytest.mark.parametrize("existing", [True, False])
def test_failure_leaves_the_target_unchanged_and_no_temporary_file(tmp_path, existing):
    target = tmp_path / "metrics.json"
    if existing:
        target.write_text("old\n")
    with pytest.raises(OSError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text("half a fi")
        raise OSError("disk full")
    assert sorted(p.name for p in tmp_path.iterdir()) == (["metrics.json"] if existing else [])
    if existing:
        assert target.read_text() == "old\n"


def test_interrupt_also_leaves_no_temporary_file(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "a.csv") as tmp:
        tmp.write_text("a,b\n")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_concurrent_writers_to_one_target_both_succeed_whole(tmp_path):
    target = tmp_path / "summary.csv"
    contents = ["a" * 1_000_000, "b" * 1_000_000]
    both_inside = threading.Barrier(2, timeout=30)

    def write(text: str) -> None:
        with atomic_path(target) as tmp:
            tmp.write_text(text[: len(text) // 2])
            both_inside.wait()  # both temporary files exist and are half written
            with tmp.open("a") as stream:
                stream.write(text[len(text) // 2 :])

    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(write, text) for text in contents]:
            done.result()
    assert target.read_text() in contents
    assert [p.name for p in tmp_path.iterdir()] == ["summary.csv"]


def test_parent_folder_must_exist_unless_asked_to_create_it(tmp_path):
    target = tmp_path / "out" / "case_1" / "case_1.json"
    with pytest.raises(FileNotFoundError, match=r"folder .*case_1 does not exist; create it first"):
        write_json_atomic(target, {"case_id": "case_1"})
    assert not (tmp_path / "out").exists()
    assert write_json_atomic(target, {"case_id": "case_1"}, parents=True) == target
    assert json.loads(target.read_text()) == {"case_id": "case_1"}


def test_json_keywords_and_final_newline(tmp_path):
    path = write_json_atomic(str(tmp_path / "a.json"), {"b": float("nan")}, indent=2, allow_nan=True)
    assert path.read_text(encoding="utf-8") == '{\n  "b": NaN\n}\n'
    assert write_text_atomic(tmp_path / "é.txt", "é").read_bytes() == "é".encode()
