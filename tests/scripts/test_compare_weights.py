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
