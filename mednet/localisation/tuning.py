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

import math
from collections.abc import Mapping, Sequence

__all__ = ["LESION_THRESHOLDS", "MAX_FALSE_POSITIVES_PER_SCAN", "MIN_LESION_MM3", "choose_postprocessing"]

#: Summed lesion probabilities tried (``None``: the arg-max; under 0.5 faint lesion edges are
#: mostly added, above it unsure ones trimmed: :func:`mednet.localisation.decide_labels`).
LESION_THRESHOLDS = (None, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2)
#: Smallest lesion kept (mm^3).
MIN_LESION_MM3 = (50.0, 100.0, 200.0, 400.0)
#: The bundles' detection target: false positives per scan at most this.
MAX_FALSE_POSITIVES_PER_SCAN = 0.3


def choose_postprocessing(
    trials: Sequence[Mapping],
    max_false_positives: float = MAX_FALSE_POSITIVES_PER_SCAN,
    max_floor_mm3: float = math.inf,
) -> dict:
    """The chosen ``{"lesion_threshold", "min_lesion_mm3"}`` of scored ``trials``.

    Only settings whose ``min_lesion_mm3`` is at most ``max_floor_mm3`` may be chosen: a
    floor removes every lesion under it, also the true ones that the validation phantoms
    happen not to contain, so its cost cannot be seen in the trials. Among those, the one
    with at most ``max_false_positives`` false positives per scan and the highest lesion
    sensitivity, then the fewest false positives, then the highest lesion Dice; with none
    under it, the fewest false positives, then the highest sensitivity.

    Args:
        trials: one per setting: ``lesion_threshold``, ``min_lesion_mm3``, ``sensitivity``,
            ``false_positives_per_scan``, ``dice_lesions`` (validation means).
        max_false_positives: the false positives per scan allowed.
        max_floor_mm3: the largest ``min_lesion_mm3`` allowed: the smallest lesion clinicians
            look for in the disease (a segmentation bundle's ``max_lesion_floor_mm3``,
            :attr:`mednet.bundles.BundleSpec.max_lesion_floor_mm3`).

    Raises:
        ValueError: no trial, or none with a floor within ``max_floor_mm3``.
    """
    if not trials:
        raise ValueError("choose_postprocessing: expected at least one scored setting, found none")
    floors = sorted({float(t["min_lesion_mm3"]) for t in trials})
    trials = [t for t in trials if float(t["min_lesion_mm3"]) <= max_floor_mm3]
    if not trials:
        raise ValueError(
            f"choose_postprocessing: expected a setting with min_lesion_mm3 at most {max_floor_mm3:g} mm^3 "
            f"(the smallest lesion to keep), found floors {', '.join(f'{f:g}' for f in floors)} only"
        )
    allowed = [t for t in trials if t["false_positives_per_scan"] <= max_false_positives]
    if allowed:
        best = max(allowed, key=lambda t: (t["sensitivity"], -t["false_positives_per_scan"], t["dice_lesions"]))
    else:
        best = min(trials, key=lambda t: (t["false_positives_per_scan"], -t["sensitivity"]))
    return {"lesion_threshold": best["lesion_threshold"], "min_lesion_mm3": best["min_lesion_mm3"]}
