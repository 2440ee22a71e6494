"""scripts/write_reference_cards.py: a card is written only from figures of the weights it ships."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from mednet.bundles import BUNDLES_DIR
from mednet.checksum import file_sha256

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
import write_reference_cards  # scripts/ is not a package: from its folder

BUNDLE, OTHER = "cpa_mri_segmentation", "cpa_mri_classification"
REPO_BENCHMARKS = Path(__file__).parents[2] / "docs" / "benchmarks"


@pytest.fixture
def release(tmp_path):
    """A copy of one bundle with its shipped weights, and a benchmarks folder with its held-out figures."""
    bundles, benchmarks = tmp_path / "bundles", tmp_path / "benchmarks"
    for name in (BUNDLE, OTHER):
        shutil.copytree(BUNDLES_DIR / name, bundles / name)
    benchmarks.mkdir()
    held_out = json.loads((REPO_BENCHMARKS / "reference_cpa.json").read_text())
    return bundles, benchmarks, held_out


def _write(benchmarks: Path, held_out: dict) -> None:
    (benchmarks / "reference_cpa.json").write_text(json.dumps(held_out))


def test_figures_of_the_installed_weights_make_the_card_and_the_version(release):
    bundles, benchmarks, held_out = release
    _write(benchmarks, {**held_out, "weights_sha256": {BUNDLE: file_sha256(bundles / BUNDLE / "models" / "model.pt")}})
    written = write_reference_cards.write_cards("9.9.9", "test release", bundles=[BUNDLE], bundles_dir=bundles,
                                                benchmarks=benchmarks)  # fmt: skip
    assert written == [BUNDLE]
    meta = json.loads((bundles / BUNDLE / "configs" / "metadata.json").read_text())
    assert meta["version"] == "9.9.9" and meta["changelog"]["9.9.9"] == "test release"
    card = (bundles / BUNDLE / "docs" / "README.md").read_text()
    lesion_dice = held_out["test"]["localisation"]["dice_lesions"]["value"]
    assert card.count(write_reference_cards.START) == 1 and f"{lesion_dice:.3f}" in card


@pytest.mark.parametrize("recorded", [None, "0" * 64], ids=["not recorded", "other weights"])
def test_figures_of_other_weights_are_refused_and_nothing_is_written(release, recorded):
    bundles, benchmarks, held_out = release
    before = {p: p.read_bytes() for p in (bundles / BUNDLE).rglob("*") if p.is_file()}
    unrecorded = {k: v for k, v in held_out.items() if k != "weights_sha256"}
    _write(benchmarks, {**held_out, "weights_sha256": {BUNDLE: recorded}} if recorded else unrecorded)
    with pytest.raises(SystemExit, match=rf"reference_cpa\.json measured {BUNDLE}.s weights .*run its script again"):
        write_reference_cards.write_cards("9.9.9", "x", bundles=[BUNDLE], bundles_dir=bundles, benchmarks=benchmarks)
    assert {p: p.read_bytes() for p in (bundles / BUNDLE).rglob("*") if p.is_file()} == before


def test_weights_changed_after_install_are_refused(release):
    bundles, benchmarks, held_out = release
    weights = bundles / BUNDLE / "models" / "model.pt"
    weights.write_bytes(weights.read_bytes() + b"\0")  # not the weights reference.json names
    _write(benchmarks, {**held_out, "weights_sha256": {BUNDLE: file_sha256(weights)}})
    with pytest.raises(SystemExit, match=r"models/reference\.json names weights"):
        write_reference_cards.write_cards("9.9.9", "x", bundles=[BUNDLE], bundles_dir=bundles, benchmarks=benchmarks)


def test_figures_of_the_whole_pipeline_need_every_bundle_they_name_as_installed(release):
    """The held-out figures run both bundles: a localisation card is refused if the grading's weights changed."""
    bundles, benchmarks, held_out = release
    sums = {name: file_sha256(bundles / name / "models" / "model.pt") for name in (BUNDLE, OTHER)}
    _write(benchmarks, {**held_out, "weights_sha256": sums})
    assert write_reference_cards.write_cards("9.9.9", "x", bundles=[BUNDLE], bundles_dir=bundles,
                                             benchmarks=benchmarks) == [BUNDLE]  # fmt: skip
    other = bundles / OTHER / "models" / "model.pt"
    other.write_bytes(other.read_bytes() + b"\0")
    with pytest.raises(SystemExit, match=rf"reference_cpa\.json measured {OTHER}'s weights {sums[OTHER]}"):
        write_reference_cards.write_cards("9.9.10", "x", bundles=[BUNDLE], bundles_dir=bundles, benchmarks=benchmarks)


