"""Train the reference weights that mednet ships, from synthetic data only, reproducibly.

    python scripts/train_reference.py --disease glioma --out runs/reference
    python scripts/train_reference.py --disease glioma --out runs/reference --install

For the disease, one command does, each step skipped when its result is already there
(so an interrupted run is resumed by running the same command again):

1. two domain-randomised synthetic cohorts (``mednet synth --randomise``), seeded: ``full``
   randomisation for the localisation bundle (any contrast, resolution, plane, artefacts,
   skull stripping, the BraTS look; glioma also with brain metastases), ``plausible``
   for the grading bundle (each branch reads its own sequence's contrast);
2. the localisation bundle trained on the first, the grading bundle on the second, each
   for a fixed number of epochs (:data:`RECIPES`) with a cosine learning rate, seeded: the
   same command gives the same weights on the same machine and torch build;
3. each bundle's test partition scored with its own ``evaluate.json`` (patient-level
   figures with 95% bootstrap intervals) into ``record.json``;
4. ``--install``: the weights stored as float16 (half the size; the networks load them
   into float32) in each bundle's ``models/model.pt`` with ``models/reference.json``, the
   training record the model card cites (generator version and seed, cohort, epochs,
   time, machine, figures).

Layout of ``OUT/<disease>/``: ``localisation_data/``, ``grading_data/`` (the cohorts),
``localisation_train/``, ``grading_train/`` (logs, TensorBoard curves, ``models/``),
``localisation_test/``, ``grading_test/`` (the test predictions and metrics), ``record.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch

import mednet
from mednet.bundles import bundle_path, console_to, run_bundle, train_bundle
from mednet.synthetic import generate_cohort

#: Per disease and stage: bundle, cohort (cases, balance, randomisation, seed), epochs, overrides.
RECIPES: dict[str, dict[str, dict]] = {
    "glioma": {
        "localisation": {"bundle": "glioma_mri_segmentation", "cases": 160,
                         "balance": {"HGG": 1, "LGG": 1, "MET": 0.3}, "randomise": "full", "seed": 2026,
                         "epochs": 60, "overrides": {"lr_anneal": "cosine", "val_interval": 5}},
        "grading": {"bundle": "glioma_mri_classification", "cases": 120, "balance": {"HGG": 1, "LGG": 1},
                    "randomise": "plausible", "seed": 2027, "epochs": 30, "overrides": {}},
    },
    "cpa": {
        "localisation": {"bundle": "cpa_mri_segmentation", "cases": 160, "balance": {"AN": 1, "MG": 1},
                         "randomise": "full", "seed": 2026, "epochs": 80,
                         "overrides": {"lr_anneal": "cosine", "val_interval": 5}},
        "grading": {"bundle": "cpa_mri_classification", "cases": 120, "balance": {"AN": 1, "MG": 1},
                    "randomise": "plausible", "seed": 2027, "epochs": 30, "overrides": {}},
    },
    "neuroblastoma": {
        "localisation": {"bundle": "neuroblastoma_mri_segmentation", "cases": 160,
                         "balance": {"L1": 1, "L2": 1, "M": 1}, "randomise": "full", "seed": 2026, "epochs": 40,
                         "overrides": {"lr_anneal": "cosine", "val_interval": 5}},
        "grading": {"bundle": "neuroblastoma_mri_classification", "cases": 120,
                    "balance": {"L1": 1, "L2": 1, "M": 1}, "randomise": "plausible", "seed": 2027, "epochs": 30,
                    "overrides": {}},
    },
}  # fmt: skip
STAGES = ("localisation", "grading")


def _cohort(recipe: dict, disease: str, root: Path) -> Path:
    """The stage's cohort (generated unless the same one is there); its datalist."""
    wanted = {"disease": disease, "cases": recipe["cases"], "seed": recipe["seed"], "size": "demo",
              "randomise": recipe["randomise"], "balance": recipe["balance"]}  # fmt: skip
    made = root / "cohort.json"
    if made.is_file() and {k: json.loads(made.read_text()).get(k) for k in wanted} == wanted:
        return root / "datalist.json"
    cohort = generate_cohort(disease, recipe["cases"], root, size="demo", seed=recipe["seed"],
                             balance=recipe["balance"], randomise=recipe["randomise"],
                             workers=os.cpu_count() or 1)  # fmt: skip
    return cohort.datalist


