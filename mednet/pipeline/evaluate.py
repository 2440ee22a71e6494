"""Metrics of a ``mednet predict`` output folder against the ground truth.

``mednet evaluate --pred OUT --datalist datalist.json`` and ``mednet predict`` (when the
cases carry their true class and label map) both come to :func:`evaluate_records`:
``predict`` with the records it has, ``evaluate`` through :func:`evaluate_predictions`,
which reads them from the folder. It takes each case's localisation figures (Dice, HD95,
lesion detection; :func:`mednet.metrics.score_localisation`, computed by ``predict`` in memory when the case
came with its label map, or here from the written map when a datalist gives the truth)
and its grading, and summarises them at patient level with 95% bootstrap intervals
(:func:`mednet.metrics.summarise_localisation`, :func:`mednet.metrics.grading_metrics`).
Files: ``OUT/metrics.json`` (headline figures and both full results) and ``OUT/metrics/``
(per-case table, ROC curves, confusion matrices).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from mednet.io.atomic import atomic_path, write_json_atomic
from mednet.pipeline.diseases import DiseaseSpec, disease_spec

__all__ = ["evaluate_predictions", "evaluate_records", "read_records"]


def read_records(out: os.PathLike | str) -> list[dict]:
    """The complete cases' ``<case>/<case>.json`` records of an output folder."""
    from mednet.pipeline.case import read_case_record

    records = (read_case_record(out, d.name) for d in sorted(Path(out).iterdir()) if d.is_dir())
    return [r for r in records if r is not None]


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
    case_ids: Sequence[str] | None = None,
    n_boot: int = 2000,
) -> dict:
    """Score a prediction folder's records (:func:`read_records`) with :func:`evaluate_records`.

    Args:
        out: the ``mednet predict`` output folder.
        spec: the disease; default from the records (``"disease"``).
        datalist: where the truth comes from (every partition, matched by case id); default
            the truth the input cases carried.
        bundles: the bundles' folder, when ``spec`` is not given.
        case_ids: only these cases (a run's own; default every complete case in ``out``).
        n_boot: bootstrap resamples.

    Raises:
        ValueError: no complete case, or no case with a known truth.
    """
    from mednet.io import load_datalist

    out = Path(out)
    records = read_records(out)
    if case_ids is not None:
        wanted = set(map(str, case_ids))
        records = [r for r in records if r["case_id"] in wanted]
    if not records:
        raise ValueError(f"{out}: no complete case (no <case>/<case>.json) to evaluate")
    spec = spec or disease_spec(records[0]["disease"], bundles)
    truth = {}
    if datalist:
        loaded = load_datalist(datalist)
        truth = {str(c["case_id"]): c for p in ("training", "validation", "testing") for c in loaded.get(p, [])}
    return evaluate_records(records, spec, out, truth, n_boot=n_boot)


