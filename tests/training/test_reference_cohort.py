"""Reference recipes: their cohorts (optional sequences, parts merged) and a base trained first."""

from __future__ import annotations

import json
from pathlib import Path

from mednet.training.reference import reference_cohort


def test_a_recipe_with_an_optional_sequence_draws_it(tmp_path):
    recipe = {"cases": 3, "size": "small", "seed": 5, "balance": {"L1": 1, "L2": 1, "M": 1}, "randomise": None}
    plain = reference_cohort(recipe, "neuroblastoma", tmp_path / "plain")
    with_t1 = reference_cohort({**recipe, "optional": ["t1"]}, "neuroblastoma", tmp_path / "t1")
    assert json.loads((plain.parent / "cohort.json").read_text())["optional"] == []
    assert json.loads((with_t1.parent / "cohort.json").read_text())["optional"] == ["t1"]
    cases = _cases(with_t1)
    assert len(cases) == 3 and all({"t2w", "t1c", "t1"} <= set(c) for c in cases)
    assert not any("t1" in c for c in _cases(plain))


def _cases(datalist) -> list[dict]:
    parts = json.loads(datalist.read_text())
    return [c for p in ("training", "validation", "testing") for c in parts.get(p, [])]


def test_a_recipe_in_parts_merges_its_cohorts_by_partition_with_prefixed_ids(tmp_path):
    from mednet.io import datalist_cases
    from mednet.synthetic.randomise import PRESETS

    part = {"cases": 3, "size": "small", "balance": {"L1": 1, "L2": 1, "M": 1}, "randomise": "moderate"}
    recipe = {"parts": [{**part, "seed": 5}, {**part, "seed": 6, "turn_on": ["abdomen"], "optional": ["t1"]}]}
    datalist = reference_cohort(recipe, "neuroblastoma", tmp_path / "mixed")
    assert "moderate+abdomen" not in PRESETS  # registered only while its part was drawn
    made = json.loads((datalist.parent / "cohort.json").read_text())
    assert [p["randomisation"]["abdomen"] for p in made["parts"]] == [False, True]
    assert [p["randomise"] for p in made["parts"]] == ["moderate", "moderate+abdomen"]
    merged = json.loads(datalist.read_text())
    for partition in ("training", "validation", "testing"):
        own = [json.loads((tmp_path / "mixed" / f"part{i}" / "datalist.json").read_text())[partition] for i in (0, 1)]
        assert [c["case_id"] for c in merged[partition]] == [f"part{i}_{c['case_id']}" for i in (0, 1) for c in own[i]]
    cases = _cases(datalist)
    assert len(cases) == 6 and len({c["patient_id"] for c in cases}) == 6
    assert sum("t1" in c for c in cases) == 3  # the second part's optional sequence
    # the bundles' reader takes it: every file found, absolute
    for case in datalist_cases(datalist, "training", ["t2w", "t1c", "label"]):
        assert all(Path(case[k]).is_file() for k in ("t2w", "t1c", "label"))
    before = datalist.stat().st_mtime_ns
    assert reference_cohort(recipe, "neuroblastoma", tmp_path / "mixed") == datalist
    assert datalist.stat().st_mtime_ns == before  # the same cohorts: not merged again


