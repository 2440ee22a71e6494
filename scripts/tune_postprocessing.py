"""Choose a segmentation bundle's lesion post-processing for its shipped weights, on fresh validation patients.

    python scripts/tune_postprocessing.py --disease neuroblastoma \
        --out docs/benchmarks/postprocessing_neuroblastoma.json

The settings of ``lesion_threshold`` and ``min_lesion_mm3`` that a bundle's
``inference.json`` carries were chosen when its weights were trained
(``scripts/benchmark_localisation.py --tune``). Weights trained since (the reference
recipe) are calibrated differently. This script draws ``--cases`` validation patients
(``demo`` size, classes in equal numbers, seed ``--seed`` =
:data:`mednet.training.reference.VALIDATION_SEED` by default: neither a reference cohort's
nor the held-out test's, which are refused), runs the shipped localiser
once per patient, applies every setting of :data:`mednet.localisation.tuning.LESION_THRESHOLDS`
x :data:`~mednet.localisation.tuning.MIN_LESION_MM3` to the same network output and scores the
lesions (Dice, detection at the bundle's ``min_reference_mm3``, per patient:
:func:`mednet.inference.postprocessing.score_postprocessing`), then chooses with
:func:`mednet.localisation.tuning.choose_postprocessing` among the floors up to the bundle's
``max_lesion_floor_mm3`` (``evaluate.json``: the smallest lesion clinicians look for). It writes the trials, the choice,
the setting the bundle carries now and the weights' SHA-256 as JSON; it changes no bundle
(copy the choice into ``configs/inference.json`` and evaluate on the test patients,
``scripts/evaluate_reference.py``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from mednet.checksum import file_sha256
from mednet.inference import LocalisationPredictor
from mednet.inference.postprocessing import PostprocessingSettings, score_postprocessing
from mednet.io.datalist import datalist_cases
from mednet.localisation.tuning import choose_postprocessing
from mednet.pipeline.diseases import disease_spec
from mednet.synthetic import generate_cohort
from mednet.synthetic.cohort import DISEASES as MODELS
from mednet.synthetic.cohort import cohort_differences
from mednet.training.reference import VALIDATION_SEED, check_choice_seed


def cohort_problem(datalist: Path, disease: str, cases: int, seed: int, size: str = "demo") -> str | None:
    """Why ``datalist`` is not the validation patients :func:`tune` would draw (``cases``, ``seed``, ``size``); None."""
    balance = dict.fromkeys(MODELS[disease].CLASSES, 1.0)
    differ = cohort_differences(datalist.parent, disease, cases, size=size, seed=seed, balance=balance)
    if not differ:
        return None
    found = f"drawn with another {', '.join(differ)}" if (datalist.parent / "cohort.json").is_file() else (
        "no complete cohort there")
    return f"{datalist}: not the validation patients asked for ({cases} {size} phantoms, seed {seed}): {found}"


def tune(disease: str, cases: int, seed: int, work: Path, size: str = "demo", datalist: Path | None = None) -> dict:
    """Every setting scored on ``cases`` fresh validation patients (phantoms of ``size``); the choice.

    ``datalist``: those patients already drawn (e.g. ``scripts/compare_weights.py``'s
    ``WORK/data/default/datalist.json``), taken instead of drawing them again.

    Raises:
        ValueError: ``datalist``'s cohort was drawn with other settings (or is not a synthetic cohort).
    """
    bundle = disease_spec(disease).localisation
    evaluate = bundle.parser("inference", "evaluate")
    balance = dict.fromkeys(MODELS[disease].CLASSES, 1.0)
    if datalist is None:
        datalist = generate_cohort(disease, cases, work / "data", size=size, seed=seed, balance=balance,
                                   workers=2).datalist  # fmt: skip
    elif problem := cohort_problem(Path(datalist), disease, cases, seed, size):
        raise ValueError(problem)
    predictor = LocalisationPredictor(bundle, "cpu")
    start = time.perf_counter()
    trials = score_postprocessing(
        predictor, [c for part in ("training", "validation", "testing") for c in datalist_cases(datalist, part)],
        source_labels=evaluate.get_parsed_content("source_labels"),
        target_labels=evaluate.get_parsed_content("target_labels"),
        min_reference_mm3=float(evaluate.get_parsed_content("min_reference_mm3")),
        progress=lambda line: print(f"  {line}", flush=True),
    )  # fmt: skip
    return {"disease": disease, "bundle": bundle.name, "version": bundle.version,
            "weights_sha256": file_sha256(bundle.weights),
            "validation": {"cases": cases, "seed": seed, "size": size, "balance": balance},
            "carried": PostprocessingSettings(predictor).carried, "max_lesion_floor_mm3": bundle.max_lesion_floor_mm3,
            "chosen": choose_postprocessing(trials, max_floor_mm3=bundle.max_lesion_floor_mm3),
            "trials": trials, "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disease", required=True, choices=sorted(MODELS))
    parser.add_argument("--cases", type=int, default=30)
    parser.add_argument("--seed", type=int, default=VALIDATION_SEED)
    parser.add_argument("--out", default="postprocessing.json")
    parser.add_argument("--cohort", default=None, metavar="DATALIST",
                        help="the validation patients already drawn with these --cases and --seed (compare_weights' "
                             "WORK/data/default/datalist.json): taken instead of drawn again")  # fmt: skip
    args = parser.parse_args()
    try:
        check_choice_seed(args.seed)
    except ValueError as error:
        parser.error(f"--{error}")
    if args.cohort and (problem := cohort_problem(Path(args.cohort), args.disease, args.cases, args.seed)):
        parser.error(f"--cohort {problem}")  # before any work; a ValueError while tuning is not the cohort's
    with tempfile.TemporaryDirectory() as tmp:
        result = tune(args.disease, args.cases, args.seed, Path(tmp), datalist=args.cohort and Path(args.cohort))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for trial in result["trials"]:
        print(
            f"{trial['lesion_threshold']!s:>5} {trial['min_lesion_mm3']:>5.0f}: sensitivity "
            f"{trial['sensitivity']:.3f}, false positives per scan {trial['false_positives_per_scan']:.2f}, "
            f"lesion Dice {trial['dice_lesions']:.3f}"
        )
    print(f"carried {result['carried']}, chosen {result['chosen']}; written to {args.out}")


if __name__ == "__main__":
    main()
