"""Train and test a segmentation bundle on a synthetic cohort; write its metrics as JSON.

    python scripts/benchmark_localisation.py --disease glioma --out results.json
    python scripts/benchmark_localisation.py --disease neuroblastoma --epochs 45 --out nb.json

Steps: generate a ``demo`` cohort (``--cases``, seeded; the generator's datalist is
split by patient, 70/15/15, stratified by class), train the disease's segmentation
bundle for ``--epochs`` epochs (default per disease, ``EPOCHS``; best validation
checkpoint kept; the same command gives the same weights on any load of the machine),
run its ``inference.json`` + ``evaluate.json`` on the test partition, and write the
test metrics (Dice, HD95, detection, each with a 95% bootstrap interval over
patients), the targets and whether they are met. For neuroblastoma it also trains the
paper's compartment classifier (CNN features + SVM) on the training partition and
compares its accuracy with the compartment that the segmentation's lesion table gives.

``--tune`` first chooses the lesion post-processing (``lesion_threshold``,
``min_lesion_mm3``) on the validation partition and tests with that choice.
``--install`` copies the trained weights into the bundle's ``models/model.pt``;
``--readme`` writes the figures into the bundle's ``docs/README.md``. To redo only
that from an existing results file: ``--from-json results.json --readme``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from mednet.bundles import BundleSpec, bundle_path, run_bundle, write_benchmark_section
from mednet.inference import LocalisationPredictor
from mednet.inference.postprocessing import score_postprocessing
from mednet.io.datalist import datalist_cases
from mednet.localisation.tuning import choose_postprocessing
from mednet.metrics import bootstrap_ci
from mednet.synthetic.cohort import reuse_or_generate_cohort

BUNDLE = {
    "glioma": "glioma_mri_segmentation",
    "cpa": "cpa_mri_segmentation",
    "neuroblastoma": "neuroblastoma_mri_segmentation",
}
#: Default training epochs per disease: what the benchmarks of 2026-11-21 reached in their
#: wall-clock budgets on 2 CPU cores (glioma and CPA 10 min, neuroblastoma 20 min).
EPOCHS = {"glioma": 35, "cpa": 70, "neuroblastoma": 45}
#: (summary key, minimum or maximum, threshold) per disease, from the localisation issue.
TARGETS = {
    "glioma": [("dice_tumour", "min", 0.85)],
    "cpa": [("dice_tumour", "min", 0.85)],
    "neuroblastoma": [
        ("dice_lesions", "min", 0.80),
        ("mean_organ_dice", "min", 0.85),
        ("detection.sensitivity", "min", 0.95),
        ("detection.false_positives_per_scan", "max", 0.3),
    ],
}


def _lookup(summary: dict, key: str) -> dict:
    node = summary
    for part in key.split("."):
        node = node[part]
    return node


def _best_validation(log_dir: Path) -> dict:
    """Best validation mean Dice and the epochs run, from the TensorBoard events of training."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    best, epochs = None, 0
    for events in log_dir.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        scalars = acc.Tags()["scalars"]
        if "val_mean_dice" in scalars:
            values = acc.Scalars("val_mean_dice")
            best = max([v.value for v in values] + ([best] if best is not None else []))
            epochs = max(epochs, max(v.step for v in values))
    return {"best_val_mean_dice": best, "last_validated_epoch": epochs}


def compartment_comparison(work: Path, cohort: Path, test_pred: Path, seed: int) -> dict:
    """Accuracy of the CNN+SVM compartment classifier vs the segmentation's compartment, on the test patients."""
    from mednet.papers.compartment import CompartmentClassifier, compartment_dataset

    datalist, cases_json = cohort / "datalist.json", cohort / "cases.json"
    truth = {c["case_id"]: c["site"] for c in json.loads(cases_json.read_text())}
    x_train, y_train, _ = compartment_dataset(datalist, "training", cases_json)
    x_test, _, ids = compartment_dataset(datalist, "testing", cases_json)
    classifier = CompartmentClassifier()
    start = time.perf_counter()
    classifier.fit(x_train, y_train, seed=seed)
    fit_s = time.perf_counter() - start
    classifier.save(work / "compartment" / "model.pt")
    rows = []
    for cid in dict.fromkeys(ids):
        picked = np.array([i == cid for i in ids])
        cnn = classifier.predict_case(x_test[picked])
        lesions = json.loads((test_pred / cid / f"{cid}_lesions.json").read_text())["lesions"]
        primaries = [row for row in lesions if row["class_name"] == "primary_tumour"]
        seg = max(primaries, key=lambda r: r["voxels"])["compartment"] if primaries else None
        rows.append({"case_id": cid, "truth": truth[cid], "cnn_svm": cnn, "segmentation": seg})

    def accuracy(key):
        return bootstrap_ci(rows, lambda rs: float(np.mean([r[key] == r["truth"] for r in rs])) if rs else np.nan)

    return {
        "training_slices": len(y_train), "test_patients": len(rows), "fit_seconds": round(fit_s, 1),
        "accuracy_cnn_svm": accuracy("cnn_svm"), "accuracy_segmentation": accuracy("segmentation"), "cases": rows,
    }  # fmt: skip


