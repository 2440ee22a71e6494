"""The memory guard: the budget, its setting, and the message of a refused image."""

from __future__ import annotations

import numpy as np
import pytest

from mednet.cli.main import main
from mednet.errors import InvalidImageError, SettingError
from mednet.io import memory, read_image
from tests.conftest import write_nifti
from tests.io.dicom_helpers import write_dicom_series


def test_budget_is_half_of_memavailable(monkeypatch):
    monkeypatch.delenv("MEDNET_MAX_IMAGE_GB", raising=False)
    monkeypatch.setattr(memory, "available_memory", lambda: 24_200_000_000)
    assert memory.memory_budget() == (
        12_100_000_000,
        "50% of the 24.2 GB of memory available; set MEDNET_MAX_IMAGE_GB to change",
    )


def test_available_memory_reads_meminfo(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32000000 kB\nMemFree:  100 kB\nMemAvailable:   12000000 kB\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: real_open(meminfo if p == "/proc/meminfo" else p, *a, **k))
    assert memory.available_memory() == 12_000_000 * 1024


def test_available_memory_falls_back_to_sysconf(monkeypatch):
    def no_meminfo(*args, **kwargs):
        raise FileNotFoundError("/proc/meminfo")

    monkeypatch.setattr("builtins.open", no_meminfo)
    monkeypatch.setattr(memory.os, "sysconf", lambda name: {"SC_AVPHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}[name])
    assert memory.available_memory() == 4_096_000


@pytest.mark.parametrize("value", ["abc", "0", "-2", "nan", "inf"])
def test_a_bad_setting_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv("MEDNET_MAX_IMAGE_GB", value)
    with pytest.raises(
        SettingError, match=rf"MEDNET_MAX_IMAGE_GB: expected a positive number of gigabytes .*, found '{value}'"
    ):
        memory.memory_budget()


def test_a_bad_setting_stops_mednet_info_with_one_line(tmp_path, volume, monkeypatch, capsys):
    monkeypatch.setenv("MEDNET_MAX_IMAGE_GB", "lots")
    assert main(["info", str(write_nifti(tmp_path / "a.nii.gz", volume))]) == 2
    assert capsys.readouterr().err.strip() == (
        "mednet info: error: MEDNET_MAX_IMAGE_GB: expected a positive number of gigabytes (e.g. 8 or 0.5), found 'lots'"
    )


@pytest.mark.parametrize(
    ("n", "text"), [(7.4e12, "7.4 TB"), (12_100_000_000, "12.1 GB"), (850_000, "850 kB"), (16, "16 B"), (2e15, "2 PB")]
)
def test_format_bytes(n, text):
    assert memory.format_bytes(n) == text


def test_decode_estimate_counts_the_float32_copy():
    assert memory.decode_bytes((10, 20, 30), np.int16) == 6000 * (2 + 4)
    assert memory.decode_bytes((10, 20, 30), "float64") == 6000 * (8 + 4)


def test_a_file_just_within_the_budget_reads_and_one_byte_over_is_refused(tmp_path, volume, monkeypatch):
    path = write_nifti(tmp_path / "a.nii.gz", volume)  # 6000 float32 voxels: 48 kB to decode
    monkeypatch.setenv("MEDNET_MAX_IMAGE_GB", "0.000048")
    assert read_image(path).shape == (1, 10, 20, 30)
    monkeypatch.setenv("MEDNET_MAX_IMAGE_GB", "0.000047999")
    with pytest.raises(
        InvalidImageError,
        match=r"a\.nii\.gz: too large for the memory available: expected at most 47,999 bytes "
        r"\(MEDNET_MAX_IMAGE_GB=0\.000047999\), found 10 x 20 x 30 float32 voxels, which would need 48,000 bytes "
        r"to decode, 47,999 bytes are available",
    ):
        read_image(path)


def test_a_dicom_series_is_judged_from_its_first_file_before_reading(tmp_path, rng, monkeypatch):
    folder = write_dicom_series(tmp_path / "series", rng.integers(0, 1000, (6, 7, 4)).astype(np.int16))
    monkeypatch.setenv("MEDNET_MAX_IMAGE_GB", "0.000001")
    with pytest.raises(
        InvalidImageError,
        match=r"series: too large for the memory available: .*found 6 x 7 x 4 int16 voxels, which would need "
        r"1\.01 kB to decode, 1 kB are available",
    ):
        read_image(folder)
