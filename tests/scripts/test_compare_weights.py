"""scripts/compare_weights.py: the same cases through the shipped and the candidate weights, paired per case."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mednet.pipeline.diseases import disease_spec

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
import compare_weights  # scripts/ is not a package: from its folder


@pytest.mark.slow  # two small cohorts, each through the glioma pipeline twice
def test_the_shipped_weights_as_candidate_differ_by_nothing_and_a_changed_one_by_something(tmp_path):
    spec = disease_spec("glioma")
    same = {spec.localisation.name: str(spec.localisation.weights)}
    result = compare_weights.compare("glioma", same, 2, 5, "moderate", ["head"], "cpu", tmp_path / "a", size="small",
                                     real=False)  # fmt: skip
    assert set(result["sets"]) == {"default", "randomised (moderate+head)"}
    assert "moderate+head" not in compare_weights.PRESETS  # registered only while its cohort was drawn
    for figures in result["sets"].values():
        assert figures["shipped"] == figures["candidate"] and figures["shipped"]["failed"] == 0
        paired = figures["paired"]["dice_lesions: candidate - shipped"]
        assert paired["n"] == 2 and paired["value"] == 0.0
    assert result["real"] == {}
    import torch

    state = torch.load(spec.localisation.weights, weights_only=True)
    noisy = tmp_path / "noisy.pt"
    torch.save({k: v * 0.8 if v.is_floating_point() else v for k, v in state.items()}, noisy)
    changed = compare_weights.compare("glioma", {spec.localisation.name: str(noisy)}, 2, 5, "moderate", [], "cpu",
                                      tmp_path / "b", size="small", real=False)  # fmt: skip
    assert changed["sets"]["default"]["paired"]["dice_lesions: candidate - shipped"]["value"] != 0.0


def test_kept_work_reuses_a_cohort_and_its_predictions_folder_only_for_the_same_settings(tmp_path):
    """--work: the same settings find the same cohort and predictions folder; another seed gets new ones."""
    first = compare_weights._cohorts("cpa", 2, 5, "moderate", [], tmp_path, "small")
    folders = {name: compare_weights._predictions(tmp_path, "shipped", name, d) for name, d in first.items()}
    stamp = (first["default"].parent / "cohort.json").stat().st_mtime_ns
    again = compare_weights._cohorts("cpa", 2, 5, "moderate", [], tmp_path, "small")
    assert again == first and (first["default"].parent / "cohort.json").stat().st_mtime_ns == stamp
    assert {name: compare_weights._predictions(tmp_path, "shipped", name, d) for name, d in again.items()} == folders
    other = compare_weights._cohorts("cpa", 2, 6, "moderate", [], tmp_path, "small")  # another seed, same folders
    moved = {name: compare_weights._predictions(tmp_path, "shipped", name, d) for name, d in other.items()}
    assert all(moved[name] != folders[name] for name in folders)