def test_the_card_names_the_presets_flags_that_were_on():
    data = {"randomise": "moderate", "randomisation": {"name": "moderate", "csf_spaces": True, "abdomen": True,
                                                       "head": False, "strip": 0.2}}  # fmt: skip
    assert write_reference_cards._preset(data) == "`moderate` (csf_spaces, abdomen on)"
    assert write_reference_cards._preset({"randomise": "moderate"}) == "`moderate`"  # recorded before the settings


def test_a_cohort_in_parts_and_a_base_recipe_are_described():
    def part(seed, preset, **more):
        return {"cases": 80, "disease": "neuroblastoma", "generator": "mednet.synthetic", "mednet_version": "0.1.0",
                "seed": seed, "size": "demo", "randomise": preset, "randomisation": {"abdomen": "abdomen" in (preset or "")},
                "balance": {"L1": 1, "L2": 1, "M": 1}, "optional": [], **more}  # fmt: skip

    merged = {"parts": [part(1, "moderate"), part(2, "moderate+abdomen", optional=["t1"])]}
    text = write_reference_cards._cohort(merged)
    assert text.count("80 synthetic `neuroblastoma` phantoms") == 2 and text.endswith("merged by partition")
    assert "`moderate+abdomen` (abdomen on), with the optional t1" in text
    assert write_reference_cards._presets(merged) == "moderate and moderate+abdomen"
    plain = {"parts": [part(3, None), part(4, "moderate")]}  # default phantoms: no domain randomisation
    assert write_reference_cards._presets(plain) == "default and moderate"
    assert "domain randomisation none (default phantoms)" in write_reference_cards._cohort(plain)
    assert write_reference_cards._disease(merged) == "neuroblastoma"
    base = {"epochs": 48, "seed": 2026, "overrides": {"lr_anneal": "cosine"}, "data": part(2026, "moderate"),
            "train_seconds": 600.0, "base": None}  # fmt: skip
    rows = write_reference_cards._base_rows(base)
    assert len(rows) == 1 and rows[0].startswith("| starts from | the weights of its base recipe: 48 epochs")
    assert "seed 2026" in rows[0] and "10 min" in rows[0]
    assert write_reference_cards._base_rows(None) == []
    assert write_reference_cards.portable_overrides({"init_ckpt": "/runs/base/model_fp16.pt", "learning_rate": 5e-4}) == {
        "learning_rate": 5e-4}  # fmt: skip


def test_the_confidence_line_names_the_former_threshold_only_when_the_fit_changed_it():
    fitted = {"min_confidence": 0.9, "target": 0.9, "called": 11, "accuracy_of_calls": 0.91}
    same = {"fitted": fitted, "graded_cases": 36, "config_now": {"min_confidence": 0.9, "called": 11,
                                                                 "accuracy_of_calls": 0.91}}  # fmt: skip
    changed = {**same, "config_now": {"min_confidence": 0.5, "called": 36, "accuracy_of_calls": 0.61}}
    assert write_reference_cards._confidence_lines(same)[1].endswith("it is the bundle's threshold.")
    assert write_reference_cards._confidence_lines(changed)[1].endswith("the former 0.5 called 36 (0.61 right).")
    assert "for the 36 validation patients of the training cohort:" in write_reference_cards._confidence_lines(same)[1]
    held_out = {**same, "partition": "all", "cohort_seeds": [103]}
    assert "for 36 held-out validation phantoms (seed 103, never trained on):" in (
        write_reference_cards._confidence_lines(held_out)[1])
    assert "for 36 patients of another cohort:" in write_reference_cards._confidence_lines(
        {**held_out, "cohort_seeds": []})[1]
