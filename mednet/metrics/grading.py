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
from pathlib import Path

import numpy as np

from mednet.metrics.bootstrap import bootstrap_ci
from mednet.metrics.classification import classification_summary, plot_confusion, plot_roc

__all__ = ["evaluate_grading"]


def _probabilities(rows: list[dict], key: str, classes: list[str], branch: str | None = None) -> np.ndarray:
    table = [(r[key] if branch is None else r[key][branch]) for r in rows]
    p = np.array([[t[c] for c in classes] for t in table], dtype=float)
    return p[:, 1] if len(classes) == 2 else p


def _by_patient(cases: list[dict]) -> list[dict]:
    """One row per patient: the mean of its cases' probabilities (most patients have one case)."""
    groups: dict[str, list[dict]] = {}
    for case in cases:
        groups.setdefault(case["patient_id"], []).append(case)
    out = []
    for patient, rows in groups.items():
        truths = {r["true_class"] for r in rows}
        if len(truths) != 1:
            raise ValueError(f"patient {patient}: cases disagree on the true class {sorted(truths)}")

        def mean(pick: list[dict]) -> dict[str, float]:
            return {c: float(np.mean([p[c] for p in pick])) for c in pick[0]}

        branches = {b: mean([r["branches"][b] for r in rows]) for b in rows[0]["branches"]}
        votes = [r["fused_class"] for r in rows]
        fused = mean([r["fused"] for r in rows])
        out.append({"patient_id": patient, "true_class": rows[0]["true_class"], "branches": branches,
                    "fused": fused, "fused_class": max(set(votes), key=votes.count)})  # fmt: skip
    return out


def evaluate_grading(
    pred_dir: os.PathLike | str, out_dir: os.PathLike | str | None = None, *, n_boot: int = 2000, seed: int = 0
) -> dict:
    """Patient-level (primary) and slice-level (secondary) figures of ``pred_dir``'s predictions.

    Args:
        pred_dir: the folder with ``grading.json`` and ``grading_slices.csv``.
        out_dir: where ``metrics.json`` and the PNGs go (default ``pred_dir``).
        n_boot: bootstrap resamples.
        seed: bootstrap seed.

    Returns:
        ``{"classes", "patients", "aggregation", "patient_level": {seq | "fused": summary},
        "fused_decision": {"accuracy": ci} (the fusion rule's class, e.g. the majority vote),
        "slice_level": {seq: summary}, "notes": [...] (only when a ROC curve could not be drawn)}``,
        each summary from
        :func:`mednet.metrics.classification_summary`.

    Raises:
        ValueError: no case with a true class (nothing to evaluate).
    """
    pred_dir = Path(pred_dir)
    out_dir = Path(out_dir) if out_dir else pred_dir
    doc = json.loads((pred_dir / "grading.json").read_text())
    classes = list(doc["classes"])
    cases = [c for c in doc["cases"] if c.get("true_class")]
    if not cases:
        raise ValueError(f"{pred_dir / 'grading.json'}: no case has a true class; nothing to evaluate")
    patients = _by_patient(cases)
    y = [classes.index(p["true_class"]) for p in patients]
    branches = list(patients[0]["branches"])
    results: dict = {"classes": classes, "patients": len(patients), "aggregation": doc.get("aggregation"),
                     "patient_level": {}}  # fmt: skip
    for name in [*branches, "fused"]:
        p = _probabilities(patients, "fused", classes) if name == "fused" else _probabilities(
            patients, "branches", classes, name)  # fmt: skip
        summary = classification_summary(y, p, classes=classes, n_boot=n_boot, seed=seed)
        results["patient_level"][name] = summary
        try:
            plot_roc(y, p, out_dir / f"roc_{name}.png", title=f"ROC, {name}, patient level", classes=classes)
        except ValueError as error:  # the patients are all of one class: AUC and its curve are undefined
            results.setdefault("notes", []).append(f"no ROC curve for {name}: {error}")
        plot_confusion(summary["confusion_matrix"], classes, out_dir / f"confusion_{name}.png",
                       title=f"Confusion matrix, {name}, patient level")  # fmt: skip
    decided = [classes.index(p["fused_class"]) == t for p, t in zip(patients, y, strict=True)]
    results["fused_decision"] = {
        "accuracy": bootstrap_ci(decided, lambda s: float(np.mean(s)) if len(s) else float("nan"),
                                 n_boot=n_boot, seed=seed),
        "note": "accuracy of the fused class as the network's fusion rule decides it (e.g. majority vote)",
    }  # fmt: skip
    results["slice_level"] = _slice_level(pred_dir / "grading_slices.csv", classes, branches, n_boot, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=2, allow_nan=True) + "\n")
    return results


def _slice_level(path: Path, classes: list[str], branches: list[str], n_boot: int, seed: int) -> dict:
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["true_class"]]
    y = [classes.index(r["true_class"]) for r in rows]
    out = {}
    for name in branches:
        p = np.array([[float(r[f"p_{name}_{c}"]) for c in classes] for r in rows])
        out[name] = classification_summary(
            y, p[:, 1] if len(classes) == 2 else p, classes=classes, n_boot=n_boot, seed=seed, level="slice"
        )
    return out
