"""reuse_or_generate_cohort: the same cohort is reused, another one (a preset changed by a release) is not."""

from __future__ import annotations

import dataclasses
import functools
import json

import pytest

from mednet.synthetic import cohort
from mednet.synthetic.cohort import cohort_settings, reuse_or_generate_cohort
from mednet.synthetic.randomise import PRESETS

OPTIONS = {"size": "small", "seed": 3, "balance": {"AN": 1.0, "MG": 1.0}, "randomise": "plausible"}


@pytest.fixture
def drawn(monkeypatch):
    """The cohorts generate_cohort actually draws (their seeds), in order."""
    calls, generate = [], cohort.generate_cohort

    @functools.wraps(generate)  # its signature too: cohort_settings reads it
    def counted(*args, **kwargs):
        calls.append(kwargs["seed"])
        return generate(*args, **kwargs)

    monkeypatch.setattr(cohort, "generate_cohort", counted)
    return calls


def test_the_same_cohort_is_reused_and_a_changed_preset_makes_a_new_one(tmp_path, monkeypatch, drawn):
    root = tmp_path / "cohort"
    datalist = reuse_or_generate_cohort("cpa", 2, root, **OPTIONS)
    made = json.loads((root / "cohort.json").read_text())
    assert made["randomisation"] == json.loads(json.dumps(dataclasses.asdict(PRESETS["plausible"])))
    assert {k: made[k] for k in cohort_settings("cpa", 2, **OPTIONS)} == cohort_settings("cpa", 2, **OPTIONS)
    assert len(list(root.rglob("*.nii.gz"))) == 2 * 3 and drawn == [3]  # two cases: t1c, t2, label

    assert reuse_or_generate_cohort("cpa", 2, root, workers=2, **OPTIONS) == datalist
    assert drawn == [3]  # reused: nothing drawn again

    # the preset's name is the same, one of its settings is not (as a release turning a flag on)
    field = next(f.name for f in dataclasses.fields(PRESETS["plausible"]) if isinstance(f.default, bool)
                 and not getattr(PRESETS["plausible"], f.name))  # fmt: skip
    monkeypatch.setitem(PRESETS, "plausible", dataclasses.replace(PRESETS["plausible"], **{field: True}))
    reuse_or_generate_cohort("cpa", 2, root, **OPTIONS)
    assert drawn == [3, 3]
    assert json.loads((root / "cohort.json").read_text())["randomisation"][field] is True


def test_an_unfinished_or_other_cohort_is_generated_again(tmp_path, drawn):
    root = tmp_path / "cohort"
    reuse_or_generate_cohort("cpa", 2, root, **OPTIONS)
    (root / "cohort.json").unlink()  # written last: a run that did not finish
    reuse_or_generate_cohort("cpa", 2, root, **OPTIONS)
    assert drawn == [3, 3]
    reuse_or_generate_cohort("cpa", 2, root, **{**OPTIONS, "seed": 4})
    assert drawn == [3, 3, 4]
    reuse_or_generate_cohort("cpa", 2, root, **{**OPTIONS, "seed": 4, "reader_accuracy": 0.5})  # other readings
    assert drawn == [3, 3, 4, 4] and json.loads((root / "cohort.json").read_text())["reader_accuracy"] == 0.5


def test_an_unknown_preset_or_disease_is_named():
    with pytest.raises(ValueError, match="moderate"):
        cohort_settings("cpa", 2, randomise="moderat")
    with pytest.raises(ValueError, match="glioma"):
        cohort_settings("gliomas", 2)


def _files(root) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_an_interrupted_generation_keeps_its_finished_cases(tmp_path, monkeypatch):
    """Killed mid-way, generated again with the same settings: only the unfinished cases are rendered, same files."""
    fresh = _files(cohort.generate_cohort("cpa", 3, tmp_path / "fresh", **OPTIONS).root)
    rendered, render = [], cohort._render_case

    def failing_at_2(job):
        if job.index == 2:
            raise KeyboardInterrupt  # the run stops there
        return render(job)

    monkeypatch.setattr(cohort, "_render_case", failing_at_2)
    with pytest.raises(KeyboardInterrupt):
        cohort.generate_cohort("cpa", 3, tmp_path / "cut", **OPTIONS)
    assert not (tmp_path / "cut" / "cohort.json").exists()
    assert sorted(p.name for p in (tmp_path / "cut" / ".progress").iterdir()) == ["0000.json", "0001.json"]

    def counted(job):
        rendered.append(job.index)
        return render(job)

    monkeypatch.setattr(cohort, "_render_case", counted)
    (tmp_path / "cut" / ".progress" / "0001.json").write_text('{"settings": ')  # cut while written: rendered again
    resumed = cohort.generate_cohort("cpa", 3, tmp_path / "cut", **OPTIONS)
    assert rendered == [1, 2] and _files(resumed.root) == fresh  # no .progress left, every file the same

    (tmp_path / "cut" / "cohort.json").unlink()  # interrupted again at the end, then other settings: all rendered
    (tmp_path / "cut" / ".progress").mkdir()
    (tmp_path / "cut" / ".progress" / "0000.json").write_text(json.dumps({"settings": "other", "row": {}, "record": {}}))
    rendered.clear()
    cohort.generate_cohort("cpa", 3, tmp_path / "cut", **{**OPTIONS, "reader_accuracy": 0.7})
    assert rendered == [0, 1, 2]
