"""Grading stage inputs: lesion slices or volumes cropped for the classifier, and patient aggregation."""

from mednet.grading.aggregate import AGGREGATION_METHODS, aggregate, patient_probabilities
from mednet.grading.roi import crop_box, extract_slices, extract_volume, lesion_slices, volume_crop_box

__all__ = [
    "AGGREGATION_METHODS",
    "aggregate",
    "crop_box",
    "extract_slices",
    "extract_volume",
    "lesion_slices",
    "patient_probabilities",
    "volume_crop_box",
]
