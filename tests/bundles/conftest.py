"""Tiny synthetic cohorts and briefly trained checkpoints, shared by the bundle tests."""

from __future__ import annotations

import json

import pytest

from mednet.synthetic import generate_cohort
from tests.bundles.helpers import CLASSIFICATION, DISEASE, TINY, TINY_GRADING, run_bundle


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


def _train_each(cohorts: dict, settings: dict, tmp_path_factory) -> dict:
    """Per bundle: a folder with ``models/model.pt`` and ``eval/`` from ``train.json`` with ``settings``."""
    out = {}
    for bundle, datalist in cohorts.items():
        work = tmp_path_factory.mktemp(f"{bundle}_train")
        run_bundle(bundle, ["train"], datalist=str(datalist), ckpt_dir=str(work / "models"),
                   output_dir=str(work / "eval"), **settings)  # fmt: skip
        out[bundle] = work
    return out


@pytest.fixture(scope="session")
def tiny_checkpoints(tiny_cohorts, tmp_path_factory) -> dict:
    """Per segmentation bundle: ``model.pt`` from one tiny epoch of ``train.json``."""
    return _train_each(tiny_cohorts, TINY, tmp_path_factory)


@pytest.fixture(scope="session")
def grading_cohorts(tmp_path_factory) -> dict:
    """Per classification bundle: ``small`` cases, two per class in training, one per class in validation and test."""
    out = {}
    for bundle, (disease, classes) in CLASSIFICATION.items():
        root = tmp_path_factory.mktemp(f"{disease}_grading")
        generate_cohort(disease, 4 * len(classes) + 2, root, size="small", seed=5, workers=1,
                        balance=dict.fromkeys(classes, 1.0))  # fmt: skip
        doc = json.loads((root / "datalist.json").read_text())
        cases = sorted((c for p in ("training", "validation", "testing") for c in doc[p]), key=lambda c: c["case_id"])
        by_class = {c: [x for x in cases if x["class"] == c] for c in classes}
        assert all(len(v) >= 4 for v in by_class.values()), {c: len(v) for c, v in by_class.items()}
        doc.update(training=[v[i] for v in by_class.values() for i in (0, 1)],
                   validation=[v[2] for v in by_class.values()], testing=[v[3] for v in by_class.values()])  # fmt: skip
        (root / "datalist.json").write_text(json.dumps(doc, indent=2))
        out[bundle] = root / "datalist.json"
    return out


@pytest.fixture(scope="session")
def grading_checkpoints(grading_cohorts, tmp_path_factory) -> dict:
    """Per classification bundle: ``model.pt`` from one tiny epoch of ``train.json``."""
    return _train_each(grading_cohorts, TINY_GRADING, tmp_path_factory)
