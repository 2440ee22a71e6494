"""Fusion: from per-sequence probabilities (and clinicians' readings) to one diagnosis.

Rules (:class:`FusionMethod`): ``vote`` (majority, ties by :class:`TieRule`), ``mean``,
``weighted``, ``dl_mdt`` (paper A's weighted vote of models and clinicians) and
``stacking`` (a logistic regression fitted on validation predictions).
:class:`CaseFusion` applies one of them to a case, and says when the call is indeterminate
(too unsure, or a case unlike the training cases): the one place where a diagnosis is decided.
:func:`fit_min_confidence` fits how sure a call must be on the pipeline's own validation predictions.
"""

from mednet.fusion.case import CaseFusion, datalist_readings
from mednet.fusion.confidence import fit_min_confidence
from mednet.fusion.dlmdt import DLMDTResult, dl_mdt
from mednet.fusion.readings import merge_readings, read_clinician_csv, reading_votes
from mednet.fusion.rules import FusionMethod, TieRule, decide, fuse, majority_vote, mean_probability, weighted_average
from mednet.fusion.stacking import StackingFusion, fit_stacking

__all__ = [
    "CaseFusion",
    "DLMDTResult",
    "FusionMethod",
    "StackingFusion",
    "TieRule",
    "datalist_readings",
    "decide",
    "dl_mdt",
    "fit_min_confidence",
    "fit_stacking",
    "fuse",
    "majority_vote",
    "mean_probability",
    "merge_readings",
    "read_clinician_csv",
    "reading_votes",
    "weighted_average",
]
