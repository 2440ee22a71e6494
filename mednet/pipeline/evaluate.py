"""Metrics of a ``mednet predict`` output folder against the ground truth.

``mednet evaluate --pred OUT --datalist datalist.json`` and ``mednet predict`` (when the
cases carry their true class and label map) both call :func:`evaluate_predictions`:
localisation (Dice, HD95, lesion detection) with :func:`mednet.metrics.evaluate_localisation`,
grading and fusion with :func:`mednet.metrics.evaluate_grading`, all at patient level with
95% bootstrap intervals. Files: ``OUT/metrics.json`` (headline figures and both full
results) and ``OUT/metrics/`` (per-case tables, ROC curves, confusion matrices).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path

from mednet.pipeline.diseases import DiseaseSpec, disease_spec

__all__ = ["evaluate_predictions", "read_records"]


def read_records(out: os.PathLike | str) -> list[dict]:
    """The complete cases' ``<case>/<case>.json`` records of an output folder."""
    out = Path(out)
    records = (json.loads(p.read_text()) for p in sorted(out.glob("*/*.json")) if p.stem == p.parent.name)
    return [r for r in records if isinstance(r, dict) and r.get("case_id") and r.get("disease")]


def _figure(summary: Mapping, *path: str) -> dict | None:
    node = summary
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return {k: node.get(k) for k in ("value", "ci_low", "ci_high", "n")} if isinstance(node, Mapping) else None


def evaluate_predictions(
    out: os.PathLike | str,
    spec: DiseaseSpec | None = None,
    datalist: os.PathLike | str | None = None,
    *,
    bundles: os.PathLike | str | None = None,
    n_boot: int = 2000,
) -> dict:
    """Score a prediction folder; write ``OUT/metrics.json`` and ``OUT/metrics/``.

    Args:
        out: the ``mednet predict`` output folder.
        spec: the disease; default from the records (``"disease"``).
        datalist: where the truth comes from (every partition, matched by case id); default
            the truth the input cases carried (``true_class``, ``reference_label`` in each record).
        bundles: the bundles' folder (for the label table), when ``spec`` is not given.
        n_boot: bootstrap resamples.

    Returns:
        ``{"headline": {stage: {figure: ci}}, "grading": ..., "localisation": ...}``.

    Raises:
        ValueError: no complete case, or no case with a known truth.
    """
    from mednet.io import load_datalist
    from mednet.metrics import evaluate_grading, evaluate_localisation

    out = Path(out)
    records = read_records(out)
    if not records:
        raise ValueError(f"{out}: no complete case (no <case>/<case>.json) to evaluate")
    spec = spec or disease_spec(records[0]["disease"], bundles)
    truth: dict[str, dict] = {}
    if datalist:
        loaded = load_datalist(datalist)
        truth = {str(c["case_id"]): c for p in ("training", "validation", "testing") for c in loaded.get(p, [])}
    metrics_dir = out / "metrics"
    metrics_dir.mkdir(exist_ok=True)
    result: dict = {"headline": {}, "cases": len(records)}

    graded = []
    for r in records:
        true_class = truth[r["case_id"]].get("class") if r["case_id"] in truth else r.get("true_class")
        if r.get("fused_class") and true_class in spec.classes:
            graded.append({"case_id": r["case_id"], "patient_id": r["patient_id"], "slices": r["slices"],
                           "true_class": true_class, "branches": r["sequences"], "fused": r["fused"],
                           "fused_class": r["fused_class"], "fusion": r["fusion"],
                           "aggregation": r["aggregation"]})  # fmt: skip
    if graded:
        (metrics_dir / "grading.json").write_text(
            json.dumps(
                {"classes": list(spec.classes), "aggregation": graded[0]["aggregation"], "cases": graded}, indent=2
            )
        )
        _concatenate_slices(out, [g["case_id"] for g in graded], {g["case_id"]: g["true_class"] for g in graded},
                            metrics_dir / "grading_slices.csv")  # fmt: skip
        grading = evaluate_grading(metrics_dir, metrics_dir, n_boot=n_boot)
        result["grading"] = grading
        fused = grading["patient_level"]["fused"]
        key = "auc" if "auc" in fused else "macro_f1"
        result["headline"]["grading"] = {
            f"fused {key}": _figure(fused, key),
            "fused decision accuracy": _figure(grading, "fused_decision", "accuracy"),
            **{
                f"{s} {key}": _figure(grading["patient_level"][s], key)
                for s in grading["patient_level"]
                if s != "fused"
            },
        }

    with_labels = []
    for r in records:
        label = truth[r["case_id"]].get("label") if r["case_id"] in truth else r.get("reference_label")
        if label:
            with_labels.append({"case_id": r["case_id"], "patient_id": r["patient_id"], "label": str(label)})
    if with_labels:
        listing = metrics_dir / "localisation_datalist.json"
        listing.write_text(json.dumps({"testing": with_labels}, indent=2))
        seg = spec.localisation.parser("inference", "evaluate")
        localisation = evaluate_localisation(out, listing, spec.localisation.label_table,
                                             seg.get_parsed_content("lesion_classes"),
                                             source_labels=seg.get_parsed_content("source_labels"),
                                             target_labels=seg.get_parsed_content("target_labels"),
                                             out_dir=metrics_dir, n_boot=n_boot,
                                             min_reference_mm3=seg.get_parsed_content("min_reference_mm3"))  # fmt: skip
        summary = localisation.get("summary", localisation)
        result["localisation"] = summary
        result["headline"]["localisation"] = {
            "lesion Dice": _figure(summary, "dice_lesions"),
            "lesion sensitivity": _figure(summary, "detection", "sensitivity"),
            "false positives per scan": _figure(summary, "detection", "false_positives_per_scan"),
        }
    if not graded and not with_labels:
        raise ValueError(f"{out}: no case with a known true class or label map; give --datalist")
    result["headline"] = {s: {k: v for k, v in f.items() if v} for s, f in result["headline"].items()}
    (out / "metrics.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    return result


def _concatenate_slices(out: Path, case_ids: list[str], classes: Mapping[str, str], target: Path) -> None:
    """Every case's ``<case>_grading_slices.csv`` in one file, with the true class filled in."""
    header, rows = None, []
    for case_id in case_ids:
        path = out / case_id / f"{case_id}_grading_slices.csv"
        if not path.is_file():
            continue
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            header = header or reader.fieldnames
            for row in reader:
                row["true_class"] = classes[case_id]
                rows.append(row)
    with target.open("w", newline="") as f:
        writer = csv.DictWriter(f, header or ["case_id", "patient_id", "slice_index", "true_class"])
        writer.writeheader()
        writer.writerows(rows)
