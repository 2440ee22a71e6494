"""Training: the reference weights mednet ships, and ``mednet train`` on a researcher's own cases.

:mod:`~mednet.training.reference` is the deterministic recipe of the shipped weights;
:mod:`~mednet.training.train` trains a disease's two bundles on one patient-level split.
"""

from mednet.training.train import (
    TrainingRunError,
    parse_setting,
    prepare_split,
    read_grades,
    run_models,
    run_settings,
    train_run,
)

__all__ = [
    "TrainingRunError",
    "parse_setting",
    "prepare_split",
    "read_grades",
    "run_models",
    "run_settings",
    "train_run",
]
