"""reference_cohort: the recipe's cohort, optional sequences included when the recipe names them."""

from __future__ import annotations

import json

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
