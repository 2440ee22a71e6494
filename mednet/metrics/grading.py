"""Patient-level evaluation of a classification bundle's predictions (``grading.json``).

:class:`mednet.engines.GradingWriter` writes one row per case with each sequence's
probabilities aggregated over the case's slices, and the fused result. This module turns
those rows into the figures clinicians read: for each sequence and for the fusion, the
patient-level accuracy, sensitivity, specificity, precision, F1, ROC AUC, Brier score and
calibration error with 95% bootstrap intervals over patients, a ROC curve and a confusion
matrix as PNG; the slice-level figures follow as a secondary, labelled block.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mednet.grading.aggregate import aggregate
from mednet.io.atomic import write_json_atomic
from mednet.metrics.bootstrap import bootstrap_ci
from mednet.metrics.classification import classification_summary, plot_confusion, plot_roc

__all__ = ["evaluate_grading", "grading_metrics"]


def _probabilities(rows: list[dict], key: str, classes: list[str], branch: str | None = None) -> np.ndarray:
    table = [(r[key] if branch is None else r[key][branch]) for r in rows]
    p = np.array([[t[c] for c in classes] for t in table], dtype=float)
    return p[:, 1] if len(classes) == 2 else p


def _by_patient(cases: Sequence[Mapping]) -> list[dict]:
    """One row per patient: the mean of its cases' probabilities (most patients have one case).

    The cases are combined by :func:`mednet.grading.aggregate.aggregate` (``"mean"``), the
    same function that combines a case's slices, so there is one rule for pooling probabilities.

    A sequence missing from some of a patient's cases is averaged over the cases that have
    it; the patient's decided class and call are its cases' (the most common, ties to the
    first case's), so that a patient with one case keeps exactly the fusion's decision.
    """
    groups: dict[str, list[Mapping]] = {}
    for case in cases:
        groups.setdefault(str(case["patient_id"]), []).append(case)
    out = []
    for patient, rows in groups.items():
        truths = {r["true_class"] for r in rows}
        if len(truths) != 1:
            raise ValueError(f"patient {patient}: cases disagree on the true class {sorted(truths)}")

        def mean(pick: list[Mapping]) -> dict[str, float]:
            names = list(pick[0])
            return dict(zip(names, map(float, aggregate(np.array([[p[c] for c in names] for p in pick]))), strict=True))

        names = dict.fromkeys(b for r in rows for b in r["branches"])
        branches = {b: mean([r["branches"][b] for r in rows if b in r["branches"]]) for b in names}
        votes = [r["fused_class"] for r in rows]
        calls = [(r.get("fusion") or {}).get("call", r["fused_class"]) for r in rows]
        out.append({"patient_id": patient, "true_class": rows[0]["true_class"], "branches": branches,
                    "fused": mean([r["fused"] for r in rows]), "fused_class": max(votes, key=votes.count),
                    "call": max(calls, key=calls.count)})  # fmt: skip
    return out


def grading_metrics(
    cases: Sequence[Mapping],
    classes: Sequence[str],
    *,
    slice_rows: Sequence[Mapping] = (),
    out_dir: os.PathLike | str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict:
    """Patient-level (primary) and slice-level (secondary) figures of graded cases.

    Args:
        cases: one record per case: ``patient_id``, ``true_class``, ``branches`` (sequence ->
            class -> probability; a case may lack a sequence), ``fused``, ``fused_class`` and
            optionally ``fusion`` with ``call`` (the class or ``"indeterminate"``).
        classes: the class names in output order.
        slice_rows: one row per graded slice: ``true_class`` and ``p_<sequence>_<class>``.
        out_dir: where the ROC and confusion-matrix PNGs go (none when None).
        n_boot: bootstrap resamples.
        seed: bootstrap seed.

    Returns:
        ``{"classes", "patients", "patient_level": {seq | "fused": summary}, "fused_decision":
        {"accuracy": ci}, "calls": {"indeterminate", "determinate", "accuracy": ci},
        "slice_level": {seq: summary}, "notes"?}``, each summary from
        :func:`mednet.metrics.classification_summary`; a sequence is scored over the patients that have it.

    Raises:
        ValueError: no case with a true class (nothing to evaluate).
    """
    classes = list(classes)
    cases = [c for c in cases if c.get("true_class")]
    if not cases:
        raise ValueError("no graded case has a true class; nothing to evaluate")
    patients = _by_patient(cases)
    results: dict = {"classes": classes, "patients": len(patients), "patient_level": {}}
    names = list(dict.fromkeys(b for p in patients for b in p["branches"]))
    for name in [*names, "fused"]:
        rows = patients if name == "fused" else [p for p in patients if name in p["branches"]]
        y = [classes.index(p["true_class"]) for p in rows]
        p = _probabilities(rows, "fused", classes) if name == "fused" else _probabilities(rows, "branches", classes,
                                                                                          name)  # fmt: skip
        summary = classification_summary(y, p, classes=classes, n_boot=n_boot, seed=seed)
        results["patient_level"][name] = summary
        if out_dir is None:
            continue
        out_dir = Path(out_dir)
        try:
            plot_roc(y, p, out_dir / f"roc_{name}.png", title=f"ROC, {name}, patient level", classes=classes)
        except ValueError as error:  # the patients are all of one class: AUC and its curve are undefined
            results.setdefault("notes", []).append(f"no ROC curve for {name}: {error}")
        plot_confusion(summary["confusion_matrix"], classes, out_dir / f"confusion_{name}.png",
                       title=f"Confusion matrix, {name}, patient level")  # fmt: skip
    y = [classes.index(p["true_class"]) for p in patients]
    decided = [classes.index(p["fused_class"]) == t for p, t in zip(patients, y, strict=True)]
    results["fused_decision"] = {
        "accuracy": bootstrap_ci(decided, _mean, n_boot=n_boot, seed=seed),
        "note": "accuracy of the fused class as the fusion rule decides it (e.g. majority vote), indeterminate or not",
    }  # fmt: skip
    called = [p["call"] == p["true_class"] for p in patients if p["call"] in classes]
    results["calls"] = {
        "indeterminate": sum(p["call"] not in classes for p in patients), "determinate": len(called),
        "accuracy": bootstrap_ci(called, _mean, n_boot=n_boot, seed=seed) if called else None,
        "note": "accuracy of the calls that were not indeterminate (too unsure, or unlike the training cases)",
    }  # fmt: skip
    results["slice_level"] = _slice_level(slice_rows, classes, names, n_boot, seed)
    return results


def _mean(sample: Sequence) -> float:
    return float(np.mean(sample)) if len(sample) else float("nan")


def evaluate_grading(
    pred_dir: os.PathLike | str, out_dir: os.PathLike | str | None = None, *, n_boot: int = 2000, seed: int = 0
) -> dict:
    """:func:`grading_metrics` of a classification bundle's ``grading.json`` and ``grading_slices.csv``.

    Args:
        pred_dir: the folder the bundle's ``GradingWriter`` wrote.
        out_dir: where ``metrics.json`` and the PNGs go (default ``pred_dir``).
        n_boot: bootstrap resamples.
        seed: bootstrap seed.

    Returns:
        :func:`grading_metrics`'s result, with the aggregation.

    Raises:
        ValueError: no case with a true class (nothing to evaluate).
    """
    pred_dir = Path(pred_dir)
    out_dir = Path(out_dir) if out_dir else pred_dir
    doc = json.loads((pred_dir / "grading.json").read_text())
    slices = pred_dir / "grading_slices.csv"
    rows = []
    if slices.is_file():
        with slices.open(newline="") as f:
            rows = list(csv.DictReader(f))
    out_dir.mkdir(parents=True, exist_ok=True)
    results = grading_metrics(doc["cases"], doc["classes"], slice_rows=rows, out_dir=out_dir, n_boot=n_boot,
                              seed=seed)  # fmt: skip
    results["aggregation"] = doc.get("aggregation")
    write_json_atomic(out_dir / "metrics.json", results, indent=2, allow_nan=True)
    return results


def _slice_level(rows: Sequence[Mapping], classes: list[str], branches: list[str], n_boot: int, seed: int) -> dict:
    rows = [r for r in rows if r.get("true_class")]
    y = [classes.index(r["true_class"]) for r in rows]
    out = {}
    for name in branches:
        have = [i for i, r in enumerate(rows) if r.get(f"p_{name}_{classes[0]}") not in (None, "")]
        if not have:
            continue
        p = np.array([[float(rows[i][f"p_{name}_{c}"]) for c in classes] for i in have])
        out[name] = classification_summary(
            [y[i] for i in have], p[:, 1] if len(classes) == 2 else p, classes=classes, n_boot=n_boot, seed=seed,
            level="slice",
        )  # fmt: skip
    return out
