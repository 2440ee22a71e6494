"""Confidence intervals by percentile bootstrap over patients (:func:`scipy.stats.bootstrap`).

Each row is one patient (or case): the resamples draw whole rows with replacement, so an
interval reflects how many patients were tested, not how many slices or lesions. A figure
that is undefined on a resample (NaN: an AUC on a resample holding one class, a sensitivity
without a positive patient) leaves that resample out of its interval; the interval is
scipy's percentile interval over the remaining resamples.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np
from scipy import stats

__all__ = ["bootstrap_ci", "bootstrap_cis", "mean_ci"]


def _check(n_boot: int, confidence: float) -> None:
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot: expected a whole number of resamples >= 1, found {n_boot!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a coverage in (0, 1), found {confidence!r}")


def _intervals(
    rows: list, statistic: Callable[[list], np.ndarray], n_boot: int, confidence: float, seed: int
) -> list[tuple[float | None, float | None]]:
    """Percentile interval of each of the ``k`` figures ``statistic`` returns, resampling ``rows``.

    Args:
        rows: at least two rows.
        statistic: list of rows -> ``(k,)`` figures, NaN where undefined.
        n_boot: resamples.
        confidence: coverage.
        seed: seed of the resamples.

    Returns:
        ``k`` pairs ``(low, high)``; ``(None, None)`` where no resample gave a number.
    """

    def on_rows(index: np.ndarray) -> np.ndarray:
        return np.asarray(statistic([rows[i] for i in index]), dtype=float)

    with warnings.catch_warnings():
        # scipy warns when an interval comes out NaN; NaN resamples are left out below instead
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            (np.arange(len(rows)),),
            on_rows,
            n_resamples=int(n_boot),
            vectorized=False,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    draws = np.atleast_2d(result.bootstrap_distribution)  # (k, n_boot)
    low = np.atleast_1d(result.confidence_interval.low).astype(float)
    high = np.atleast_1d(result.confidence_interval.high).astype(float)
    out = []
    for k, figure in enumerate(draws):
        finite = figure[np.isfinite(figure)]
        if not finite.size:
            out.append((None, None))
        elif finite.size < figure.size:  # scipy's percentile interval over the defined resamples
            tail = (1 - confidence) / 2
            out.append(tuple(float(v) for v in stats.quantile(finite, np.array([tail, 1 - tail]))))
        else:
            out.append((float(low[k]), float(high[k])))
    return out


def bootstrap_cis(
    rows: Sequence,
    statistic: Callable[[list], Mapping[Hashable, float]],
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[Hashable, dict]:
    """Several figures of the same rows, each with a percentile bootstrap interval from the same resamples.

    Computing every figure of a resample in one call of ``statistic`` shares the work they
    have in common (e.g. one confusion matrix for sensitivity, specificity and precision).

    Args:
        rows: one item per patient, resampled with replacement.
        statistic: list of rows -> ``{name: figure}`` (names: any hashable), the same names
            for every list (an empty one too, when ``rows`` is empty); NaN where a figure is
            undefined.
        n_boot: bootstrap resamples.
        confidence: interval coverage.
        seed: random seed of the resamples.

    Returns:
        ``{name: {"value", "ci_low", "ci_high", "n"}}`` in ``statistic``'s order; an interval
        is None when there are fewer than two rows or no resample gave that figure a number.

    Raises:
        ValueError: ``n_boot`` below 1 or ``confidence`` outside (0, 1).
    """
    _check(n_boot, confidence)
    rows = list(rows)
    values = {name: float(v) for name, v in statistic(rows).items()}
    out = {name: {"value": v, "ci_low": None, "ci_high": None, "n": len(rows)} for name, v in values.items()}
    if len(rows) < 2 or not values:
        return out
    names = list(values)

    def figures(sample: list) -> np.ndarray:
        figure = statistic(sample)
        return np.array([figure[name] for name in names], dtype=float)

    for name, (low, high) in zip(names, _intervals(rows, figures, n_boot, confidence, seed), strict=True):
        out[name]["ci_low"], out[name]["ci_high"] = low, high
    return out


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
        ``{"value", "ci_low", "ci_high", "n"}``; the value is NaN without rows, and the
        interval is None when fewer than two rows or no resample gave a number.

    Raises:
        ValueError: ``n_boot`` below 1 or ``confidence`` outside (0, 1).
    """
    _check(n_boot, confidence)
    rows = list(rows)
    if not rows:
        return {"value": float("nan"), "ci_low": None, "ci_high": None, "n": 0}
    return bootstrap_cis(
        rows, lambda sample: {"value": statistic(sample)}, n_boot=n_boot, confidence=confidence, seed=seed
    )["value"]


def mean_ci(values: Sequence[float], **kwargs) -> dict:
    """Mean of per-patient values (NaN and None ignored) with its bootstrap interval.

    Args:
        values: one figure per patient.
        kwargs: options of :func:`bootstrap_ci`.

    Returns:
        :func:`bootstrap_ci`'s dict; ``n`` counts the finite values.
    """
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    return bootstrap_ci(finite, lambda rows: float(np.mean(rows)) if rows else float("nan"), **kwargs)
