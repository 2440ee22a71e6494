"""How hard are the synthetic cohorts? A trivial-feature baseline must not separate the classes.

For each disease, generates a cohort (default 200 cases, the papers' class balance),
computes per case each sequence's mean intensity inside the ground-truth lesion mask
and the lesion volume (ml), and fits a logistic regression on these features
(5-fold stratified cross-validation, standardised features). The cross-validated
ROC AUC (macro one-vs-rest for the neuroblastoma stages) must stay at or below 0.85:
the classes must be learnable from the images, not from these statistics.

    python scripts/benchmark_synthetic_difficulty.py --cases 200 --out difficulty.json
    python scripts/benchmark_synthetic_difficulty.py --cases 200 --randomise plausible --out difficulty_plausible.json

With ``--randomise`` the cohorts are domain-randomised (``mednet synth --randomise``): the
bound must hold for them too (the reference grading weights are trained on ``plausible``).

Writes JSON: per disease the AUC, the AUC of each feature alone, class counts,
generation seconds per case, and whether the 0.85 bound holds.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mednet.synthetic import DISEASES, generate_cohort

BOUND = 0.85


def features(root: Path, sequences: list[str], lesion_labels: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
    with open(root / "manifest.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    table, classes = [], []
    for row in rows:
        seg_image = nib.load(root / row["label"])
        mask = np.isin(np.asanyarray(seg_image.dataobj), lesion_labels)
        voxel_ml = float(np.prod(seg_image.header.get_zooms()[:3])) / 1000.0
        means = [float(nib.load(root / row[s]).get_fdata()[mask].mean()) if mask.any() else 0.0 for s in sequences]
        table.append([*means, mask.sum() * voxel_ml])
        classes.append(row["class"])
    return np.asarray(table), classes


def auc(y: np.ndarray, scores: np.ndarray, labels: list[str]) -> float:
    if len(labels) == 2:
        return float(roc_auc_score(y == labels[0], scores[:, 0]))
    return float(roc_auc_score(y, scores, multi_class="ovr", average="macro", labels=labels))


def evaluate(
    disease: str, cases: int, size: str, seed: int, workdir: Path, workers: int = 1, randomise: str | None = None
) -> dict:
    model = DISEASES[disease]
    start = time.perf_counter()
    cohort = generate_cohort(
        disease, cases, workdir / disease, size=size, seed=seed, workers=workers, randomise=randomise
    )
    seconds = time.perf_counter() - start
    sequences = list(model.SEQUENCES)
    x, classes = features(cohort.root, sequences, model.LESION_LABELS)
    y = np.asarray(classes)
    labels = sorted(set(classes), key=list(model.CLASSES).index)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    scores = cross_val_predict(classifier, x, y, cv=folds, method="predict_proba")
    # predict_proba columns follow sorted class names; reorder to `labels`
    order = [sorted(labels).index(c) for c in labels]
    combined = auc(y, scores[:, order], labels)
    single = {}
    for j, name in enumerate([*sequences, "volume_ml"]):
        per = cross_val_predict(classifier, x[:, [j]], y, cv=folds, method="predict_proba")[:, order]
        single[name] = round(auc(y, per, labels), 4)
    return {
        "cases": cases,
        "size": size,
        "randomise": randomise,
        "classes": {c: classes.count(c) for c in labels},
        "auc_logistic_regression": round(combined, 4),
        "auc_single_feature": single,
        "bound": BOUND,
        "within_bound": combined <= BOUND,
        "generation_seconds_per_case": round(seconds / cases, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--size", default="small", choices=["small", "demo", "full"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--diseases", default="glioma,cpa,neuroblastoma")
    parser.add_argument("--workers", type=int, default=1, help="processes generating cases")
    parser.add_argument("--randomise", choices=["full", "moderate", "plausible"], help="domain-randomised cohorts")
    parser.add_argument("--out", default="difficulty.json")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for disease in args.diseases.split(","):
            results[disease] = evaluate(
                disease, args.cases, args.size, args.seed, Path(tmp), args.workers, args.randomise
            )
            print(disease, json.dumps(results[disease]), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
