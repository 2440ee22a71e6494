"""Metrics at patient level with bootstrap confidence intervals: segmentation, detection, classification."""

from mednet.metrics.bootstrap import bootstrap_ci, bootstrap_cis, bootstrap_resamples, mean_ci
from mednet.metrics.classification import (
    SLICE_LEVEL_NOTE,
    classification_summary,
    expected_calibration_error,
    plot_confusion,
    plot_roc,
)
from mednet.metrics.detection import detection_counts, detection_summary
from mednet.metrics.grading import evaluate_grading, grading_metrics
from mednet.metrics.localisation import evaluate_localisation, map_labels, score_localisation, summarise_localisation
from mednet.metrics.segmentation import segmentation_scores

__all__ = [
    "SLICE_LEVEL_NOTE",
    "bootstrap_ci",
    "bootstrap_cis",
    "bootstrap_resamples",
    "classification_summary",
    "detection_counts",
    "detection_summary",
    "evaluate_grading",
    "evaluate_localisation",
    "expected_calibration_error",
    "grading_metrics",
    "map_labels",
    "mean_ci",
    "plot_confusion",
    "plot_roc",
    "score_localisation",
    "segmentation_scores",
    "summarise_localisation",
]