def test_a_recipe_with_a_base_trains_it_first_and_starts_from_its_weights(tmp_path):
    import torch

    from mednet.checksum import file_sha256
    from mednet.training.reference import train_reference
    from tests.bundles.helpers import TINY

    tiny = {k: v for k, v in TINY.items() if k != "max_epochs"}
    cohort = {"cases": 6, "size": "small", "balance": {"AN": 1, "MG": 1}, "randomise": "moderate"}
    base = {"bundle": "cpa_mri_segmentation", **cohort, "seed": 1, "epochs": 1, "overrides": tiny}
    # learning rate 0: the fine-tuned weights are exactly where they started
    tuned = {"bundle": "cpa_mri_segmentation", **cohort, "seed": 2, "epochs": 1, "base": base,
             "overrides": {**tiny, "learning_rate": 0.0, "fov_cut_prob": 0.5}}  # fmt: skip
    record = train_reference("cpa", tmp_path, ["localisation"], echo=lambda line: None,
                             recipes={"cpa": {"localisation": tuned}})["localisation"]  # fmt: skip
    root = tmp_path / "cpa"
    base_weights = root / "localisation_base_train" / "models" / "model_fp16.pt"  # as a release ships them
    assert record["base"]["epochs"] == 1 and record["base"]["weights"] == str(base_weights.resolve())
    assert record["base"]["data"]["synthetic_only"] and record["base"]["base"] is None
    done = json.loads((root / "localisation_train" / "done.json").read_text())
    assert done["recipe"]["init_sha256"] == file_sha256(base_weights)
    start = torch.load(base_weights, weights_only=True)
    end = torch.load(root / "localisation_train" / "models" / "model.pt", weights_only=True)
    assert start.keys() == end.keys() and all(torch.equal(start[k].to(end[k].dtype), end[k]) for k in start)
    assert record["test_metrics"]  # the fine-tuned weights tested as any recipe's


def test_a_fine_tuning_recipe_from_scratch_takes_its_first_recipes_length_and_its_own_data_settings():
    from mednet.training.reference import RECIPES, from_scratch

    first = {"bundle": "b", "epochs": 48, "seed": 1, "overrides": {"lr_anneal": "cosine", "sequence_dropout": 0.3}}
    middle = {"bundle": "b", "epochs": 10, "seed": 2, "base": first, "overrides": {"learning_rate": 1e-3}}
    tuned = {"bundle": "b", "epochs": 24, "seed": 3, "base": middle, "parts": [{"cases": 2}],
             "overrides": {"learning_rate": 5e-4, "init_keys": ["t2w"], "init_ckpt": "x.pt",
                           "image_keys": ["t2w", "t1"], "sequence_dropout": 0.5}}  # fmt: skip
    scratch = from_scratch(tuned)
    assert scratch["epochs"] == 48 and scratch["seed"] == 3 and "base" not in scratch
    assert scratch["overrides"] == {"lr_anneal": "cosine", "sequence_dropout": 0.5, "image_keys": ["t2w", "t1"]}
    assert scratch["parts"] == [{"cases": 2}]
    for stages in RECIPES.values():  # a recipe without a base is its own run from scratch
        for recipe in stages.values():
            assert "base" in recipe or from_scratch(recipe) == recipe


def _commit(repo: Path, weights: bytes, record: dict, message: str) -> None:
    import subprocess

    models = repo / "bundles" / "x" / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / "model.pt").write_bytes(weights)
    (models / "reference.json").write_text(json.dumps(record))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "-A"], check=True, capture_output=True)
    subprocess.run([*git, "commit", "-qm", message], check=True, capture_output=True)


