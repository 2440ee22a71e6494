"""scripts/compare_weights.py: the same cases through the shipped and the candidate weights, paired per case."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mednet.pipeline.diseases import disease_spec

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
import compare_weights  # scripts/ is not a package: from its folder


@pytest.mark.slow  # two small cohorts, each through the glioma pipeline twice
def test_the_shipped_weights_as_candidate_differ_by_nothing_and_a_changed_one_by_something(tmp_path):
    spec = disease_spec("glioma")
    same = {spec.localisation.name: str(spec.localisation.weights)}
    result = compare_weights.compare("glioma", same, 2, 5, "moderate", ["head"], "cpu", tmp_path / "a", size="small",
                                     real=False)  # fmt: skip
    assert set(result["sets"]) == {"default", "randomised (moderate+head)"}
    assert "moderate+head" not in compare_weights.PRESETS  # registered only while its cohort was drawn
    for figures in result["sets"].values():
        assert figures["shipped"] == figures["candidate"] and figures["shipped"]["failed"] == 0
        paired = figures["paired"]["dice_lesions: candidate - shipped"]
        assert paired["n"] == 2 and paired["value"] == 0.0
    assert result["real"] == {}
    import torch

    state = torch.load(spec.localisation.weights, weights_only=True)
    noisy = tmp_path / "noisy.pt"
    torch.save({k: v * 0.8 if v.is_floating_point() else v for k, v in state.items()}, noisy)
    changed = compare_weights.compare("glioma", {spec.localisation.name: str(noisy)}, 2, 5, "moderate", [], "cpu",
                                      tmp_path / "b", size="small", real=False)  # fmt: skip
    assert changed["sets"]["default"]["paired"]["dice_lesions: candidate - shipped"]["value"] != 0.0


def test_kept_work_reuses_a_cohort_and_its_predictions_folder_only_for_the_same_settings(tmp_path):
    """--work: the same settings find the same cohort and predictions folder; another seed gets new ones."""
    first = compare_weights._cohorts("cpa", 2, 5, "moderate", [], tmp_path, "small")
    folders = {name: compare_weights._predictions(tmp_path, "shipped", name, d) for name, d in first.items()}
    stamp = (first["default"].parent / "cohort.json").stat().st_mtime_ns
    again = compare_weights._cohorts("cpa", 2, 5, "moderate", [], tmp_path, "small")
    assert again == first and (first["default"].parent / "cohort.json").stat().st_mtime_ns == stamp
    assert {name: compare_weights._predictions(tmp_path, "shipped", name, d) for name, d in again.items()} == folders
    other = compare_weights._cohorts("cpa", 2, 6, "moderate", [], tmp_path, "small")  # another seed, same folders
    moved = {name: compare_weights._predictions(tmp_path, "shipped", name, d) for name, d in other.items()}
    assert all(moved[name] != folders[name] for name in folders)


@pytest.mark.slow  # two small neuroblastoma cohorts through the pipeline twice
def test_a_candidate_reading_a_sequence_more_is_given_it(tmp_path):
    """--set localisation.image_keys and --optional t1: the shipped neuroblastoma localiser widened to read a native T1 with zero
    filters (mednet.engines.initialised) predicts exactly as the shipped one, and the records say t1 was used."""
    import torch

    from mednet.bundles.spec import load_state_dict
    from mednet.engines import initialised

    spec = disease_spec("neuroblastoma")
    bundle = spec.localisation.name
    keys = ["t2w", "t1c", "t1"]
    widened = spec.localisation.parser(device="cpu", image_keys=keys).get_parsed_content("network_def", instantiate=True)
    initialised(widened, spec.localisation.weights, keys, ["t2w", "t1c"])
    assert widened.state_dict().keys() == load_state_dict(spec.localisation.weights).keys()
    path = tmp_path / "widened.pt"
    torch.save(widened.state_dict(), path)
    result = compare_weights.compare("neuroblastoma", {bundle: str(path)}, 2, 5, "moderate", [], "cpu", tmp_path / "w",
                                     size="small", real=False, settings={bundle: {"image_keys": keys}},
                                     optional=("t1",))  # fmt: skip
    for figures in result["sets"].values():
        assert figures["paired"]["dice_lesions: candidate - shipped"]["value"] == 0.0
    records = [json.loads(p.read_text()) for p in next((tmp_path / "w").glob("candidate-*")).glob("*/*/*.json")
               if p.stem == p.parent.name]  # fmt: skip
    assert len(records) == 4 and all(r["sequences_used"]["localisation"] == keys for r in records)
    assert result["optional"] == ["t1"] and result["candidate"][bundle]["overrides"] == {"image_keys": keys}


def test_set_takes_mednet_trains_form_for_a_stage_with_candidate_weights():
    spec = disease_spec("neuroblastoma")
    candidate = {spec.localisation.name: "model.pt"}
    settings = compare_weights.candidate_settings(['localisation.image_keys=["t2w","t1c","t1"]',
                                                   "localisation.sw_overlap=0.25"], spec, candidate)  # fmt: skip
    assert settings == {spec.localisation.name: {"image_keys": ["t2w", "t1c", "t1"], "sw_overlap": 0.25}}
    with pytest.raises(SystemExit, match=r"expected STAGE\.KEY=VALUE"):
        compare_weights.candidate_settings(["image_keys=[1]"], spec, candidate)
    with pytest.raises(SystemExit, match=r"the grading bundle .* has no candidate weights"):
        compare_weights.candidate_settings(["grading.batch_size=2"], spec, candidate)


_REFUSED = [(101, 101), (102, 102), (2041, 2041), (2040, 2040)]


@pytest.mark.parametrize(
    ("script", "seed", "refused"),
    [("compare_weights", *pair) for pair in [*_REFUSED, (99, 101), (2038, 2040)]]
    + [("tune_postprocessing", *pair) for pair in _REFUSED],
)
def test_a_choice_on_the_test_patients_or_a_reference_cohort_is_refused(script, seed, refused, monkeypatch, capsys):
    """Every seed the choice draws patients with: compare_weights' randomised phantoms take ``--seed`` + 2."""
    import importlib

    module = importlib.import_module(script)
    args = ["--disease", "neuroblastoma", "--seed", str(seed)]
    if script == "compare_weights":
        args += ["--candidate", "neuroblastoma_mri_segmentation=x.pt"]
    monkeypatch.setattr(sys, "argv", [script, *args])
    with pytest.raises(SystemExit) as stop:
        module.main()
    assert stop.value.code == 2
    said = capsys.readouterr().err
    assert f"--seed {refused}" in said
    assert ("test patients" in said) if refused in (101, 102) else ("reference cohort" in said)


def test_the_reference_seeds_are_every_recipes_parts_and_bases():
    from mednet.training.reference import RECIPES, TEST_SEED, VALIDATION_SEED, check_choice_seed, reference_seeds

    seeds = reference_seeds()
    # 2026, 2027: every disease's first localisation and grading cohorts; 2040-2045, 2050-2053: the
    # parts of the neuroblastoma localisation's fine-tuning steps (0.6.0, 0.7.0's two, 0.8.0, 0.9.0),
    # through its bases
    assert {2026, 2027} | set(range(2040, 2046)) | set(range(2050, 2054)) <= seeds
    assert TEST_SEED not in seeds and VALIDATION_SEED not in seeds
    check_choice_seed(VALIDATION_SEED, VALIDATION_SEED + 2)  # no error
    chained = {"d": {"s": {"seed": 1, "parts": [{"seed": 2}], "base": {"seed": 3, "base": {"seed": 4}}}}}
    assert reference_seeds(chained) == {2, 3, 4}  # a recipe in parts: its parts' seeds
    assert reference_seeds({"d": {"s": {"seed": 5, "parts": []}}}) == {5}  # no parts: the recipe is its cohort
    assert len(reference_seeds(RECIPES)) > 2
