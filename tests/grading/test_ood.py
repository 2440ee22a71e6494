"""FeatureOOD: a case far from the training cases' features is recognised; fitting, saving, loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mednet.grading import FeatureOOD, penultimate_features
from mednet.networks import build_multisequence


def test_far_cases_score_above_one_near_cases_below(tmp_path):
    rng = np.random.default_rng(0)
    train = {"t1": rng.normal(0, 1, (200, 8)), "t2": rng.normal(5, 2, (200, 8))}
    ood = FeatureOOD.fit(train, quantile=0.99, weights_sha256="abc")
    assert ood.cases == 200 and set(ood.branches) == {"t1", "t2"}
    inside = ood.ratios({"t1": np.zeros(8), "t2": np.full(8, 5.0)})
    assert all(r < 0.5 for r in inside.values())
    far = ood.ratios({"t1": np.full(8, 6.0), "t2": np.full(8, 5.0)})
    assert far["t1"] > 1.5 and far["t2"] < 0.5
    loaded = FeatureOOD.load(ood.save(tmp_path / "ood.json"))
    assert loaded.ratios({"t1": np.full(8, 6.0)}) == pytest.approx({"t1": far["t1"]})
    assert loaded.weights_sha256 == "abc"
    assert ood.ratios({"flair": np.zeros(8)}) == {}  # a branch it was not fitted for is left out


def test_few_training_cases_in_many_dimensions_keep_false_alarms_near_nominal():
    """84 training cases of 32-dimensional features (a grading bundle's case): fresh ordinary cases
    are rarely called unfamiliar (an in-sample threshold called about a fifth of them so)."""
    rng = np.random.default_rng(1)
    mixing = rng.normal(0, 1, (32, 32))
    train = rng.normal(0, 1, (84, 32)) @ mixing
    ood = FeatureOOD.fit({"t1": train}, quantile=0.99)
    fresh = rng.normal(0, 1, (3000, 32)) @ mixing
    exceed = float(np.mean([ood.ratios({"t1": x})["t1"] > 1 for x in fresh]))
    assert exceed < 0.05, exceed
    shifted = fresh[:200] + 2.0 * train.std(axis=0)  # every feature two standard deviations off
    assert float(np.mean([ood.ratios({"t1": x})["t1"] > 1 for x in shifted])) > 0.9


def test_fit_refuses_too_few_cases_and_bad_quantiles():
    with pytest.raises(ValueError, match="at least 10 cases"):
        FeatureOOD.fit({"t1": np.zeros((3, 4))})
    with pytest.raises(ValueError, match="quantile"):
        FeatureOOD.fit({"t1": np.zeros((10, 4))}, quantile=1.0)


def test_penultimate_features_are_the_last_linear_layers_input():
    torch.manual_seed(0)
    net = build_multisequence(["t1", "t2"], "svgg", 2, 1, 1, channels=[4], hidden=6).eval()
    x = {"t1": torch.randn(3, 1, 16, 16), "t2": torch.randn(3, 1, 16, 16)}
    outputs, features = penultimate_features(net, x)
    assert set(features) == {"t1", "t2"} and features["t1"].shape == (3, 6)
    last = [m for m in net.branches["t1"].modules() if isinstance(m, nn.Linear)][-1]
    torch.testing.assert_close(last(features["t1"]), outputs["logits"]["t1"])
    assert not any(m._forward_hooks for m in net.modules())  # hooks removed
