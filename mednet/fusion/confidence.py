"""The least confidence a call needs, fitted on validation cases as the pipeline predicts them.

:class:`~mednet.fusion.CaseFusion` leaves a call indeterminate when the fused probability
of the decided class is below ``min_confidence``. Fitted on the true lesion maps, the
threshold trusts the grading more than the pipeline deserves: a localiser that misses or
adds a lesion hands the grading another region, and the grading may call it confidently.
:func:`fit_min_confidence` fits it on what the whole pipeline gives (the localiser's
predicted maps, then grading and fusion) for validation cases: the least threshold whose
confident calls are right at least ``target`` of the time (selective classification:
accuracy of the calls against the share of cases called).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["fit_min_confidence"]


def fit_min_confidence(confidence: Sequence[float], correct: Sequence[bool], target: float = 0.9,
                       floor: float = 0.0) -> dict:  # fmt: skip
    """The least threshold at which the calls made are right at least ``target`` of the time.

    A case is called when its confidence is at least the threshold. The candidates are the
    cases' own confidences rounded down to 4 decimals (and ``floor``); the threshold chosen
    is the least candidate ``t >= floor`` whose calls (confidence ``>= t``) have an accuracy
    of at least ``target``.

    Args:
        confidence: ``(N,)`` each validation case's fused probability of the class decided.
        correct: ``(N,)`` whether that class is the case's true class.
        target: the accuracy the calls must reach, in ``(0, 1]``.
        floor: the least threshold allowed (e.g. the current one, or ``1 / classes``).

    Returns:
        ``{"min_confidence", "reached", "target", "n", "called", "coverage",
        "accuracy_of_calls", "curve"}``: ``reached`` False when no threshold reaches the
        target (``min_confidence`` is then None); ``curve`` lists, for each set of cases called,
        its least threshold as ``{"threshold", "called", "accuracy_of_calls"}``, ascending.

    Raises:
        ValueError: mismatched or empty inputs, confidences outside [0, 1], ``target``
            outside (0, 1].
    """
    p = np.asarray(confidence, dtype=float)
    right = np.asarray(correct, dtype=bool)
    if p.ndim != 1 or p.shape != right.shape or not len(p):
        raise ValueError(f"confidence and correct: expected two (N,) arrays with N >= 1, found {p.shape} "
                         f"and {right.shape}")  # fmt: skip
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("confidence: expected probabilities in [0, 1]")
    if not 0 < target <= 1:
        raise ValueError(f"target: expected an accuracy in (0, 1], found {target}")
    # thresholds of 4 decimals, rounded down: the case a threshold comes from is called by it
    candidates = np.unique(np.floor(np.concatenate([[float(floor)], p[p >= floor]]) * 1e4) / 1e4)
    curve = []
    for t in candidates[candidates >= floor]:
        called = p >= t
        if called.any() and (not curve or curve[-1]["called"] > called.sum()):  # the least threshold of each set
            curve.append({"threshold": float(t), "called": int(called.sum()),
                          "accuracy_of_calls": round(float(right[called].mean()), 4)})  # fmt: skip
    chosen = next((row for row in curve if row["accuracy_of_calls"] >= target), None)
    return {
        "min_confidence": chosen["threshold"] if chosen else None,
        "reached": chosen is not None,
        "target": float(target),
        "n": len(p),
        "called": chosen["called"] if chosen else 0,
        "coverage": round(chosen["called"] / len(p), 4) if chosen else 0.0,
        "accuracy_of_calls": chosen["accuracy_of_calls"] if chosen else None,
        "curve": curve,
    }