def evaluate_records(
    records: Sequence[Mapping], spec: DiseaseSpec, out: os.PathLike | str, truth: Mapping[str, Mapping] | None = None,
    *, n_boot: int = 2000,
) -> dict:  # fmt: skip
    """Score cases' records; write ``OUT/metrics.json`` and ``OUT/metrics/``.

    Args:
        records: the cases' records (``<case>/<case>.json`` as :func:`mednet.pipeline.predict_case`
            writes them); records of another disease are left out.
        spec: the disease.
        out: the output folder the records belong to (each case's written label map and
            slice table are read from it only where the truth has to be scored against them).
        truth: case id -> datalist case (``class``, ``label``); default the truth the input
            cases carried (``true_class`` and ``localisation_metrics`` in each record, from
            the label map the case came with).
        n_boot: bootstrap resamples.

    Returns:
        ``{"headline": {stage: {figure: ci}}, "grading": ..., "localisation": ...}``.

    Raises:
        ValueError: no case with a known truth.
    """
    from mednet.io import Grid, read_image, resample_to_grid
    from mednet.io.validation import spacing_from_affine
    from mednet.metrics import grading_metrics, map_labels, score_localisation, summarise_localisation

    out = Path(out)
    records = [r for r in records if r["disease"] == spec.name]
    truth = dict(truth or {})
    metrics_dir = out / "metrics"
    metrics_dir.mkdir(exist_ok=True)
    result: dict = {"headline": {}, "cases": len(records)}

    graded, slices, not_graded = [], [], []
    for r in records:
        true_class = truth[r["case_id"]].get("class") if r["case_id"] in truth else r.get("true_class")
        if true_class in spec.classes and not r.get("fused_class"):
            not_graded.append(r["case_id"])  # no lesion found, or no grading sequence: counted, not dropped
        elif true_class in spec.classes:
            graded.append({**r, "true_class": true_class, "branches": r["sequences"]})
            slices += _slice_rows(out, r["case_id"], true_class)
    if graded:
        grading = grading_metrics(graded, spec.classes, slice_rows=slices, out_dir=metrics_dir, n_boot=n_boot)
        grading["calls"]["not_graded"] = len(not_graded)
        grading["calls"]["not_graded_cases"] = not_graded
        result["grading"] = grading
        fused = grading["patient_level"]["fused"]
        key = "auc" if "auc" in fused else "macro_f1"
        result["headline"]["grading"] = {
            f"fused {key}": _figure(fused, key),
            "fused decision accuracy": _figure(grading, "fused_decision", "accuracy"),
            "accuracy of determinate calls": _figure(grading, "calls", "accuracy"),
            **{f"{name} {key}": _figure(summary, key) for name, summary in grading["patient_level"].items()
               if name != "fused"},
        }  # fmt: skip

    seg = spec.localisation
    rows = []
    for r in records:
        scores = r.get("localisation_metrics")
        if r["case_id"] in truth and truth[r["case_id"]].get("label"):  # the datalist's truth: score the written map
            predicted = read_image(out / r["case_id"] / r["labels"], "label")
            reference = read_image(truth[r["case_id"]]["label"], "label")
            if not Grid.of(reference).matches(Grid.of(predicted)):  # as predict does: the truth onto the map's grid
                reference = resample_to_grid(reference, predicted, label=True)
            scores = score_localisation(
                predicted[0].numpy(), map_labels(reference[0].numpy().astype(int), *seg.truth_labels),
                spacing_from_affine(predicted.affine.numpy()), seg.classes_by_value, seg.lesion_classes,
                seg.min_reference_mm3,
            )  # fmt: skip
        if scores:
            rows.append({"case_id": r["case_id"], "patient_id": r["patient_id"], **scores})
    if rows:
        summary = summarise_localisation(rows, seg.classes_by_value, seg.lesion_classes, n_boot=n_boot)
        with atomic_path(metrics_dir / "localisation_cases.csv") as tmp, tmp.open("w", newline="") as stream:
            writer = csv.DictWriter(stream, list(dict.fromkeys(k for row in rows for k in row)), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        result["localisation"] = summary
        result["headline"]["localisation"] = {
            "lesion Dice": _figure(summary, "dice_lesions"),
            "lesion sensitivity": _figure(summary, "detection", "sensitivity"),
            "false positives per scan": _figure(summary, "detection", "false_positives_per_scan"),
        }
    if not_graded and not graded:
        result["grading"] = {"calls": {"not_graded": len(not_graded), "not_graded_cases": not_graded}}
    if not graded and not rows and not not_graded:
        raise ValueError(f"{out}: no case with a known true class or label map; give --datalist")
    result["headline"] = {s: {k: v for k, v in f.items() if v} for s, f in result["headline"].items()}
    write_json_atomic(out / "metrics.json", result, indent=2, default=float)
    return result


def _slice_rows(out: Path, case_id: str, true_class: str) -> list[dict]:
    """A case's ``<case>_grading_slices.csv`` rows, with the true class filled in."""
    path = out / case_id / f"{case_id}_grading_slices.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [{**row, "true_class": true_class} for row in csv.DictReader(f)]
