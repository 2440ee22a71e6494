"""The rule that chooses a bundle's lesion post-processing on validation patients."""

from __future__ import annotations

import pytest

from mednet.localisation.tuning import choose_postprocessing


def _trial(threshold, min_mm3, sensitivity, false_positives, dice):
    return {"lesion_threshold": threshold, "min_lesion_mm3": min_mm3, "sensitivity": sensitivity,
            "false_positives_per_scan": false_positives, "dice_lesions": dice}  # fmt: skip


def test_the_most_sensitive_setting_within_the_false_positive_limit_wins_then_fewer_false_positives_then_dice():
    trials = [_trial(0.2, 50.0, 0.95, 0.9, 0.70),  # most sensitive, but over the limit
              _trial(0.3, 100.0, 0.84, 0.30, 0.66), _trial(0.4, 100.0, 0.84, 0.23, 0.64),
              _trial(0.4, 200.0, 0.84, 0.23, 0.65), _trial(None, 100.0, 0.80, 0.0, 0.80)]  # fmt: skip
    assert choose_postprocessing(trials) == {"lesion_threshold": 0.4, "min_lesion_mm3": 200.0}
    assert choose_postprocessing(trials, max_false_positives=1.0) == {"lesion_threshold": 0.2, "min_lesion_mm3": 50.0}
    assert choose_postprocessing(trials[:2]) == {"lesion_threshold": 0.3, "min_lesion_mm3": 100.0}  # 0.30 is allowed


def test_with_every_setting_over_the_limit_the_fewest_false_positives_win():
    trials = [_trial(0.2, 50.0, 0.9, 1.5, 0.7), _trial(None, 400.0, 0.6, 0.5, 0.6), _trial(0.5, 400.0, 0.7, 0.5, 0.6)]
    assert choose_postprocessing(trials) == {"lesion_threshold": 0.5, "min_lesion_mm3": 400.0}
    with pytest.raises(ValueError, match="expected at least one scored setting"):
        choose_postprocessing([])


def test_a_floor_above_the_smallest_lesion_to_keep_is_never_chosen():
    # the 400 mm^3 floor removes the last false positive at no visible cost: the phantoms have
    # no lesion that small, the disease does
    trials = [_trial(None, 50.0, 1.0, 0.13, 0.881), _trial(0.7, 50.0, 1.0, 0.07, 0.887),
              _trial(0.6, 50.0, 1.0, 0.10, 0.892), _trial(0.6, 400.0, 1.0, 0.0, 0.893)]  # fmt: skip
    assert choose_postprocessing(trials) == {"lesion_threshold": 0.6, "min_lesion_mm3": 400.0}
    assert choose_postprocessing(trials, max_floor_mm3=50.0) == {"lesion_threshold": 0.7, "min_lesion_mm3": 50.0}
    with pytest.raises(ValueError, match=r"min_lesion_mm3 at most 20 mm\^3 .* found floors 50, 400 only"):
        choose_postprocessing(trials, max_floor_mm3=20.0)
