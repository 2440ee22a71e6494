"""scripts/calibrate_confidence.py: ``min_confidence`` fitted on the pipeline's predictions for chosen cases."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mednet.bundles import bundle_path
from mednet.synthetic import generate_cohort
from mednet.training.reference import cohort_seeds

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
import calibrate_confidence  # scripts/ is not a package: from its folder


def _datalist(folder: Path, made: dict | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "datalist.json").write_text(json.dumps({"training": [], "validation": [], "testing": []}))
    if made is not None:
        (folder / "cohort.json").write_text(json.dumps(made))
    return folder / "datalist.json"


def test_a_cohorts_seeds_are_read_from_its_record_and_a_users_own_cases_have_none(tmp_path):
    assert cohort_seeds(_datalist(tmp_path / "one", {"seed": 103})) == [103]
    merged = {"parts": [{"seed": 2050}, {"seed": 2051}]}
    assert cohort_seeds(_datalist(tmp_path / "merged", merged)) == [2050, 2051]
    assert cohort_seeds(_datalist(tmp_path / "own", None)) == []
    with pytest.raises(FileNotFoundError, match="no datalist here"):
        cohort_seeds(tmp_path / "absent.json")


@pytest.mark.parametrize(("seed", "said"), [(101, "test patients"), (2027, "reference cohort")])
def test_a_cohort_of_the_test_or_a_reference_seed_is_refused(tmp_path, monkeypatch, capsys, seed, said):
    datalist = _datalist(tmp_path / "cohort", {"seed": seed})
    monkeypatch.setattr(sys, "argv", ["calibrate_confidence", "--disease", "cpa", "--cohort", str(datalist),
                                      "--out", str(tmp_path / "confidence.json")])  # fmt: skip
    with pytest.raises(SystemExit) as stop:
        calibrate_confidence.main()
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"--cohort {datalist}: seed {seed}" in err and said in err
    assert not (tmp_path / "confidence.json").exists()


def test_every_case_of_a_given_cohort_is_predicted_and_the_fit_written_without_touching_the_bundle(
    tmp_path, monkeypatch
):
    cohort = generate_cohort("cpa", 2, tmp_path / "data", size="small", seed=303, balance={"AN": 1, "MG": 1})
    config = bundle_path("cpa_mri_classification") / "configs" / "inference.json"
    before = config.read_text()
    out, predictions = tmp_path / "confidence.json", tmp_path / "predicted"
    monkeypatch.setattr(sys, "argv", ["calibrate_confidence", "--disease", "cpa", "--cohort", str(cohort.datalist),
                                      "--predictions", str(predictions), "--device", "cpu", "--out", str(out)])  # fmt: skip
    calibrate_confidence.main()
    result = json.loads(out.read_text())
    assert result["cohort"] == str(cohort.datalist) and result["partition"] == "all"
    assert result["cohort_seeds"] == [303]
    ids = [case["case_id"] for case in cohort.cases]
    assert all((predictions / c / f"{c}.json").is_file() for c in ids)  # every partition's cases, not only validation
    assert result["graded_cases"] <= 2 and result["floor"] == round(1 / 2 + 1e-4, 4)
    assert result["config_now"]["min_confidence"] == calibrate_confidence.current_min_confidence(config.parents[1])
    assert config.read_text() == before  # no --write: the bundle is left as it is
