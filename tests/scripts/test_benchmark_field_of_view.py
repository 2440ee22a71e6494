"""scripts/benchmark_field_of_view.py: the fill's time, memory and distance figures on a small reformatted box."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
import benchmark_field_of_view as bench  # scripts/ is not a package: from its folder


def test_the_benchmark_compares_the_coarse_fill_with_the_exact_one(tmp_path, monkeypatch):
    out = tmp_path / "fov.json"
    argv = ["x", "--shape", "80", "72", "40", "--spacing", "1.0", "1.0", "2.0", "--repeats", "1",
            "--budget", "30000", "--out", str(out)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    result = json.loads(out.read_text())
    assert 0.2 < result["outside_fraction"] < 0.6  # the rotated box's corners
    assert set(result["median_seconds"]) == set(result["peak_numpy_mib"]) == {"detect", "fill", "fill_exact"}
    assert result["fill_budget_voxels"] == 30_000
    farther = result["coarse_source_farther_mm"]
    assert farther["sampled_voxels"] > 100
    assert 0 < farther["max"] <= 2 * (2.0**2 + 2.0**2 + 2.0**2) ** 0.5  # a coarser grid, within a cell or two
    assert farther["median"] <= farther["p99"] <= farther["max"]
