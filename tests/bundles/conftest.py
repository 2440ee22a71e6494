"""Tiny synthetic cohorts and briefly trained checkpoints, shared by the bundle tests."""

from __future__ import annotations

import json

import pytest

from mednet.synthetic import generate_cohort
from tests.bundles.helpers import DISEASE, TINY, run_bundle


@pytest.fixture(scope="session")
def tiny_cohorts(tmp_path_factory) -> dict:
    """Per bundle: a datalist of four ``small`` cases (two training, one validation, one testing)."""
    out = {}
    for bundle, disease in DISEASE.items():
        root = tmp_path_factory.mktemp(disease)
        generate_cohort(disease, 4, root, size="small", seed=3, workers=1)
        doc = json.loads((root / "datalist.json").read_text())
        cases = sorted((c for p in ("training", "validation", "testing") for c in doc[p]), key=lambda c: c["case_id"])
        doc.update(training=cases[:2], validation=cases[2:3], testing=cases[3:])
        (root / "datalist.json").write_text(json.dumps(doc, indent=2))
        out[bundle] = root / "datalist.json"
    return out


@pytest.fixture(scope="session")
def tiny_checkpoints(tiny_cohorts, tmp_path_factory) -> dict:
    """Per bundle: ``model.pt`` from one tiny epoch of ``train.json``."""
    out = {}
    for bundle, datalist in tiny_cohorts.items():
        work = tmp_path_factory.mktemp(f"{bundle}_train")
        run_bundle(
            bundle,
            ["train"],
            datalist=str(datalist),
            ckpt_dir=str(work / "models"),
            output_dir=str(work / "eval"),
            **TINY,
        )
        out[bundle] = work
    return out
