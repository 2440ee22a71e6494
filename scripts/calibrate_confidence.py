"""Fit a grading bundle's ``min_confidence`` on the pipeline's own predictions for validation cases.

    python scripts/calibrate_confidence.py --disease neuroblastoma --target 0.9 \\
        --out docs/benchmarks/confidence_neuroblastoma.json [--write]

The validation partition of the disease's reference grading cohort (the recipe's cohort in
``mednet.training.reference``: generated into ``--work`` unless it is there; the
weights' training chose its best epoch on these cases but never trained on them) goes
through ``mednet predict`` with the shipped weights: the localiser's predicted maps, then
grading and fusion, as a user's case. :func:`mednet.fusion.confidence.fit_min_confidence`
then gives the least fused probability at which the calls are right at least ``--target``
of the time, above a tie between the classes (1 / classes: a tie is never a call).
``--write`` sets it as ``min_confidence`` in the bundle's ``configs/inference.json`` (bump
the bundle's version and changelog after).

``--cohort DATALIST`` fits on every case of another datalist instead: your own labelled
validation cases (with a ``class`` each), or held-out phantoms already predicted, e.g.
``scripts/compare_weights.py``'s validation patients (``--cohort WORK/data/default/datalist.json
--predictions`` its candidate's folder: cases predicted with the same weights are kept, not
predicted again). A synthetic cohort of the test patients' seed or a reference cohort's is
refused (its ``cohort.json`` names the seed): no release choice sees them.

Writes JSON: the fitted threshold, the calls it makes on these cases against the
threshold in the config now, the whole accuracy-coverage curve, the weights' versions and
SHA-256 (``scripts/write_reference_cards.py`` checks them).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from mednet.bundles import BundleSpec, bundle_path
from mednet.fusion.confidence import fit_min_confidence
from mednet.pipeline import predict_cohort
from mednet.pipeline.diseases import disease_spec
from mednet.pipeline.evaluate import read_records
from mednet.training.reference import RECIPES, check_choice_seed, cohort_seeds, reference_cohort

_SETTING = re.compile(r'("min_confidence":\s*)([0-9.]+|null)')


def current_min_confidence(bundle: Path) -> float | None:
    """The ``min_confidence`` a bundle's inference config holds now (read as the bundle reads it)."""
    value = BundleSpec.load(bundle).parser().get_parsed_content("min_confidence")
    return None if value is None else float(value)


def write_min_confidence(config: Path, value: float) -> None:
    """Set ``min_confidence`` in the config, leaving the rest of its text as it is."""
    text, count = _SETTING.subn(lambda m: f"{m.group(1)}{value}", config.read_text())
    if count != 1:
        raise SystemExit(f"{config}: expected one min_confidence setting, found {count}")
    config.write_text(text)


def calls(records: list[dict]) -> tuple[list[float], list[bool]]:
    """Each graded case with a true class: its fused probability of the class decided, and whether it is right."""
    confidence, correct = [], []
    for record in records:
        decided, fused = record.get("fused_class"), record.get("fused") or {}
        if decided in fused and record.get("true_class"):
            confidence.append(float(fused[decided]))
            correct.append(decided == record["true_class"])
    return confidence, correct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disease", required=True, choices=sorted(RECIPES))
    parser.add_argument("--target", type=float, default=0.9, help="accuracy the calls must reach")
    parser.add_argument("--work", default="runs/reference", help="where the reference cohorts are (or go)")
    parser.add_argument("--predictions", default=None, help="output folder of the predictions (resumable)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="confidence.json")
    parser.add_argument("--write", action="store_true", help="set the fitted value in the bundle's inference.json")
    parser.add_argument("--cohort", default=None, metavar="DATALIST",
                        help="fit on every case of this datalist instead of the reference grading cohort's "
                             "validation partition (a test or reference cohort's seed refused)")  # fmt: skip
    args = parser.parse_args()
    spec = disease_spec(args.disease)
    recipe = RECIPES[args.disease]["grading"]
    if args.cohort:
        datalist, partition = Path(args.cohort), "all"
        try:
            check_choice_seed(*cohort_seeds(datalist))
        except (OSError, ValueError) as error:
            parser.error(f"--cohort {datalist}: {error}")
        default = Path(args.work) / args.disease / f"calibration_{datalist.parent.name}_predicted"
    else:
        datalist = reference_cohort(recipe, args.disease, Path(args.work) / args.disease / "grading_data")
        partition = "validation"
        default = Path(args.work) / args.disease / "grading_validation_predicted"
    predictions = Path(args.predictions or default)
    predict_cohort(datalist, args.disease, predictions, device=args.device, partition=partition,
                   progress=lambda line: print(f"  {line}", flush=True))  # fmt: skip
    confidence, correct = calls(read_records(predictions))
    bundle = bundle_path(recipe["bundle"])
    config = bundle / "configs" / "inference.json"
    now = current_min_confidence(bundle)
    floor = round(1.0 / len(spec.classes) + 1e-4, 4)  # above a tie between all classes: a tie is never a call
    fit = fit_min_confidence(confidence, correct, target=args.target, floor=floor)
    called_now = [right for p, right in zip(confidence, correct, strict=True) if now is None or p >= now]
    result = {
        "command": "python scripts/calibrate_confidence.py " + " ".join(sys.argv[1:]),
        "disease": args.disease, "bundles": spec.versions, "weights_sha256": spec.weights_sha256,
        "cohort": str(datalist), "cohort_seeds": cohort_seeds(datalist), "partition": partition,
        "graded_cases": len(confidence), "floor": round(floor, 4),
        "fitted": {k: v for k, v in fit.items() if k != "curve"},
        "config_now": {"min_confidence": now, "called": len(called_now),
                       "accuracy_of_calls": round(sum(called_now) / len(called_now), 4) if called_now else None},
        "accuracy_all_cases": round(sum(correct) / len(correct), 4) if correct else None,
        "curve": fit["curve"],
    }  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}, indent=1))
    if args.write:
        if not fit["reached"]:
            raise SystemExit(f"no threshold reaches an accuracy of {args.target}: {config} left as it is")
        write_min_confidence(config, fit["min_confidence"])
        print(f"min_confidence {now} -> {fit['min_confidence']} in {config}")


if __name__ == "__main__":
    main()
