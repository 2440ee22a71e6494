"""Choosing the lesion post-processing (``lesion_threshold``, ``min_lesion_mm3``) on validation patients.

One rule for every segmentation bundle, whoever runs it (``scripts/benchmark_localisation.py
--tune`` after training, ``scripts/tune_postprocessing.py`` for shipped weights): every pair of
:data:`LESION_THRESHOLDS` x :data:`MIN_LESION_MM3` is scored on validation patients, never on
the test; :func:`choose_postprocessing` picks one.

Example:
    >>> choose_postprocessing([
    ...     {"lesion_threshold": 0.3, "min_lesion_mm3": 100.0, "sensitivity": 0.84,
    ...      "false_positives_per_scan": 0.43, "dice_lesions": 0.650},
    ...     {"lesion_threshold": 0.4, "min_lesion_mm3": 100.0, "sensitivity": 0.84,
    ...      "false_positives_per_scan": 0.23, "dice_lesions": 0.648},
    ... ])
    {'lesion_threshold': 0.4, 'min_lesion_mm3': 100.0}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["LESION_THRESHOLDS", "MAX_FALSE_POSITIVES_PER_SCAN", "MIN_LESION_MM3", "choose_postprocessing"]

#: Summed lesion probabilities tried (``None``: the arg-max; under 0.5 faint lesion edges are
#: mostly added, above it unsure ones trimmed: :func:`mednet.localisation.decide_labels`).
LESION_THRESHOLDS = (None, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2)
#: Smallest lesion kept (mm^3).
MIN_LESION_MM3 = (50.0, 100.0, 200.0, 400.0)
#: The bundles' detection target: false positives per scan at most this.
MAX_FALSE_POSITIVES_PER_SCAN = 0.3


def choose_postprocessing(trials: Sequence[Mapping], max_false_positives: float = MAX_FALSE_POSITIVES_PER_SCAN) -> dict:
    """The chosen ``{"lesion_threshold", "min_lesion_mm3"}`` of scored ``trials``.

    Among the trials with at most ``max_false_positives`` false positives per scan, the one
    with the highest lesion sensitivity, then the fewest false positives, then the highest
    lesion Dice; with none under it, the fewest false positives, then the highest sensitivity.

    Args:
        trials: one per setting: ``lesion_threshold``, ``min_lesion_mm3``, ``sensitivity``,
            ``false_positives_per_scan``, ``dice_lesions`` (validation means).
        max_false_positives: the false positives per scan allowed.

    Raises:
        ValueError: no trial.
    """
    if not trials:
        raise ValueError("choose_postprocessing: expected at least one scored setting, found none")
    allowed = [t for t in trials if t["false_positives_per_scan"] <= max_false_positives]
    if allowed:
        best = max(allowed, key=lambda t: (t["sensitivity"], -t["false_positives_per_scan"], t["dice_lesions"]))
    else:
        best = min(trials, key=lambda t: (t["false_positives_per_scan"], -t["sensitivity"]))
    return {"lesion_threshold": best["lesion_threshold"], "min_lesion_mm3": best["min_lesion_mm3"]}