def tune_postprocessing(bundle: str, work: Path, datalist: Path) -> dict:
    """Choose ``lesion_threshold`` and ``min_lesion_mm3`` on the validation partition (never the test).

    The trained network runs once per validation patient and every setting is applied to
    its output (:func:`mednet.inference.postprocessing.score_postprocessing`); the choice is
    :func:`mednet.localisation.tuning.choose_postprocessing`'s, with floors up to the bundle's
    ``max_lesion_floor_mm3``.
    """
    spec = BundleSpec.load(bundle_path(bundle))
    evaluate = spec.parser("inference", "evaluate")
    predictor = LocalisationPredictor(spec, "cpu", work / "models" / "model.pt")
    trials = score_postprocessing(
        predictor, datalist_cases(datalist, "validation"),
        source_labels=evaluate.get_parsed_content("source_labels"),
        target_labels=evaluate.get_parsed_content("target_labels"),
        min_reference_mm3=float(evaluate.get_parsed_content("min_reference_mm3")),
    )  # fmt: skip
    chosen = choose_postprocessing(trials, max_floor_mm3=spec.max_lesion_floor_mm3)
    return {"chosen": chosen, "max_lesion_floor_mm3": spec.max_lesion_floor_mm3, "trials": trials}


def _fmt(figure: dict, digits: int = 3) -> str:
    if figure.get("value") is None:
        return "n/a"
    low, high = figure.get("ci_low"), figure.get("ci_high")
    ci = f" ({low:.{digits}f} to {high:.{digits}f})" if low is not None and high is not None else ""
    return f"{figure['value']:.{digits}f}{ci}"


