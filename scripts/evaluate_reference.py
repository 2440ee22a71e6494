"""The shipped reference weights on held-out synthetic test patients, through ``mednet predict``.

    python scripts/evaluate_reference.py --disease glioma --out docs/benchmarks/reference_glioma.json

For the disease: a synthetic test cohort of ``--cases`` patients (``demo`` size, classes in
equal numbers, seed :data:`mednet.training.reference.TEST_SEED`: patients no reference
cohort held, :func:`mednet.training.reference.reference_seeds`, and no release choice saw),
every patient through :func:`mednet.pipeline.predict_cohort` with the bundles' shipped
weights, and the patient-level figures with 95% bootstrap intervals (localisation Dice per
class, lesion detection, grading per sequence and fused, calls left indeterminate and the
accuracy of the others). For glioma also ``--metastases`` brain-metastasis cases (a kind of
case the glioma grading was never trained to call): how many the pipeline calls
indeterminate instead of a confident LGG or HGG.

Writes JSON with the figures, the weights' versions and SHA-256 (which
``scripts/write_reference_cards.py`` checks) and the time per case.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from mednet.pipeline import predict_cohort
from mednet.pipeline.diseases import disease_spec
from mednet.synthetic import generate_cohort
from mednet.synthetic.cohort import DISEASES as MODELS
from mednet.training.reference import TEST_SEED


def _run(disease: str, cases: int, work: Path, seed: int, balance: dict, device: str) -> tuple[dict, float]:
    cohort = generate_cohort(disease, cases, work / "data", size="demo", seed=seed, balance=balance, workers=2)
    start = time.perf_counter()
    result = predict_cohort(cohort.datalist, disease, work / "out", device=device, partition="all",
                            progress=lambda line: print(f"  {line}", flush=True))  # fmt: skip
    seconds = (time.perf_counter() - start) / max(result["cases"], 1)
    metrics = json.loads(result["metrics"].read_text()) if result["metrics"] else {}
    return {"cases": result["cases"], "failed": result["failed"], **metrics}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disease", required=True, choices=sorted(MODELS))
    parser.add_argument("--cases", type=int, default=30)
    parser.add_argument("--metastases", type=int, default=10, help="glioma: brain-metastasis cases")
    parser.add_argument("--seed", type=int, default=TEST_SEED)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="reference.json")
    args = parser.parse_args()
    spec = disease_spec(args.disease)
    results: dict = {"disease": args.disease, "bundles": spec.versions, "weights_sha256": spec.weights_sha256,
                     "seed": args.seed}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        balance = dict.fromkeys(MODELS[args.disease].CLASSES, 1.0)
        results["test"], results["seconds_per_case"] = _run(args.disease, args.cases, Path(tmp) / "test", args.seed,
                                                            balance, args.device)  # fmt: skip
        if args.disease == "glioma" and args.metastases:
            _run("glioma", args.metastases, Path(tmp) / "met", args.seed + 1, {"MET": 1.0}, args.device)
            records = [json.loads(p.read_text()) for p in sorted((Path(tmp) / "met" / "out").glob("*/*.json"))
                       if p.stem == p.parent.name]  # fmt: skip
            graded = [r for r in records if r.get("fused_class")]
            results["metastases"] = {
                "cases": len(records), "graded": len(graded),
                "indeterminate": sum(r["call"] == "indeterminate" for r in graded),
                "calls": {c: sum(r["call"] == c for r in graded) for c in ("LGG", "HGG", "indeterminate")},
                "reasons": [r["fusion"]["reasons"] for r in graded],
                "lesion_detected": sum(bool(r["lesions"]) for r in records),
            }  # fmt: skip
    Path(args.out).write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "test"}, indent=1))
    print(json.dumps(results["test"].get("headline"), indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
