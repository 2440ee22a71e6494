"""Grading stage: lesion slices or volumes for the classifier, lesion features, imbalance options, aggregation."""

from mednet.grading.aggregate import AGGREGATION_METHODS, aggregate, patient_probabilities
from mednet.grading.features import FEATURE_NAMES, lesion_features
from mednet.grading.losses import IMBALANCE_OPTIONS, FocalLoss, balanced_sampler, class_counts, make_criterion
from mednet.grading.roi import crop_box, extract_slices, extract_volume, lesion_slices, volume_crop_box

__all__ = [
    "AGGREGATION_METHODS",
    "FEATURE_NAMES",
    "IMBALANCE_OPTIONS",
    "FocalLoss",
    "aggregate",
    "balanced_sampler",
    "class_counts",
    "crop_box",
    "extract_slices",
    "extract_volume",
    "lesion_features",
    "lesion_slices",
    "make_criterion",
    "patient_probabilities",
    "volume_crop_box",
]
