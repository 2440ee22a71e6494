"""scripts/tune_postprocessing.py: every lesion post-processing setting applied to one network output per patient."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mednet.io import read_image
from mednet.localisation.tuning import LESION_THRESHOLDS, MIN_LESION_MM3
from mednet.pipeline.diseases import disease_spec
from mednet.synthetic import generate_cohort

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
import tune_postprocessing  # scripts/ is not a package: from its folder


def test_the_carried_setting_gives_the_bundles_own_map_and_a_lower_threshold_more_lesion(tmp_path):
    from mednet.inference import LocalisationPredictor
    from mednet.inference.postprocessing import PostprocessingSettings

    bundle = disease_spec("cpa").localisation
    cohort = generate_cohort("cpa", 1, tmp_path / "data", size="small", seed=7)
    doc = json.loads(Path(cohort.datalist).read_text())
    case = next(c for part in ("training", "validation", "testing") for c in doc[part])
    images = {k: read_image(Path(cohort.datalist).parent / case[k]) for k in bundle.sequences}
    predictor = LocalisationPredictor(bundle, "cpu")
    expected = predictor({"case_id": case["case_id"], **images}).array
    settings = PostprocessingSettings(predictor)
    data, probabilities = settings.network_output(images, case["case_id"])
    carried = settings.carried
    np.testing.assert_array_equal(settings.labels(data, probabilities, carried["lesion_threshold"],
                                                  carried["min_lesion_mm3"]), expected)  # fmt: skip
    low = settings.labels(data, probabilities, 0.05, 0.0)
    assert (low == 1).sum() > (expected == 1).sum()  # more voxels reach a summed lesion probability of 0.05
    high = settings.labels(data, probabilities, 0.95, 0.0)
    assert (high == 1).sum() < (expected == 1).sum()  # fewer reach 0.95: the arg-max's unsure edges trimmed
    # the predictor has its own settings back
    np.testing.assert_array_equal(predictor({"case_id": case["case_id"], **images}).array, expected)


def test_every_setting_is_scored_and_one_chosen(tmp_path):
    result = tune_postprocessing.tune("cpa", 1, 103, tmp_path, size="small")
    assert len(result["trials"]) == len(LESION_THRESHOLDS) * len(MIN_LESION_MM3)
    assert {(t["lesion_threshold"], t["min_lesion_mm3"]) for t in result["trials"]} == {
        (t, m) for t in LESION_THRESHOLDS for m in MIN_LESION_MM3}  # fmt: skip
    assert result["chosen"] in [{"lesion_threshold": t["lesion_threshold"], "min_lesion_mm3": t["min_lesion_mm3"]}
                                for t in result["trials"]]  # fmt: skip
    assert result["carried"] == {"lesion_threshold": 0.7, "min_lesion_mm3": 50.0}
    assert result["max_lesion_floor_mm3"] == 50.0 and result["chosen"]["min_lesion_mm3"] == 50.0
    assert all(0.0 <= t["dice_lesions"] <= 1.0 and t["false_positives_per_scan"] >= 0 for t in result["trials"])
    assert result["weights_sha256"] == disease_spec("cpa").weights_sha256["cpa_mri_segmentation"]


def test_validation_patients_already_drawn_are_taken_and_others_refused(tmp_path):
    balance = dict.fromkeys(disease_spec("cpa").classes, 1.0)
    given = generate_cohort("cpa", 1, tmp_path / "given", size="small", seed=103, balance=balance)
    drawn = tune_postprocessing.tune("cpa", 1, 103, tmp_path / "work", size="small", datalist=Path(given.datalist))
    assert not (tmp_path / "work" / "data").exists()  # nothing drawn again
    assert drawn["trials"] and drawn["chosen"]
    with pytest.raises(ValueError, match=r"given/datalist.json: not the validation patients asked for \(1 small "
                       r"phantoms, seed 105\): drawn with another seed"):
        tune_postprocessing.tune("cpa", 1, 105, tmp_path / "work", size="small", datalist=Path(given.datalist))
    (tmp_path / "given" / "cohort.json").unlink()
    with pytest.raises(ValueError, match="no complete cohort there"):
        tune_postprocessing.tune("cpa", 1, 103, tmp_path / "work", size="small", datalist=Path(given.datalist))
