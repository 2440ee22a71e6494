"""Score a folder of localisation outputs against the ground truth of a datalist.

Used by the segmentation bundles' ``evaluate.json``, the localisation benchmark and
``mednet evaluate``: the predicted label maps (``<pred_dir>/<case>/<case>_labels.nii.gz``,
on each case's input grid) are compared with the datalist's ``label`` files on that
same grid, so the figures are those a reader of the written maps would measure.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mednet.errors import DatalistError
from mednet.io.atomic import atomic_path, write_json_atomic
from mednet.io.datalist import datalist_cases
from mednet.io.read import read_image
from mednet.io.validation import spacing_from_affine
from mednet.metrics.bootstrap import mean_ci
from mednet.metrics.detection import detection_counts, detection_summary
from mednet.metrics.segmentation import segmentation_scores

__all__ = ["evaluate_localisation", "map_labels", "score_localisation", "summarise_localisation"]


def map_labels(labels: np.ndarray, source: Sequence[int], target: Sequence[int]) -> np.ndarray:
    """Relabel ``source[i]`` as ``target[i]`` (others unchanged), as MONAI's ``MapLabelValued`` does in training."""
    labels = np.asarray(labels)
    out = labels.copy()
    for s, t in zip(source, target, strict=True):
        out[labels == s] = t
    return out


def _finite_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def evaluate_localisation(
    pred_dir: os.PathLike | str,
    datalist: os.PathLike | str,
    label_table: Sequence[Mapping],
    lesion_classes: Mapping,
    *,
    partition: str = "testing",
    source_labels: Sequence[int] = (),
    target_labels: Sequence[int] = (),
    out_dir: os.PathLike | str | None = None,
    n_boot: int = 2000,
    min_reference_mm3: float = 0.0,
) -> dict:
    """Per-case and summary segmentation and detection metrics at patient level.

    Args:
        pred_dir: folder of ``<case>/<case>_labels.nii.gz`` written by a segmentation bundle.
        datalist: the datalist whose ``partition`` cases (with ``label``) were predicted.
        label_table: the bundle's labels, ``[{"value", "name"}, ...]``.
        lesion_classes: lesion value -> name (JSON string keys accepted); all lesion
            values together are also scored as ``lesions``, and give the detection figures.
        partition: the datalist partition.
        source_labels: ground-truth values relabelled as in training (MONAI ``MapLabelValued``)...
        target_labels: ...into these values.
        out_dir: when given, ``metrics_cases.csv`` and ``metrics.json`` are written there.
        n_boot: bootstrap resamples for the 95% intervals.
        min_reference_mm3: detection floor: ground-truth lesion components smaller than
            this are not counted as lesions to detect (see
            :func:`mednet.metrics.detection_counts`); Dice and HD95 still use every voxel.

    Returns:
        ``{"cases": [per-case rows], "summary": {...}}``. The summary has, for each class
        and for ``lesions``, mean Dice and HD95 (mm) with 95% bootstrap intervals over
        patients, ``mean_organ_dice`` (each patient's mean over non-lesion classes), and
        the detection figures of :func:`mednet.metrics.detection_summary`.

    Raises:
        DatalistError: a case has no ground truth or no prediction.
    """
    classes = {int(row["value"]): str(row["name"]) for row in label_table}
    cases = datalist_cases(datalist, partition)
    rows = []
    for case in cases:
        cid = case["case_id"]
        if "label" not in case:
            raise DatalistError(f"{datalist}: {partition} case {cid} has no label to score against")
        pred_path = Path(pred_dir) / cid / f"{cid}_labels.nii.gz"
        if not pred_path.is_file():
            raise DatalistError(f"{pred_path}: no prediction for case {cid}")
        pred_image = read_image(pred_path, kind="label")
        reference = read_image(case["label"], kind="label")
        if pred_image.shape != reference.shape or not np.allclose(pred_image.affine, reference.affine, atol=1e-3):
            raise DatalistError(f"{pred_path}: not on the grid of the ground truth {case['label']}")
        ref = map_labels(np.asarray(reference[0]).astype(np.int64), source_labels, target_labels)
        spacing = tuple(float(s) for s in spacing_from_affine(np.asarray(pred_image.affine)))
        row = {"case_id": cid, "patient_id": case.get("patient_id", cid)}
        row.update(score_localisation(np.asarray(pred_image[0]), ref, spacing, classes, lesion_classes,
                                      min_reference_mm3))  # fmt: skip
        rows.append(row)
    result = {"cases": rows, "summary": summarise_localisation(rows, classes, lesion_classes, n_boot=n_boot)}
    if out_dir is not None:
        _write(result, Path(out_dir))
    return result


