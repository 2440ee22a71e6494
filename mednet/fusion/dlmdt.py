"""DL-MDT: paper A's "deep-learning multidisciplinary team" vote (SEEDS section A).

Each source gives a binary vote, 1 for the positive class (acoustic neuroma): a model
votes 1 when its probability is >= 0.5, a clinician's reading votes as given. The result
is the weighted sum of the votes, ``R = sum_i w_i * vote_i`` with weights summing to 1
(0.25 each for two models and two clinicians in the paper), and the diagnosis is positive
when ``R >= 0.5``: a 2-2 split of four equal votes is positive, as in the paper.

A missing source (a reading not given, a sequence not acquired) does not vote; the
weights of the sources present are renormalised to sum to 1, and the result says so
(``renormalised``, ``missing``) so that the report can show it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["DLMDTResult", "dl_mdt"]


@dataclass(frozen=True)
class DLMDTResult:
    """One case's DL-MDT decision.

    Attributes:
        score: ``R``, the weighted sum of the votes of the sources present, in ``[0, 1]``.
        positive: ``R >= threshold``.
        votes: source -> 1, 0, or None when the source is missing.
        weights: source -> weight used (renormalised over the sources present; 0 when missing).
        missing: the sources that did not vote.
        renormalised: whether weights were renormalised because sources were missing (weights
            given that do not sum to 1 are always scaled to do so; that is not flagged).
    """

    score: float
    positive: bool
    votes: dict[str, int | None]
    weights: dict[str, float]
    missing: list[str]
    renormalised: bool

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def _vote(value) -> int | None:
    """A reading as a vote: None / NaN / "" -> None; bools and 0/1 as they are."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer, float)) and float(value) in (0.0, 1.0):
        return int(value)
    raise ValueError(f"a DL-MDT reading must be 1 (positive), 0 (negative) or missing, found {value!r}")


def dl_mdt(
    model_probabilities: Mapping[str, float | None],
    readings: Mapping[str, int | bool | None] | None = None,
    weights: Mapping[str, float] | None = None,
    threshold: float = 0.5,
) -> DLMDTResult:
    """Paper A's weighted vote of models and clinicians for one case.

    Args:
        model_probabilities: model name (e.g. ``"t1c"``, ``"t2"``) -> probability of the
            positive class, or None when that model could not run.
        readings: clinician role (e.g. ``"radiology"``, ``"radiotherapy"``) -> 1, 0, or None
            when not given (see :func:`mednet.fusion.reading_votes` for class names).
        weights: source -> weight, for every model and reading named; default equal weights
            (0.25 each for two models and two readings, as in the paper). Renormalised over
            the sources present.
        threshold: positive when the weighted sum reaches it (paper: 0.5, ties positive).

    Returns:
        The :class:`DLMDTResult`.

    Raises:
        ValueError: a source both a model and a reading, a weight missing or negative, no
            source present, or a probability or reading that is not one.
    """
    readings = dict(readings or {})
    overlap = sorted(set(model_probabilities) & set(readings))
    if overlap:
        raise ValueError(f"DL-MDT: {overlap} named both as a model and as a clinician reading")
    votes: dict[str, int | None] = {}
    for name, p in model_probabilities.items():
        if p is None or (isinstance(p, float) and np.isnan(p)):
            votes[name] = None
        elif not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"DL-MDT: model {name!r} probability must lie in [0, 1], found {p}")
        else:
            votes[name] = int(float(p) >= 0.5)
    for role, value in readings.items():
        try:
            votes[role] = _vote(value)
        except ValueError as error:
            raise ValueError(f"DL-MDT: reading {role!r}: {error}") from None
    sources = list(votes)
    given = dict.fromkeys(sources, 1.0) if weights is None else dict(weights)
    lacking = [s for s in sources if s not in given]
    if lacking:
        raise ValueError(f"DL-MDT: no weight for {lacking}; weights given for {sorted(given)}")
    if any(float(given[s]) < 0 for s in sources):
        raise ValueError(f"DL-MDT: weights must be >= 0, found {given}")
    present = [s for s in sources if votes[s] is not None]
    missing = [s for s in sources if votes[s] is None]
    total = sum(float(given[s]) for s in present)
    if not present or total <= 0:
        raise ValueError(f"DL-MDT: no source with a vote and a positive weight (missing: {missing})")
    used = {s: (float(given[s]) / total if s in present else 0.0) for s in sources}
    score = float(sum(used[s] * votes[s] for s in present))
    # the sum of four 0.25s can land a hair off 0.5: compare with a tolerance so that ties stay ties
    positive = score >= threshold - 1e-9
    return DLMDTResult(score, bool(positive), votes, used, missing, bool(missing))
