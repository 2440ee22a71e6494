"""Train the reference weights that mednet ships, from synthetic data only, and install them for a release.

    python scripts/train_reference.py --disease glioma --out runs/reference
    python scripts/train_reference.py --disease glioma --out runs/reference --install

Runs :func:`mednet.training.reference.train_reference` (cohorts, training, feature-distance
check, float16 weights, test figures; resumable: run it again to continue) and, with
``--install`` (in a clone, to release them), copies the float16 weights into each bundle's
``models/model.pt`` with ``models/ood.json`` and ``models/reference.json``, the training
record the model card cites (generator version and seed, cohort, epochs, time, machine,
figures). Weights are committed only for a released version, with its model card.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from mednet.bundles import bundle_path
from mednet.checksum import file_sha256
from mednet.io.atomic import atomic_path, write_json_atomic
from mednet.training.reference import RECIPES, STAGES, train_reference


def install(recipe: dict, models: Path, record: dict) -> Path:
    """Copy ``models/model_fp16.pt`` (and ``ood.json``) into the bundle's ``models/``, with ``reference.json``."""
    target = bundle_path(recipe["bundle"]) / "models"
    target.mkdir(exist_ok=True)
    for source, name in ((models / "model_fp16.pt", "model.pt"), (models / "ood.json", "ood.json")):
        if source.is_file():
            with atomic_path(target / name) as tmp:
                shutil.copyfile(source, tmp)
    write_json_atomic(target / "reference.json", {**record, "weights_sha256": file_sha256(target / "model.pt")},
                      indent=2, default=float)  # fmt: skip
    return target / "model.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disease", required=True, choices=sorted(RECIPES))
    parser.add_argument("--out", default="runs/reference", help="the runs' folder")
    parser.add_argument("--stages", default=",".join(STAGES), help="localisation, grading or both")
    parser.add_argument("--install", action="store_true", help="store the weights in the bundles' models/")
    args = parser.parse_args()
    stages = [s.strip() for s in args.stages.split(",")]
    record = train_reference(args.disease, args.out, stages, echo=lambda line: print(line, flush=True))
    if args.install:
        for stage in stages:
            recipe = RECIPES[args.disease][stage]
            models = Path(args.out) / args.disease / f"{stage}_train" / "models"
            print(f"{args.disease} {stage}: installed {install(recipe, models, record[stage])}", flush=True)


if __name__ == "__main__":
    main()
