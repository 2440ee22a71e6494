"""From slice probabilities to one probability per patient (and sequence).

A 2D grading network scores each of a patient's selected slices; the patient's figure is
one aggregate of them. Patient-level figures are the primary result: slices of one patient
are not independent, so slice-level metrics are only ever secondary.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

import numpy as np

from mednet.options import choose

__all__ = ["AGGREGATION_METHODS", "aggregate", "patient_probabilities"]

#: Names accepted by :func:`aggregate`.
AGGREGATION_METHODS = ("mean", "median", "max", "vote", "logit_mean")

_CLIP = 1e-7


def _method(method: str) -> str:
    return choose(method, AGGREGATION_METHODS, "aggregation method")


def aggregate(probabilities: Sequence[float] | np.ndarray, method: str = "mean") -> float | np.ndarray:
    """One probability from a patient's slice probabilities.

    Binary, ``probabilities`` of shape ``(N,)`` (or ``(N, 1)``), the positive class's probability
    per slice:

    * ``"mean"``, ``"median"``, ``"max"``: of the slice probabilities;
    * ``"vote"``: the fraction of slices with probability >= 0.5 (a majority vote is this >= 0.5);
    * ``"logit_mean"``: the mean in logit space, mapped back by the sigmoid (probabilities
      are clipped to ``[1e-7, 1 - 1e-7]`` first), i.e. the geometric mean of the odds.

    Multi-class, ``(N, C)`` with one probability per class per slice: ``"mean"``,
    ``"median"`` and ``"max"`` are taken per class and renormalised to sum to 1; ``"vote"``
    is the fraction of slices whose most probable class (lowest index on ties) is each class;
    ``"logit_mean"`` is the mean of the log-probabilities renormalised by a softmax (the
    normalised geometric mean; for ``C = 2`` it equals the binary logit mean).

    Args:
        probabilities: ``(N,)`` or ``(N, C)`` probabilities in ``[0, 1]``.
        method: one of :data:`AGGREGATION_METHODS`.

    Returns:
        A float (binary) or a ``(C,)`` array summing to 1 (multi-class).

    Raises:
        ValueError: unknown method (with the closest name), no slices, or values that are
            not finite probabilities.
    """
    method = _method(method)
    p = np.asarray(probabilities, dtype=float)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim not in (1, 2) or p.shape[0] == 0 or p.size == 0:
        raise ValueError(f"need (N,) or (N, C) probabilities with N >= 1, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("probabilities must be finite and within [0, 1]")
    if p.ndim == 1:
        if method == "mean":
            return float(p.mean())
        if method == "median":
            return float(np.median(p))
        if method == "max":
            return float(p.max())
        if method == "vote":
            return float(np.mean(p >= 0.5))
        logit = np.log(np.clip(p, _CLIP, 1 - _CLIP)) - np.log1p(-np.clip(p, _CLIP, 1 - _CLIP))
        return float(1 / (1 + np.exp(-logit.mean())))
    if method == "vote":
        return np.bincount(p.argmax(axis=1), minlength=p.shape[1]) / p.shape[0]
    if method == "logit_mean":
        log = np.log(np.clip(p, _CLIP, 1.0)).mean(axis=0)
        out = np.exp(log - log.max())
        return out / out.sum()
    out = {"mean": np.mean, "median": np.median, "max": np.max}[method](p, axis=0)
    total = out.sum()
    return out / total if total > 0 else np.full(p.shape[1], 1 / p.shape[1])


def patient_probabilities(
    rows: Iterable[dict], key: str = "probability", group: str = "patient_id", method: str = "mean"
) -> dict[Hashable, float | np.ndarray]:
    """Slice rows to one aggregated probability per patient, or per patient and sequence.

    Args:
        rows: one dict per slice with at least ``group`` and ``key`` (a float, or a ``(C,)``
            sequence for multi-class). When the rows carry a ``"sequence"`` (e.g. ``"T1"``,
            ``"FLAIR"``) every row must, and slices are grouped by ``(patient, sequence)``.
        key: the probability's field.
        group: the patient's field.
        method: see :func:`aggregate`.

    Returns:
        ``{patient: probability}`` or ``{(patient, sequence): probability}``, in the order the
        groups first appear.

    Raises:
        ValueError: a row lacks a field, only some rows have a sequence, or :func:`aggregate` refuses.
    """
    method = _method(method)
    groups: dict[Hashable, list] = {}
    with_sequence = None
    for i, row in enumerate(rows):
        missing = [name for name in (group, key) if name not in row]
        if missing:
            raise ValueError(f"row {i} lacks {', '.join(map(repr, missing))}")
        has = "sequence" in row
        if with_sequence is None:
            with_sequence = has
        elif has != with_sequence:
            raise ValueError(f"row {i}: either every row names its 'sequence' or none does")
        name = (row[group], row["sequence"]) if has else row[group]
        groups.setdefault(name, []).append(row[key])
    return {name: aggregate(values, method) for name, values in groups.items()}