def test_a_base_named_by_its_sha256_is_taken_from_the_release_installed_or_in_the_git_history(tmp_path, monkeypatch):
    import subprocess

    import mednet.training.reference as reference
    from mednet.checksum import bytes_sha256

    repo = tmp_path / "clone"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    first = {"bundle": "x", "cases": 160, "seed": 2026, "randomise": "moderate", "balance": {"A": 1},
             "epochs": 20, "overrides": {"lr_anneal": "cosine"}}  # fmt: skip
    second = {**first, "seed": 2030, "epochs": 12}

    def record(recipe, **more):
        data = {k: recipe[k] for k in ("cases", "seed", "randomise", "balance")}
        return {"data": {**data, "generator": "mednet.synthetic"}, "epochs": recipe["epochs"], "seed": recipe["seed"],
                "overrides": recipe["overrides"], "train_seconds": 60.0, **more}  # fmt: skip

    _commit(repo, b"weights of the first release", record(first), "first release")
    # the second release: fine-tuned from the first (its record's init_ckpt, a path on its machine, aside)
    second_record = record({**second, "overrides": {**second["overrides"], "init_ckpt": "/elsewhere/model_fp16.pt"}},
                           base=record(first))  # fmt: skip
    _commit(repo, b"weights of the second release", second_record, "second release")
    monkeypatch.setattr(reference, "bundle_path", lambda name: repo / "bundles" / name)
    said = []

    old = reference._released_base({**first, "weights_sha256": bytes_sha256(b"weights of the first release")},
                                   tmp_path / "old", said.append)  # fmt: skip
    assert old["taken_from"].startswith("git commit ") and old["epochs"] == 20 and old["base"] is None
    assert Path(old["weights"]).read_bytes() == b"weights of the first release"
    assert "not trained again" in said[-1]
    new = reference._released_base({**second, "weights_sha256": bytes_sha256(b"weights of the second release")},
                                   tmp_path / "new", said.append)  # fmt: skip
    assert new["taken_from"] == "the installed bundle" and new["base"]["epochs"] == 20
    # not taken: no SHA-256 named, weights no release shipped, a release of another recipe
    assert reference._released_base(first, tmp_path / "a", said.append) is None
    assert reference._released_base({**first, "weights_sha256": bytes_sha256(b"other")}, tmp_path / "b",
                                    said.append) is None  # fmt: skip
    wrong = {**first, "epochs": 21, "weights_sha256": bytes_sha256(b"weights of the first release")}
    assert reference._released_base(wrong, tmp_path / "c", said.append) is None
    # a release trained on a cohort in parts (its record's data lists each part) is recognised by its parts
    parts = {"bundle": "x", "parts": [{"cases": 80, "balance": {"A": 1}, "randomise": None, "seed": 2040},
                                      {"cases": 80, "balance": {"A": 1}, "randomise": "moderate", "seed": 2041}],
             "seed": 2040, "epochs": 12, "overrides": {"lr_anneal": "cosine"}}  # fmt: skip
    parts_record = {"data": {"parts": [{**p, "generator": "mednet.synthetic", "size": "demo"} for p in parts["parts"]],
                             "synthetic_only": True},
                    "epochs": 12, "seed": 2040, "overrides": {"lr_anneal": "cosine", "init_ckpt": "/x/model_fp16.pt"},
                    "train_seconds": 60.0, "base": record(second)}  # fmt: skip
    _commit(repo, b"weights of the third release", parts_record, "third release")
    third = reference._released_base({**parts, "weights_sha256": bytes_sha256(b"weights of the third release")},
                                     tmp_path / "third", said.append)  # fmt: skip
    assert third["taken_from"] == "the installed bundle" and third["base"]["seed"] == 2030
    other_parts = {**parts, "parts": [parts["parts"][0], {**parts["parts"][1], "seed": 2042}]}
    assert reference._released_base({**other_parts, "weights_sha256": bytes_sha256(b"weights of the third release")},
                                    tmp_path / "e", said.append) is None  # fmt: skip
    # a part of another size, with an optional sequence, or with a preset's flag turned on is another cohort
    third_sha = bytes_sha256(b"weights of the third release")
    for changed in ({"size": "small"}, {"optional": ["t1"]}, {"turn_on": ["abdomen"]}):
        changed_parts = {**parts, "parts": [parts["parts"][0], {**parts["parts"][1], **changed}]}
        assert reference._released_base({**changed_parts, "weights_sha256": third_sha}, tmp_path / "f", said.append) is None
    # ... and a release drawn with a flag turned on is recognised by the name its cohort recorded
    flagged = {**parts, "parts": [parts["parts"][0], {**parts["parts"][1], "turn_on": ["abdomen"], "optional": ["t1"]}]}
    flagged_record = {**parts_record, "data": {**parts_record["data"], "parts": [
        parts_record["data"]["parts"][0],
        {**parts_record["data"]["parts"][1], "randomise": "moderate+abdomen", "optional": ["t1"]}]}}
    _commit(repo, b"weights of the fourth release", flagged_record, "fourth release")
    fourth = reference._released_base({**flagged, "weights_sha256": bytes_sha256(b"weights of the fourth release")},
                                      tmp_path / "fourth", said.append)  # fmt: skip
    assert fourth is not None and fourth["data"]["parts"][1]["randomise"] == "moderate+abdomen"
    # optional sequences in another order draw other phantoms (each sequence draws in turn): another cohort
    two = {**flagged, "parts": [parts["parts"][0], {**flagged["parts"][1], "optional": ["t1", "flair"]}]}
    two_record = {**flagged_record, "data": {**flagged_record["data"], "parts": [
        flagged_record["data"]["parts"][0], {**flagged_record["data"]["parts"][1], "optional": ["flair", "t1"]}]}}
    _commit(repo, b"weights of the fifth release", two_record, "fifth release")
    fifth_sha = bytes_sha256(b"weights of the fifth release")
    assert reference._released_base({**two, "weights_sha256": fifth_sha}, tmp_path / "g", said.append) is None
    assert reference._released_base({**two, "weights_sha256": fifth_sha, "parts": [
        two["parts"][0], {**two["parts"][1], "optional": ("flair", "t1")}]}, tmp_path / "h", said.append) is not None
    # a record without data (written by hand, damaged) is no release of the recipe, not a crash
    _commit(repo, b"weights of the sixth release", {**two_record, "data": None}, "sixth release")
    sixth_sha = bytes_sha256(b"weights of the sixth release")
    assert reference._released_base({**two, "weights_sha256": sixth_sha}, tmp_path / "i", said.append) is None
    # without git (an installed package): the installed bundle only
    monkeypatch.setattr(reference.shutil, "which", lambda name: None)
    assert reference._released_base({**first, "weights_sha256": bytes_sha256(b"weights of the first release")},
                                    tmp_path / "d", said.append) is None  # fmt: skip


