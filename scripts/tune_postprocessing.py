"""Choose a segmentation bundle's lesion post-processing for its shipped weights, on fresh validation patients.

    python scripts/tune_postprocessing.py --disease neuroblastoma \
        --out docs/benchmarks/postprocessing_neuroblastoma.json

The settings of ``lesion_threshold`` and ``min_lesion_mm3`` that a bundle's
``inference.json`` carries were chosen when its weights were trained
(``scripts/benchmark_localisation.py --tune``). Weights trained since (the reference
recipe) are calibrated differently. This script draws ``--cases`` validation patients
(``demo`` size, classes in equal numbers, seed ``--seed`` = 103 by default: neither the
reference cohorts' 2026 / 2027 nor the held-out test's 101), runs the shipped localiser
once per patient, applies every setting of :data:`mednet.localisation.tuning.LESION_THRESHOLDS`
x :data:`~mednet.localisation.tuning.MIN_LESION_MM3` to the same network output, scores the
lesions (Dice, detection at the bundle's ``min_reference_mm3``, per patient) and chooses with
:func:`mednet.localisation.tuning.choose_postprocessing`. It writes the trials, the choice,
the setting the bundle carries now and the weights' SHA-256 as JSON; it changes no bundle
(copy the choice into ``configs/inference.json`` and evaluate on the test patients,
``scripts/evaluate_reference.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor

from mednet.checksum import file_sha256
from mednet.inference import LocalisationPredictor
from mednet.io import read_image
from mednet.io.datalist import datalist_cases
from mednet.io.validation import spacing_from_affine
from mednet.localisation.tuning import LESION_THRESHOLDS, MIN_LESION_MM3, choose_postprocessing
from mednet.metrics.localisation import map_labels, score_localisation, summarise_localisation
from mednet.pipeline.diseases import disease_spec
from mednet.synthetic import generate_cohort
from mednet.synthetic.cohort import DISEASES as MODELS
from mednet.transforms import Localised
from mednet.transforms.invert import InvertLabelsd


class _Settings:
    """The predictor's post-processing with other ``lesion_threshold`` and ``min_lesion_mm3``, on one network output.

    The predictor's own ``InvertLabelsd`` and ``Localised`` are given each setting for one call
    and their own settings back after it (the inverse needs the very preprocessing objects that
    ran: a copy of the post-processing would not find them).
    """

    def __init__(self, predictor: LocalisationPredictor):
        post = predictor.postprocessing
        steps = post.flatten().transforms if hasattr(post, "flatten") else [post]
        self.predictor = predictor
        self.invert = next(s for s in steps if isinstance(s, InvertLabelsd))
        self.localised = next(s for s in steps if isinstance(s, Localised))
        self.scheme = self.localised.scheme
        self.carried = {"lesion_threshold": self.scheme.lesion_threshold, "min_lesion_mm3": self.scheme.min_lesion_mm3}

    def labels(self, data: dict, probabilities: torch.Tensor, threshold: float | None, min_mm3: float) -> np.ndarray:
        """``(x, y, z)`` label map on the input grid, as the bundle gives it with these settings."""
        own = self.invert.lesion_threshold
        self.invert.lesion_threshold = threshold
        self.localised.scheme = dataclasses.replace(self.scheme, lesion_threshold=threshold, min_lesion_mm3=min_mm3)
        try:
            image = data["image"]
            pred = MetaTensor(probabilities, meta=dict(image.meta))
            pred.applied_operations = list(image.applied_operations)
            return self.predictor.postprocessing({**data, "pred": pred})["pred"][0].numpy()
        finally:
            self.invert.lesion_threshold, self.localised.scheme = own, self.scheme


def tune(disease: str, cases: int, seed: int, work: Path, size: str = "demo") -> dict:
    """Every setting scored on ``cases`` fresh validation patients (phantoms of ``size``); the choice."""
    bundle = disease_spec(disease).localisation
    evaluate = bundle.parser("inference", "evaluate")
    source, target = evaluate.get_parsed_content("source_labels"), evaluate.get_parsed_content("target_labels")
    min_reference_mm3 = float(evaluate.get_parsed_content("min_reference_mm3"))
    lesion_classes = {int(k): v for k, v in bundle.parser().get_parsed_content("lesion_classes").items()}
    balance = dict.fromkeys(MODELS[disease].CLASSES, 1.0)
    cohort = generate_cohort(disease, cases, work / "data", size=size, seed=seed, balance=balance, workers=2)
    predictor = LocalisationPredictor(bundle, "cpu")
    settings = _Settings(predictor)
    grid = [(t, m) for t in LESION_THRESHOLDS for m in MIN_LESION_MM3]
    rows: dict[tuple, list[dict]] = {key: [] for key in grid}
    start = time.perf_counter()
    for case in [c for part in ("training", "validation", "testing") for c in datalist_cases(cohort.datalist, part)]:
        images = {k: read_image(case[k]) for k in bundle.sequences if case.get(k)}
        data = predictor.preprocessing({"case_id": case["case_id"], **images})
        with torch.no_grad():
            probabilities = predictor.inferer(data["image"][None], predictor.network)[0].float()
        reference = read_image(case["label"], kind="label")
        truth = map_labels(np.asarray(reference[0]).astype(np.int64), source, target)
        spacing = tuple(float(s) for s in spacing_from_affine(np.asarray(reference.affine)))
        for key in grid:
            labels = settings.labels(data, probabilities, *key)
            row = {"case_id": case["case_id"], "patient_id": case.get("patient_id", case["case_id"])}
            row.update(score_localisation(labels, truth, spacing, lesion_classes, lesion_classes, min_reference_mm3))
            rows[key].append(row)
        print(f"  {case['case_id']}: {len(grid)} settings", flush=True)
    trials = []
    for (threshold, min_mm3), scored in rows.items():
        summary = summarise_localisation(scored, lesion_classes, lesion_classes, n_boot=200)
        trials.append({"lesion_threshold": threshold, "min_lesion_mm3": min_mm3,
                       "sensitivity": summary["detection"]["sensitivity"]["value"],
                       "false_positives_per_scan": summary["detection"]["false_positives_per_scan"]["value"],
                       "dice_lesions": summary["dice_lesions"]["value"]})  # fmt: skip
    return {"disease": disease, "bundle": bundle.name, "version": bundle.version,
            "weights_sha256": file_sha256(bundle.weights),
            "validation": {"cases": cases, "seed": seed, "size": size, "balance": balance},
            "carried": settings.carried, "chosen": choose_postprocessing(trials), "trials": trials,
            "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disease", required=True, choices=sorted(MODELS))
    parser.add_argument("--cases", type=int, default=30)
    parser.add_argument("--seed", type=int, default=103)
    parser.add_argument("--out", default="postprocessing.json")
    args = parser.parse_args()
    if args.seed in (101, 2026, 2027):
        parser.error(f"--seed {args.seed}: the held-out test's or the reference cohorts' seed; choose another")
    with tempfile.TemporaryDirectory() as tmp:
        result = tune(args.disease, args.cases, args.seed, Path(tmp))
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
