"""Lesion-wise detection: overlap matching of lesion components, per scan and pooled."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["detection_counts", "detection_summary"]

_FULL_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


def detection_counts(
    prediction: np.ndarray,
    reference: np.ndarray,
    lesion_values: Sequence[int],
    min_overlap_voxels: int = 1,
    min_reference_voxels: int = 0,
) -> dict[str, int]:
    """Count detected, missed and false lesions in one scan.

    Lesions are 26-connected components of the voxels labelled with any of
    ``lesion_values``. A reference lesion is detected when a predicted lesion overlaps
    it by at least ``min_overlap_voxels``; a predicted lesion that overlaps no
    reference lesion is a false detection.

    Reference components under ``min_reference_voxels`` (e.g. a two-voxel fragment that
    partial volume split off a tumour) are below the detection floor: they are not
    lesions to find, and a predicted lesion overlapping one is not a false detection.

    Returns:
        ``{"reference", "detected", "predicted", "false"}``.
    """
    pred, n_pred = ndimage.label(np.isin(prediction, lesion_values), structure=_FULL_CONNECTIVITY)
    ref, n_ref = ndimage.label(np.isin(reference, lesion_values), structure=_FULL_CONNECTIVITY)
    both = (pred > 0) & (ref > 0)
    pairs, overlap = np.unique(np.stack([ref[both], pred[both]]), axis=1, return_counts=True)
    matched = pairs[:, overlap >= min_overlap_voxels]
    below: set[int] = set()
    if min_reference_voxels > 0 and n_ref:
        sizes = np.bincount(ref.ravel(), minlength=n_ref + 1)[1:]
        below = set((np.flatnonzero(sizes < min_reference_voxels) + 1).tolist())
    return {
        "reference": int(n_ref - len(below)),
        "detected": len(set(matched[0].tolist()) - below),
        "predicted": int(n_pred),
        "false": int(n_pred - len(set(matched[1].tolist()))),
    }


def _pooled(rows: Sequence[dict]) -> dict[str, float]:
    """The pooled figures over the scans in ``rows`` (NaN where one has nothing to measure).

    Lesion matching makes these mednet's own: a detected reference lesion and a matched
    predicted lesion are counted apart, so there is no single confusion matrix to hand to
    scikit-learn.
    """
    nan = float("nan")
    ref = sum(r["reference"] for r in rows)
    detected = sum(r["detected"] for r in rows)
    predicted = sum(r["predicted"] for r in rows)
    false = sum(r["false"] for r in rows)
    sensitivity = detected / ref if ref else nan
    precision = (predicted - false) / predicted if predicted else nan
    if not ref or not predicted:
        f1 = nan
    elif precision + sensitivity == 0:
        f1 = 0.0
    else:
        f1 = 2 * precision * sensitivity / (precision + sensitivity)
    return {
        "sensitivity": sensitivity,
        "missed_detection_rate": 1 - sensitivity,
        "false_detection_rate": false / predicted if predicted else nan,
        "false_positives_per_scan": false / len(rows) if rows else nan,
        "precision": precision,
        "lesion_f1": f1,
    }


def detection_summary(per_scan: Sequence[dict], **bootstrap) -> dict[str, dict]:
    """Pooled detection figures over scans, each with a bootstrap CI over patients.

    Args:
        per_scan: :func:`detection_counts` results, one per patient.
        bootstrap: options for :func:`mednet.metrics.bootstrap_cis` (``n_boot``,
            ``confidence``, ``seed``).

    Returns:
        ``{name: {"value", "ci_low", "ci_high", "n"}}`` for ``sensitivity``,
        ``missed_detection_rate`` (1 - sensitivity), ``false_detection_rate`` (false
        among predicted lesions), ``false_positives_per_scan``, ``precision`` and
        ``lesion_f1``, all from the same resamples of patients.
    """
    from mednet.metrics.bootstrap import bootstrap_cis

    return bootstrap_cis(per_scan, _pooled, **bootstrap)
