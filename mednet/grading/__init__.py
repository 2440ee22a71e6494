"""Grading stage: lesion slices or volumes, lesion features, imbalance options, aggregation, a case's grading.

:func:`grade_case` turns a case's slice probabilities into its diagnosis; :class:`FeatureOOD`
says whether a case looks like the cases the grading was trained on.
"""

from mednet.grading.aggregate import AGGREGATION_METHODS, aggregate, patient_probabilities
from mednet.grading.case import CaseGrading, class_probabilities, grade_case
from mednet.grading.features import FEATURE_NAMES, lesion_features
from mednet.grading.losses import IMBALANCE_OPTIONS, FocalLoss, balanced_sampler, class_counts, make_criterion
from mednet.grading.ood import FeatureOOD, fit_feature_ood, penultimate_features
from mednet.grading.roi import crop_box, extract_slices, lesion_slices

__all__ = [
    "AGGREGATION_METHODS",
    "FEATURE_NAMES",
    "IMBALANCE_OPTIONS",
    "CaseGrading",
    "FeatureOOD",
    "FocalLoss",
    "aggregate",
    "balanced_sampler",
    "class_counts",
    "class_probabilities",
    "crop_box",
    "extract_slices",
    "fit_feature_ood",
    "grade_case",
    "lesion_features",
    "lesion_slices",
    "make_criterion",
    "patient_probabilities",
    "penultimate_features",
]
