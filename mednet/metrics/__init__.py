"""Metrics at patient level with bootstrap confidence intervals: segmentation, detection."""

from mednet.metrics.bootstrap import bootstrap_ci, mean_ci
from mednet.metrics.detection import detection_counts, detection_summary
from mednet.metrics.localisation import evaluate_localisation, map_labels
from mednet.metrics.segmentation import segmentation_scores

__all__ = [
    "bootstrap_ci",
    "detection_counts",
    "detection_summary",
    "evaluate_localisation",
    "map_labels",
    "mean_ci",
    "segmentation_scores",
]