def test_a_fine_tuning_recipe_whose_base_was_released_starts_from_those_weights_without_training_it(
    tmp_path, monkeypatch
):
    import torch

    import mednet.training.reference as reference
    from mednet.checksum import file_sha256
    from tests.bundles.helpers import TINY

    tiny = {k: v for k, v in TINY.items() if k != "max_epochs"}
    cohort = {"cases": 6, "size": "small", "balance": {"AN": 1, "MG": 1}, "randomise": "moderate"}
    base = {"bundle": "cpa_mri_segmentation", **cohort, "seed": 1, "epochs": 1, "overrides": tiny}
    made = reference.train_reference("cpa", tmp_path / "first", ["localisation"], echo=lambda line: None,
                                     recipes={"cpa": {"localisation": base}})["localisation"]  # fmt: skip
    released = tmp_path / "first" / "cpa" / "localisation_train" / "models" / "model_fp16.pt"
    monkeypatch.setattr(reference, "_released_versions",
                        lambda bundle: iter([(released.read_bytes(), made, "the installed bundle")]))  # fmt: skip
    tuned = {"bundle": "cpa_mri_segmentation", **cohort, "seed": 2, "epochs": 1,
             "base": {**base, "weights_sha256": file_sha256(released)},
             "overrides": {**tiny, "learning_rate": 0.0}}  # fmt: skip
    said = []
    record = reference.train_reference("cpa", tmp_path / "tuned", ["localisation"], echo=said.append,
                                       recipes={"cpa": {"localisation": tuned}})["localisation"]  # fmt: skip
    root = tmp_path / "tuned" / "cpa"
    assert not (root / "localisation_base_train").exists()  # the base was not trained again
    assert record["base"]["taken_from"] == "the installed bundle"
    assert record["base"]["weights_sha256"] == file_sha256(released) == file_sha256(record["base"]["weights"])
    assert record["base"]["train_seconds"] == made["train_seconds"] and record["base"]["data"] == made["data"]
    assert any("not trained again" in line for line in said)
    done = json.loads((root / "localisation_train" / "done.json").read_text())
    assert done["recipe"]["init_sha256"] == file_sha256(released)
    start = torch.load(released, weights_only=True)
    end = torch.load(root / "localisation_train" / "models" / "model.pt", weights_only=True)
    assert all(torch.equal(start[k].to(end[k].dtype), end[k]) for k in start)  # learning rate 0: where it started