def _train(recipe: dict, datalist: Path, work: Path) -> dict:
    """Train the stage's bundle unless ``work/done.json`` says it was trained with this recipe."""
    done = work / "done.json"
    wanted = {"epochs": recipe["epochs"], "seed": recipe["seed"], "overrides": recipe["overrides"]}
    if done.is_file() and json.loads(done.read_text()).get("recipe") == wanted:
        return json.loads(done.read_text())
    log = work.parent / f"{work.name}.log"
    log.unlink(missing_ok=True)
    with console_to(log):
        seconds = train_bundle(recipe["bundle"], datalist, work, epochs=recipe["epochs"], seed=recipe["seed"],
                               **recipe["overrides"])  # fmt: skip
    record = {"recipe": wanted, "train_seconds": round(seconds, 1), "log": str(log),
              "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
    done.write_text(json.dumps(record, indent=2) + "\n")
    return record


def _test(recipe: dict, datalist: Path, weights: Path, out: Path) -> dict:
    """The bundle's ``inference`` + ``evaluate`` on the test partition; its metrics."""
    shutil.rmtree(out, ignore_errors=True)
    with console_to(out.parent / f"{out.name}.log"):
        run_bundle(recipe["bundle"], ["inference", "evaluate"], datalist=str(datalist), ckpt_path=str(weights),
                   output_dir=str(out), overwrite=True)  # fmt: skip
    metrics = out / "metrics.json"
    return json.loads(metrics.read_text()) if metrics.is_file() else {}


def install(recipe: dict, weights: Path, record: dict) -> Path:
    """Store ``weights`` as float16 in the bundle's ``models/model.pt``, with ``models/reference.json``."""
    state = torch.load(weights, map_location="cpu", weights_only=True)
    state = state.get("model", state) if isinstance(state, dict) else state
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    target = bundle_path(recipe["bundle"]) / "models"
    target.mkdir(exist_ok=True)
    partial = target / ".model.pt.partial"
    torch.save(half, partial)
    os.replace(partial, target / "model.pt")
    (target / "reference.json").write_text(json.dumps(record, indent=2) + "\n")
    return target / "model.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disease", required=True, choices=sorted(RECIPES))
    parser.add_argument("--out", default="runs/reference", help="the runs' folder")
    parser.add_argument("--stages", default=",".join(STAGES), help="localisation, grading or both")
    parser.add_argument("--install", action="store_true", help="store the weights in the bundles' models/")
    args = parser.parse_args()
    root = Path(args.out) / args.disease
    root.mkdir(parents=True, exist_ok=True)
    record_path = root / "record.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    for stage in [s.strip() for s in args.stages.split(",")]:
        recipe = RECIPES[args.disease][stage]
        start = time.perf_counter()
        datalist = _cohort(recipe, args.disease, root / f"{stage}_data")
        print(f"{args.disease} {stage}: cohort {datalist} ({time.perf_counter() - start:.0f} s)", flush=True)
        trained = _train(recipe, datalist, root / f"{stage}_train")
        print(f"{args.disease} {stage}: trained in {trained['train_seconds']:.0f} s", flush=True)
        weights = root / f"{stage}_train" / "models" / "model.pt"
        metrics = _test(recipe, datalist, weights, root / f"{stage}_test")
        cohort = json.loads((root / f"{stage}_data" / "cohort.json").read_text())
        record[stage] = {
            "bundle": recipe["bundle"], "data": {**cohort, "synthetic_only": True},
            "command": f"python scripts/train_reference.py --disease {args.disease}",
            "epochs": recipe["epochs"], "seed": recipe["seed"], "overrides": recipe["overrides"],
            "train_seconds": trained["train_seconds"], "finished": trained["finished"],
            "machine": {"cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                        "platform": platform.platform(), "torch": torch.__version__},
            "mednet_version": mednet.__version__, "test_metrics": metrics,
        }  # fmt: skip
        record_path.write_text(json.dumps(record, indent=2, default=float) + "\n")
        print(f"{args.disease} {stage}: tested; record {record_path}", flush=True)
        if args.install:
            print(f"{args.disease} {stage}: installed {install(recipe, weights, record[stage])}", flush=True)


if __name__ == "__main__":
    main()