def markdown(results: dict) -> str:
    """The benchmark as a Markdown table for the bundle's README (values with 95% CIs)."""
    summary = results["test_summary"]
    if "epochs" in results:
        training = (f"training {results['epochs']} epochs in {results['train_seconds'] / 60:.1f} min "
                    f"(last validation at epoch {results['training']['last_validated_epoch']})")  # fmt: skip
    else:  # results of the earlier, wall-clock-budgeted runs
        training = (f"training stopped after {results['train_seconds'] / 60:.1f} min (budget "
                    f"{results['budget_s'] / 60:.0f} min, last validation at epoch "
                    f"{results['training']['last_validated_epoch']})")  # fmt: skip
    lines = [
        f"Measured {results['date']} on {results['machine']['cores']} CPU cores: "
        f"{results['split_by_patient']['testing']} test patients, {training}.",
        "",
        "| metric (test patients) | value (95% CI) | target |",
        "|---|---|---|",
    ]
    targets = {t["metric"]: t for t in results["targets"]}
    keys = [k for k in summary if k.startswith("dice_")] + (["mean_organ_dice"] if "mean_organ_dice" in summary else [])
    keys += [k for k in summary if k.startswith("hd95_mm_")]
    keys += [f"detection.{k}" for k in summary.get("detection", {})]
    for key in keys:
        target = targets.get(key)
        goal = ""
        if target:
            goal = f"{'>=' if 'min' in target else '<='} {target.get('min', target.get('max'))}: "
            goal += "met" if target["met"] else "**not met**"
        lines.append(f"| {key} | {_fmt(_lookup(summary, key), 1 if 'hd95' in key else 3)} | {goal} |")
    tuning = results.get("postprocessing_tuned_on_validation")
    if tuning:
        chosen = tuning["chosen"]
        lines += ["", f"Post-processing chosen on the validation patients (not the test): lesion_threshold "
                  f"{chosen['lesion_threshold']}, min_lesion_mm3 {chosen['min_lesion_mm3']:g} "
                  f"({len(tuning['trials'])} settings tried; the bundle's inference.json carries them)."]  # fmt: skip
    if "compartment" in results:
        comp = results["compartment"]
        lines += [
            "",
            f"Compartment of the primary tumour ({comp['test_patients']} test patients): accuracy "
            f"{_fmt(comp['accuracy_cnn_svm'])} for the CNN + SVM classifier, "
            f"{_fmt(comp['accuracy_segmentation'])} for the lesion table's compartment.",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disease", required=True, choices=sorted(BUNDLE))
    parser.add_argument("--out", default="localisation.json")
    parser.add_argument("--cases", type=int, default=60)
    parser.add_argument("--size", default="demo", choices=["small", "demo", "full"])
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default per disease: glioma 35, cpa 70, neuroblastoma 45)")  # fmt: skip
    parser.add_argument("--val-interval", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=None, help="working folder (default: beside --out)")
    parser.add_argument("--install", action="store_true", help="copy the weights into the bundle's models/")
    parser.add_argument("--readme", action="store_true", help="write the figures into the bundle's docs/README.md")
    parser.add_argument("--evaluate-only", action="store_true", help="reuse --work's trained weights")
    parser.add_argument(
        "--tune", action="store_true", help="choose lesion_threshold and min_lesion_mm3 on the validation partition"
    )
    parser.add_argument("--from-json", default=None, help="skip the run: read results from this file")
    args = parser.parse_args()

    bundle = BUNDLE[args.disease]
    epochs = EPOCHS[args.disease] if args.epochs is None else args.epochs
    if epochs < 1:
        parser.error(f"--epochs: expected a whole number >= 1, found {epochs}")
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        write_benchmark_section(bundle, args.disease, markdown(results))
        return
    work = Path(args.work) if args.work else Path(args.out).with_suffix("").parent / f"work_{args.disease}"
    cohort = work / "cohort"
    reuse_or_generate_cohort(args.disease, args.cases, cohort, size=args.size, seed=args.seed,
                             workers=os.cpu_count() or 1)  # fmt: skip
    datalist = json.loads((cohort / "datalist.json").read_text())
    split = {p: len(datalist[p]) for p in ("training", "validation", "testing")}

    if args.evaluate_only:  # reuse the weights and training record of an earlier run in --work
        training = json.loads((work / "training.json").read_text())
    else:
        shutil.rmtree(work / "models", ignore_errors=True)
        start = time.perf_counter()
        run_bundle(bundle, ["train"], datalist=str(cohort / "datalist.json"), ckpt_dir=str(work / "models"),
                   output_dir=str(work / "train_log"), max_epochs=epochs, val_interval=args.val_interval,
                   seed=args.seed)  # fmt: skip
        training = {"epochs": epochs, "train_seconds": round(time.perf_counter() - start, 1),
                    **_best_validation(work / "train_log")}  # fmt: skip
        (work / "training.json").write_text(json.dumps(training, indent=2) + "\n")

    tuning = None
    if args.tune:
        tuning = tune_postprocessing(bundle, work, cohort / "datalist.json")
        print(f"chosen on validation: {tuning['chosen']}")
    test_dir = work / "test"
    start = time.perf_counter()
    run_bundle(bundle, ["inference", "evaluate"], datalist=str(cohort / "datalist.json"),
               ckpt_path=str(work / "models" / "model.pt"), output_dir=str(test_dir),
               **(tuning["chosen"] if tuning else {}))  # fmt: skip
    test_s = time.perf_counter() - start
    metrics = json.loads((test_dir / "metrics.json").read_text())

    targets = []
    for key, kind, threshold in TARGETS[args.disease]:
        figure = _lookup(metrics["summary"], key)
        value = figure["value"]
        met = value is not None and (value >= threshold if kind == "min" else value <= threshold)
        targets.append({"metric": key, kind: threshold, **figure, "met": bool(met)})
    results = {
        "disease": args.disease, "bundle": bundle, "date": time.strftime("%Y-%m-%d"),
        "cases": args.cases, "size": args.size, "seed": args.seed,
        "split_by_patient": split, "epochs": training.get("epochs", epochs), "train_seconds": training["train_seconds"],
        "test_seconds": round(test_s, 1), "training": {k: v for k, v in training.items() if k != "train_seconds"},
        "machine": {"cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.is_available(), "platform": platform.platform()},
        "postprocessing_tuned_on_validation": tuning,
        "targets": targets, "all_targets_met": all(t["met"] for t in targets), "test_summary": metrics["summary"],
    }  # fmt: skip
    if args.disease == "neuroblastoma":
        results["compartment"] = compartment_comparison(work, cohort, test_dir, args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    if args.readme:
        write_benchmark_section(bundle, args.disease, markdown(results))
    if args.install:
        models = bundle_path(bundle) / "models"
        models.mkdir(exist_ok=True)
        shutil.copyfile(work / "models" / "model.pt", models / "model.pt")
    for t in targets:
        verdict = "met" if t["met"] else "MISSED"
        print(f"{t['metric']}: {t['value']:.3f} (95% CI {t['ci_low']} to {t['ci_high']}), target {verdict}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