def test_a_segmentation_recipe_naming_its_channels_describes_releases_from_before_recipes_named_them():
    from mednet.training.reference import LEGACY_OVERRIDES, _describes

    recipe = {"bundle": "neuroblastoma_mri_segmentation", "cases": 160, "seed": 2026, "randomise": "moderate",
              "balance": {"A": 1}, "epochs": 48, "overrides": {"lr_anneal": "cosine"}}  # fmt: skip
    record = {"data": {k: recipe[k] for k in ("cases", "seed", "randomise", "balance")}, "epochs": 48, "seed": 2026,
              "overrides": {"lr_anneal": "cosine", "init_ckpt": "/elsewhere/model_fp16.pt"}}  # fmt: skip
    narrow = {**recipe, "overrides": {**recipe["overrides"], **LEGACY_OVERRIDES}}
    wide = {**recipe, "overrides": {**recipe["overrides"], "network_def#channels": [24, 48, 96, 192, 384]}}
    assert _describes(record, recipe) and _describes(record, narrow) and not _describes(record, wide)
    wide_record = {**record, "overrides": {**record["overrides"], **wide["overrides"]}}
    assert _describes(wide_record, wide) and not _describes(wide_record, narrow)
    # a classification recipe has no such channels: both sides as they are
    grading = {**narrow, "bundle": "neuroblastoma_mri_classification"}
    assert not _describes(record, grading) and _describes(record, {**recipe, "bundle": "neuroblastoma_mri_classification"})


def test_a_segmentation_bundles_channels_are_the_legacy_ones_or_named_by_its_recipe():
    """A bundle whose configs leave the 16..256 channels has a reference recipe that names its own."""
    from monai.bundle import ConfigParser

    from mednet.bundles import BUNDLES_DIR
    from mednet.training.reference import LEGACY_OVERRIDES, RECIPES

    def channels_of(config):  # the network's, as the bundle builds it (``@channels`` resolved)
        parser = ConfigParser()
        parser.read_config(config)
        return parser.get_parsed_content("network_def#channels")

    for disease, stages in RECIPES.items():
        recipe = stages["localisation"]
        channels = [channels_of(BUNDLES_DIR / recipe["bundle"] / "configs" / f"{c}.json") for c in ("train", "inference")]
        assert channels[0] == channels[1], disease  # one network, trained and run
        named = recipe["overrides"].get("network_def#channels", LEGACY_OVERRIDES["network_def#channels"])
        assert named == channels[0], disease


def test_every_shipped_weights_record_describes_its_bundles_reference_recipe():
    """The recipes and the releases agree: each bundle's models/reference.json is of RECIPES' recipe for it
    (a recipe changed without a release, or a release without its recipe, fails here)."""
    from mednet.bundles import bundle_path
    from mednet.training.reference import RECIPES, _describes

    for disease, stages in RECIPES.items():
        for stage, recipe in stages.items():
            record = json.loads((bundle_path(recipe["bundle"]) / "models" / "reference.json").read_text())
            assert _describes(record, recipe), f"{disease} {stage}: {recipe['bundle']}'s shipped weights are of another recipe"
            if recipe.get("weights_sha256"):  # a recipe naming its weights names the shipped ones
                assert record["weights_sha256"] == recipe["weights_sha256"], f"{disease} {stage}"
