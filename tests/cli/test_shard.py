"""``--shard``: which share of a cohort a process takes, by hand, under torchrun or in a SLURM array."""

from __future__ import annotations

import pytest

from mednet.pipeline.summary import parse_shard, shard_cases


def test_shards_partition_the_cohort_interleaved():
    cases = [{"case_id": f"C{i}"} for i in range(7)]
    shares = [shard_cases(cases, (k, 3)) for k in (1, 2, 3)]
    assert [[c["case_id"] for c in share] for share in shares] == [["C0", "C3", "C6"], ["C1", "C4"], ["C2", "C5"]]
    assert sorted(c["case_id"] for share in shares for c in share) == sorted(c["case_id"] for c in cases)
    assert shard_cases(cases, (1, 1)) == cases and shard_cases(cases[:1], (2, 2)) == []


def test_parse_shard_by_hand_torchrun_and_slurm():
    assert parse_shard("2/4", {}) == (2, 4) and parse_shard(" 1/1 ", {}) == (1, 1)
    assert parse_shard(None, {}) == (1, 1)
    assert parse_shard(None, {"RANK": "2", "WORLD_SIZE": "3"}) == (3, 3)  # every torchrun rank its own share
    assert parse_shard(None, {"RANK": "0", "WORLD_SIZE": "1"}) == (1, 1)
    assert parse_shard("auto", {"RANK": "0", "WORLD_SIZE": "2"}) == (1, 2)
    slurm = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_COUNT": "3"}
    assert parse_shard("auto", slurm) == (2, 3)  # --array=4-6: the second task


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "a/b", "2", "1/2/3", "-1/2", ""])
def test_parse_shard_refuses_nonsense(text):
    with pytest.raises(ValueError, match="K/N"):
        parse_shard(text, {})


def test_parse_shard_auto_needs_a_launcher():
    with pytest.raises(ValueError, match="torchrun"):
        parse_shard("auto", {})
