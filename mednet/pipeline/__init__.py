"""The end-to-end pipeline: localise -> grade each sequence -> fuse -> report, per case and per cohort.

Names are imported on first use, so that ``mednet --help`` (which reads
:data:`DISEASES`) does not import PyTorch.
"""

from __future__ import annotations

import importlib

__all__ = [
    "DISEASES",
    "CaseError",
    "DiseaseSpec",
    "disease_spec",
    "evaluate_predictions",
    "load_cases",
    "predict_case",
    "predict_cohort",
    "report_cohort",
]

_WHERE = {
    "DISEASES": "diseases",
    "DiseaseSpec": "diseases",
    "disease_spec": "diseases",
    "CaseError": "case",
    "predict_case": "case",
    "load_cases": "cohort",
    "predict_cohort": "cohort",
    "report_cohort": "summary",
    "evaluate_predictions": "evaluate",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"mednet.pipeline.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'mednet.pipeline' has no attribute {name!r}")
