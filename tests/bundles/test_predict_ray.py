"""``mednet predict --ray``: the shards of a cohort as Ray tasks, one run's summary in the end."""

from __future__ import annotations

import json
import sys

import pytest

from mednet.cli.main import main
from mednet.pipeline import predict_cohort
from tests.bundles.test_predict import _rows, trained_bundles  # noqa: F401  (a fixture)

pytestmark = pytest.mark.bundle


@pytest.mark.slow
def test_two_ray_workers_write_exactly_one_runs_summary(trained_bundles, grading_cohorts, tmp_path):  # noqa: F811
    """A local Ray instance with two workers: each shard a task, the summary and metrics those of one run."""
    pytest.importorskip("ray")
    from mednet.pipeline.cluster import predict_ray

    datalist = grading_cohorts["glioma_mri_classification"]
    cases = [c["case_id"] for c in json.loads(datalist.read_text())["training"]]
    one, clustered = tmp_path / "one", tmp_path / "ray"
    single = predict_cohort(datalist, "glioma", one, bundles=trained_bundles, partition="training",
                            progress=lambda line: None)  # fmt: skip
    assert single["failed"] == 0
    lines = []
    result = predict_ray(datalist, "glioma", clustered, workers=2, device="cpu", bundles=trained_bundles,
                         partition="training", progress=lines.append,
                         ray_init={"num_cpus": 2, "object_store_memory": 100 * 2**20})  # fmt: skip
    assert result["workers"] == 2 and result["shards"] == [len(cases[0::2]), len(cases[1::2])]
    assert (result["ok"], result["failed"], result["pending"], result["interrupted"]) == (len(cases), 0, 0, None)
    assert f"glioma: {len(cases)} cases in 2 shard(s) on Ray (1 CPU each)" in lines
    assert [s["case_id"] for s in result["case_status"]] == cases
    assert all(s["status"] == "ok" for s in result["case_status"])
    assert (clustered / "summary.csv").read_bytes() == (one / "summary.csv").read_bytes()
    headline = json.loads((one / "metrics.json").read_text())["headline"]
    assert json.loads((clustered / "metrics.json").read_text())["headline"] == headline
    assert (clustered / "predict.shard-1-of-2.log").is_file() and (clustered / "predict.shard-2-of-2.log").is_file()
    assert [r["case_id"] for r in _rows(clustered / "summary.csv")] == cases


def test_ray_refusals_before_any_work(trained_bundles, grading_cohorts, tmp_path, monkeypatch, capsys):  # noqa: F811
    """--ray with --shard, and --ray without Ray installed: said in one line, exit code 2, nothing written."""
    datalist = grading_cohorts["glioma_mri_classification"]
    args = ["predict", "--disease", "glioma", "--input", str(datalist), "--bundles", str(trained_bundles),
            "--out", str(tmp_path / "out")]  # fmt: skip
    assert main([*args, "--ray", "--shard", "1/2"]) == 2
    assert "--ray makes its own shards: drop --shard" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main([*args, "--ray"]) == 2
    assert 'needs Ray, an optional extra: pip install "mednet[ray]"' in capsys.readouterr().err
    assert not (tmp_path / "out" / "summary.csv").exists()
