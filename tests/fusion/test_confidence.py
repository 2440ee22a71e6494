"""Fitting the least confidence a call needs on validation cases."""

from __future__ import annotations

import numpy as np
import pytest

from mednet.fusion import CaseFusion
from mednet.fusion.confidence import fit_min_confidence


def test_the_least_threshold_whose_calls_reach_the_target():
    confidence = [0.40, 0.45, 0.52, 0.61, 0.70, 0.80, 0.90, 0.95]
    correct = [False, True, False, False, True, True, True, True]
    fit = fit_min_confidence(confidence, correct, target=0.9)
    assert fit["reached"] and fit["min_confidence"] == 0.70  # 0.61 would call 4 of 5 right: 0.8
    assert (fit["called"], fit["coverage"], fit["accuracy_of_calls"]) == (4, 0.5, 1.0)
    assert [row["called"] for row in fit["curve"]] == [8, 7, 6, 5, 4, 3, 2, 1]
    assert fit_min_confidence(confidence, correct, target=0.6)["min_confidence"] == 0.0  # all: 5 of 8 right
    assert fit_min_confidence(confidence, correct, target=0.65)["min_confidence"] == 0.45  # 5 of 7 right
    assert fit_min_confidence(confidence, correct, target=0.65, floor=0.5)["min_confidence"] == 0.5  # 4 of 6
    assert fit_min_confidence(confidence, correct, target=0.7)["min_confidence"] == 0.45
    assert fit_min_confidence(confidence, correct, target=0.7, floor=0.5)["min_confidence"] == 0.61  # 4 of 5


def test_a_threshold_calls_the_case_it_comes_from_as_case_fusion_does():
    rng = np.random.default_rng(3)
    confidence = rng.uniform(0.34, 1.0, 200)
    correct = rng.uniform(size=200) < confidence
    fit = fit_min_confidence(confidence, correct, target=0.85)
    fusion = CaseFusion(["a", "b", "c"], "mean", min_confidence=fit["min_confidence"])
    called = 0
    for p in confidence:
        rest = (1 - p) / 2
        decided = fusion({"t2w": [p, rest, rest]})
        called += decided["call"] == "a"
    assert called == fit["called"] and fit["accuracy_of_calls"] >= 0.85


def test_an_unreachable_target_and_bad_inputs():
    fit = fit_min_confidence([0.9, 0.8], [False, False], target=0.5)
    assert not fit["reached"] and fit["min_confidence"] is None and fit["called"] == 0
    for args in (([], []), ([0.5], [True, False]), ([1.5], [True]), ([float("nan")], [True])):
        with pytest.raises(ValueError):
            fit_min_confidence(*args)
    with pytest.raises(ValueError, match="target"):
        fit_min_confidence([0.5], [True], target=0)
