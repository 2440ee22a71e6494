"""Percentile bootstrap over patients on cases whose interval is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mednet.metrics import bootstrap_ci, bootstrap_cis, bootstrap_resamples, mean_ci


def test_mean_of_five_positives_in_ten_patients():
    # a resample's mean is Binomial(10, 1/2) / 10: P(<= 0.1) = 1.1% and P(<= 0.2) = 5.5%, so the
    # 2.5th percentile of 2000 resamples is 0.2 (and the 97.5th 0.8 by symmetry)
    out = bootstrap_ci([0.0] * 5 + [1.0] * 5, np.mean, n_boot=2000, seed=3)
    assert out == {"value": 0.5, "ci_low": pytest.approx(0.2), "ci_high": pytest.approx(0.8), "n": 10}


def test_undefined_resamples_are_left_out():
    # the share of positives, undefined unless both classes are drawn: of four patients, two
    # positive, the defined resamples hold 1, 2 or 3 positives (P 4/14, 6/14, 4/14), so the
    # interval is [0.25, 0.75]; counting the NaN resamples as 0 or 1 would widen it to [0, 1]
    def share(rows):
        return float(np.mean(rows)) if 0 < sum(rows) < len(rows) else float("nan")

    out = bootstrap_ci([0, 0, 1, 1], share, n_boot=2000, seed=0)
    assert (out["value"], out["ci_low"], out["ci_high"]) == (0.5, pytest.approx(0.25), pytest.approx(0.75))
    plain = bootstrap_ci([0, 0, 1, 1], np.mean, n_boot=2000, seed=0)
    assert (plain["ci_low"], plain["ci_high"]) == (0.0, 1.0)
    never = bootstrap_ci([1, 1, 1], share, n_boot=50)  # one class: no resample is defined
    assert np.isnan(never["value"]) and never["ci_low"] is None and never["ci_high"] is None


def test_interval_is_scipys_percentile_interval_over_rows(rng):
    values = rng.normal(size=12)
    out = mean_ci(values, n_boot=500, seed=7, confidence=0.9)
    scipy = stats.bootstrap(
        (values,), np.mean, n_resamples=500, confidence_level=0.9, method="percentile", rng=np.random.default_rng(7)
    )
    assert out["ci_low"] == pytest.approx(scipy.confidence_interval.low)
    assert out["ci_high"] == pytest.approx(scipy.confidence_interval.high)
    assert out["value"] == pytest.approx(values.mean()) and out["n"] == 12
    assert mean_ci(values, n_boot=500, seed=8) != mean_ci(values, n_boot=500, seed=7)


def test_rows_are_resampled_whole():
    # each row is one patient with two lesions: a statistic over the pooled lesions sees pairs
    rows = [(1, 1), (0, 0), (1, 1), (0, 0), (1, 0)]
    seen = []

    def pooled(sample):
        seen.append(len(sample))
        lesions = [lesion for row in sample for lesion in row]
        return float(np.mean(lesions))

    out = bootstrap_ci(rows, pooled, n_boot=100)
    assert out["value"] == pytest.approx(0.5) and out["n"] == 5
    assert set(seen) == {5}  # every resample draws five patients, not ten lesions


def test_several_figures_share_the_resamples():
    values = [0.2, 0.9, 0.4, 0.7, 0.1, 0.8]
    both = bootstrap_cis(values, lambda rows: {"mean": np.mean(rows), "double": 2 * np.mean(rows)}, n_boot=300)
    assert list(both) == ["mean", "double"]
    assert both["double"]["ci_low"] == pytest.approx(2 * both["mean"]["ci_low"])
    assert both["double"]["ci_high"] == pytest.approx(2 * both["mean"]["ci_high"])
    assert both["mean"] == bootstrap_ci(values, np.mean, n_boot=300)


def test_a_statistic_of_many_resamples_at_once_gives_the_same_intervals():
    values = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    batches = []

    def shares(index):  # (B, n) row indices -> every resample's figures at once
        batches.append(index.shape)
        drawn = values[index]
        positives = drawn.sum(axis=1)
        defined = (positives > 0) & (positives < index.shape[1])
        return {"share": np.where(defined, drawn.mean(axis=1), np.nan), "mean": drawn.mean(axis=1)}

    def one(rows):
        return {"share": float(np.mean(rows)) if 0 < sum(rows) < len(rows) else float("nan"), "mean": np.mean(rows)}

    together = bootstrap_resamples(len(values), shares, n_boot=400, seed=2)
    assert together == bootstrap_cis(list(values), one, n_boot=400, seed=2)
    assert batches[0] == (1, 6) and sum(b[0] for b in batches[1:]) == 400  # the values, then the resamples


def test_degenerate_inputs_and_errors():
    assert bootstrap_ci([0.7], np.mean) == {"value": 0.7, "ci_low": None, "ci_high": None, "n": 1}
    empty = bootstrap_ci([], np.mean)
    assert np.isnan(empty["value"]) and empty["ci_low"] is None and empty["n"] == 0
    assert mean_ci([0.5, float("nan"), None, 0.7], n_boot=50)["n"] == 2
    with pytest.raises(ValueError, match=r"n_boot: expected a whole number of resamples >= 1, found 0"):
        bootstrap_ci([1.0, 2.0], np.mean, n_boot=0)
    with pytest.raises(ValueError, match=r"confidence: expected a coverage in \(0, 1\), found 95"):
        mean_ci([1.0, 2.0], confidence=95)