def score_localisation(
    pred: np.ndarray,
    truth: np.ndarray,
    spacing: Sequence[float],
    classes: Mapping[int, str],
    lesion_classes: Mapping,
    min_reference_mm3: float = 0.0,
) -> dict:
    """One case's figures: per-class Dice and HD95 (mm), lesion detection counts.

    Args:
        pred: ``(x, y, z)`` predicted label values.
        truth: ``(x, y, z)`` true label values on the same grid, already mapped to the
            bundle's values (:func:`map_labels`).
        spacing: voxel size, mm.
        classes: label value -> name (background excluded).
        lesion_classes: lesion value -> name (JSON string keys accepted); all lesion values
            together are also scored as ``lesions`` and give the detection counts.
        min_reference_mm3: true lesion components smaller than this are not counted as
            lesions to detect (:func:`mednet.metrics.detection_counts`).

    Returns:
        ``{"dice_<name>", "hd95_mm_<name>", ..., "mean_organ_dice"?, "reference", "detected",
        "predicted", "false"?}``.
    """
    pred = np.asarray(pred).astype(np.int64)
    truth = np.asarray(truth).astype(np.int64)
    lesion_values = sorted(int(k) for k in lesion_classes)
    scores = segmentation_scores(pred, truth, dict(classes), tuple(spacing))
    if lesion_values:
        scores.update(segmentation_scores(pred, truth, dict.fromkeys(lesion_values, "lesions"), tuple(spacing)))
    row: dict[str, float] = {}
    for name, score in scores.items():
        row[f"dice_{name}"] = score["dice"]
        row[f"hd95_mm_{name}"] = score["hd95_mm"]
    organs = [name for value, name in classes.items() if value not in lesion_values]
    if organs:
        row["mean_organ_dice"] = _finite_mean([scores[n]["dice"] for n in organs])
    if lesion_values:
        voxel_mm3 = float(np.prod(spacing))
        floor = int(np.ceil(min_reference_mm3 / voxel_mm3)) if min_reference_mm3 > 0 else 0
        row.update(detection_counts(pred, truth, lesion_values, min_reference_voxels=floor))
    return row


def summarise_localisation(
    rows: Sequence[Mapping], classes: Mapping[int, str], lesion_classes: Mapping, *, n_boot: int = 2000
) -> dict:
    """Patient-level summary of per-case rows (:func:`score_localisation` with ``case_id``, ``patient_id``).

    Returns:
        For each class and for ``lesions``: mean Dice and HD95 (mm) with 95% bootstrap
        intervals over patients; ``mean_organ_dice``; the detection figures of
        :func:`mednet.metrics.detection_summary`; ``cases`` and ``patients``.
    """
    lesion_values = sorted(int(k) for k in lesion_classes)
    patients = _per_patient([dict(r) for r in rows])
    summary: dict[str, object] = {"cases": len(rows), "patients": len(patients)}
    for name in dict.fromkeys([*classes.values(), *(["lesions"] if lesion_values else [])]):
        summary[f"dice_{name}"] = mean_ci([p[f"dice_{name}"] for p in patients], n_boot=n_boot)
        summary[f"hd95_mm_{name}"] = mean_ci([p[f"hd95_mm_{name}"] for p in patients], n_boot=n_boot)
    if any("mean_organ_dice" in p for p in patients):
        summary["mean_organ_dice"] = mean_ci([p["mean_organ_dice"] for p in patients], n_boot=n_boot)
    if lesion_values:
        summary["detection"] = detection_summary(patients, n_boot=n_boot)
    return summary


def _per_patient(rows: list[dict]) -> list[dict]:
    """One row per patient: scores averaged over the patient's cases, detection counts summed."""
    grouped: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        grouped[row["patient_id"]].append(row)
    patients = []
    for pid, group in grouped.items():
        patient: dict[str, object] = {"patient_id": pid}
        for key in group[0]:
            if key in ("case_id", "patient_id"):
                continue
            values = [r[key] for r in group]
            if key in ("reference", "detected", "predicted", "false"):
                patient[key] = int(sum(values))
            else:
                patient[key] = _finite_mean(values)
        patients.append(patient)
    return patients


def _json_safe(value):
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _write(result: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = result["cases"]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(out_dir / "metrics_cases.csv") as tmp, tmp.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    write_json_atomic(out_dir / "metrics.json", _json_safe(result), indent=2)
