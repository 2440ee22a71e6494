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

__all__ = ["bootstrap_ci", "bootstrap_cis", "bootstrap_resamples", "format_ci", "mean_ci"]

#: Resampled row indices held at once (resamples per batch x rows), to bound memory.
_BATCH_ROWS = 1_000_000


def _check(n_boot: int, confidence: float) -> None:
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot: expected a whole number of resamples >= 1, found {n_boot!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a coverage in (0, 1), found {confidence!r}")


def _interval(draws: np.ndarray, low: float, high: float, confidence: float) -> tuple[float | None, float | None]:
    """One figure's interval: scipy's, or scipy's quantiles over the resamples where it is defined."""
    finite = draws[np.isfinite(draws)]
    if not finite.size:
        return None, None
    if finite.size < draws.size:
        tail = (1 - confidence) / 2
        return tuple(float(v) for v in stats.quantile(finite, np.array([tail, 1 - tail])))
    return float(low), float(high)


def bootstrap_resamples(
    n_rows: int,
    statistic: Callable[[np.ndarray], Mapping[Hashable, np.ndarray]],
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[Hashable, dict]:
    """Figures of ``n_rows`` rows with percentile bootstrap intervals, the statistic taking many resamples at once.

    The vectorised form of :func:`bootstrap_cis` (``scipy.stats.bootstrap`` with
    ``vectorized=True``): ``statistic`` gets a batch of resamples as row indices and returns
    every figure of every resample, so that a library that scores many problems in one call
    (e.g. scikit-learn on one column per resample) is called once per batch, not per resample.

    Args:
        n_rows: patients (rows); the resamples draw their indices ``0 .. n_rows - 1``.
        statistic: ``(B, n_rows)`` row indices, one resample per row -> ``{name: (B,)
            figures}``, NaN where a figure is undefined on a resample. It is also called on
            ``np.arange(n_rows)[None]`` (``B = 1``) for the figures' values.
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
    values = {name: float(np.asarray(v)[0]) for name, v in statistic(np.arange(n_rows)[None]).items()}
    out = {name: {"value": v, "ci_low": None, "ci_high": None, "n": n_rows} for name, v in values.items()}
    if n_rows < 2 or not values:
        return out
    names = list(values)

    def figures(index: np.ndarray, axis: int = -1) -> np.ndarray:
        computed = statistic(index)  # index: (B, n_rows), resamples along the first axis
        return np.stack([np.asarray(computed[name], dtype=float) for name in names])  # (k, B)

    with warnings.catch_warnings():
        # scipy warns when an interval comes out NaN; NaN resamples are left out below instead
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            (np.arange(n_rows),),
            figures,
            n_resamples=int(n_boot),
            batch=max(1, _BATCH_ROWS // n_rows),  # memory; the draws do not depend on it
            vectorized=True,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    low, high = result.confidence_interval
    for k, name in enumerate(names):
        interval = _interval(result.bootstrap_distribution[k], low[k], high[k], confidence)
        out[name]["ci_low"], out[name]["ci_high"] = interval
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
    have in common (e.g. the pooled lesion counts of every detection figure).

    Args:
        rows: one item per patient, resampled with replacement.
        statistic: list of rows -> ``{name: figure}`` (names: any hashable), the same names
            for every list (an empty one too, when ``rows`` is empty); NaN where a figure is
            undefined.
        n_boot: bootstrap resamples.
        confidence: interval coverage.
        seed: random seed of the resamples.

    Returns:
        As :func:`bootstrap_resamples`: ``{name: {"value", "ci_low", "ci_high", "n"}}``.

    Raises:
        ValueError: as :func:`bootstrap_resamples`.
    """
    rows = list(rows)
    if not rows:
        _check(n_boot, confidence)
        return {name: {"value": float(v), "ci_low": None, "ci_high": None, "n": 0} for name, v in statistic([]).items()}

    def each(index: np.ndarray) -> dict[Hashable, np.ndarray]:
        computed = [statistic([rows[i] for i in resample]) for resample in index]
        return {name: np.array([c[name] for c in computed], dtype=float) for name in computed[0]}

    return bootstrap_resamples(len(rows), each, n_boot=n_boot, confidence=confidence, seed=seed)


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


def format_ci(figure: Mapping | None, digits: int = 2) -> str:
    """A figure as ``value [low, high]`` (``-`` when there is none; no interval when it is undefined)."""
    if not figure or figure.get("value") is None:
        return "-"
    text = f"{figure['value']:.{digits}f}"
    if figure.get("ci_low") is not None and figure.get("ci_high") is not None:
        text += f" [{figure['ci_low']:.{digits}f}, {figure['ci_high']:.{digits}f}]"
    return text
