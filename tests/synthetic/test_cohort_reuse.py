"""reuse_or_generate_cohort: the same cohort is reused, another one (a preset changed by a release) is not."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mednet.synthetic.cohort import cohort_settings, reuse_or_generate_cohort
from mednet.synthetic.randomise import PRESETS

OPTIONS = {"size": "small", "seed": 3, "balance": {"AN": 1.0, "MG": 1.0}, "randomise": "plausible"}


def _stamp(root):
    return {p.name: p.stat().st_mtime_ns for p in root.rglob("*.nii.gz")}


def test_the_same_cohort_is_reused_and_a_changed_preset_makes_a_new_one(tmp_path, monkeypatch):
    root = tmp_path / "cohort"
    datalist = reuse_or_generate_cohort("cpa", 2, root, **OPTIONS)
    made = json.loads((root / "cohort.json").read_text())
    assert made["randomisation"] == json.loads(json.dumps(dataclasses.asdict(PRESETS["plausible"])))
    assert {k: made[k] for k in cohort_settings("cpa", 2, **OPTIONS)} == cohort_settings("cpa", 2, **OPTIONS)
    first = _stamp(root)
    assert len(first) == 2 * 3  # two cases: t1c, t2, label

    assert reuse_or_generate_cohort("cpa", 2, root, workers=2, **OPTIONS) == datalist
    assert _stamp(root) == first  # reused: nothing written again

    # the preset's name is the same, one of its settings is not (as a release turning a flag on)
    field = next(f.name for f in dataclasses.fields(PRESETS["plausible"]) if isinstance(f.default, bool)
                 and not getattr(PRESETS["plausible"], f.name))  # fmt: skip
    monkeypatch.setitem(PRESETS, "plausible", dataclasses.replace(PRESETS["plausible"], **{field: True}))
    reuse_or_generate_cohort("cpa", 2, root, **OPTIONS)
    assert _stamp(root) != first
    assert json.loads((root / "cohort.json").read_text())["randomisation"][field] is True


def test_an_unfinished_or_other_cohort_is_generated_again(tmp_path):
    root = tmp_path / "cohort"
    reuse_or_generate_cohort("cpa", 2, root, **OPTIONS)
    first = _stamp(root)
    (root / "cohort.json").unlink()  # written last: a run that did not finish
    reuse_or_generate_cohort("cpa", 2, root, **OPTIONS)
    second = _stamp(root)
    assert second.keys() == first.keys() and second != first
    reuse_or_generate_cohort("cpa", 2, root, **{**OPTIONS, "seed": 4})
    third = _stamp(root)
    assert third != second
    reuse_or_generate_cohort("cpa", 2, root, **{**OPTIONS, "seed": 4, "reader_accuracy": 0.5})  # other readings
    assert _stamp(root) != third and json.loads((root / "cohort.json").read_text())["reader_accuracy"] == 0.5


def test_an_unknown_preset_or_disease_is_named():
    with pytest.raises(ValueError, match="moderate"):
        cohort_settings("cpa", 2, randomise="moderat")
    with pytest.raises(ValueError, match="glioma"):
        cohort_settings("gliomas", 2)
