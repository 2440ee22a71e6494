"""``mednet predict`` under ``torchrun``: every rank takes its own share of the cohort, unasked.

Two CPU processes (``--standalone --nproc_per_node=2``) write into one output folder; the
last rank to finish writes the summary, which is byte for byte the summary of one plain
run of the same cohort.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mednet.pipeline import predict_cohort
from tests.bundles.test_predict import trained_bundles  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.bundle, pytest.mark.slow]


def test_torchrun_ranks_share_a_cohort_and_write_one_runs_summary(trained_bundles, grading_cohorts, tmp_path):  # noqa: F811
    datalist = grading_cohorts["glioma_mri_classification"]
    cases = [c["case_id"] for c in json.loads(datalist.read_text())["testing"]]
    one, ranks = tmp_path / "one", tmp_path / "ranks"
    assert predict_cohort(datalist, "glioma", one, bundles=trained_bundles, progress=lambda line: None)["failed"] == 0
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "mednet.cli.main", "predict", "--disease", "glioma", "--input", str(datalist),
               "--bundles", str(trained_bundles), "--out", str(ranks), "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # each rank took its own share (its own log), unasked
    output = result.stdout + result.stderr
    for k in (1, 2):
        assert (ranks / f"predict.shard-{k}-of-2.log").is_file()
        assert f"{len(cases[k - 1 :: 2])} cases of shard {k}/2 done" in output
    assert (ranks / "summary.csv").read_bytes() == (one / "summary.csv").read_bytes()
    assert json.loads((ranks / "metrics.json").read_text())["headline"] == json.loads(
        (one / "metrics.json").read_text())["headline"]  # fmt: skip
