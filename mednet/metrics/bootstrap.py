"""Confidence intervals by bootstrap over patients."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["bootstrap_ci", "mean_ci"]


def bootstrap_ci(
    rows: Sequence,
    statistic: Callable[[Sequence], float],
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """A statistic with a percentile bootstrap confidence interval, resampling rows.

    Each row is one patient (or case), so that the interval reflects how many patients
    were tested, not how many slices or lesions: a statistic pooled over lesions (e.g.
    detection sensitivity) is recomputed on each resample of patients.

    Args:
        rows: one item per patient, passed (resampled, with replacement) to ``statistic``.
        statistic: computes the figure from a list of rows; may return NaN when a
            resample has nothing to measure (those resamples are skipped).
        n_boot: bootstrap resamples.
        confidence: interval coverage.
        seed: random seed.

    Returns:
        ``{"value", "ci_low", "ci_high", "n"}``; the interval is None when fewer than
        two rows or no resample gave a number.
    """
    rows = list(rows)
    value = float(statistic(rows)) if rows else float("nan")
    out = {"value": value, "ci_low": None, "ci_high": None, "n": len(rows)}
    if len(rows) < 2:
        return out
    rng = np.random.default_rng(seed)
    draws = np.array(
        [statistic([rows[i] for i in rng.integers(0, len(rows), len(rows))]) for _ in range(n_boot)], dtype=float
    )
    draws = draws[np.isfinite(draws)]
    if draws.size:
        tail = (1 - confidence) / 2 * 100
        out["ci_low"], out["ci_high"] = (float(v) for v in np.percentile(draws, [tail, 100 - tail]))
    return out


def mean_ci(values: Sequence[float], **kwargs) -> dict:
    """Mean of per-patient values (NaN ignored) with its bootstrap interval."""
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    return bootstrap_ci(finite, lambda rows: float(np.mean(rows)) if rows else float("nan"), **kwargs)
