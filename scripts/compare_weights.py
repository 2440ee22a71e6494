"""Candidate weights against the shipped ones, side by side on the same cases, before a release.

    python scripts/compare_weights.py --disease neuroblastoma \\
        --candidate neuroblastoma_mri_segmentation=runs/candidate_ab/neuroblastoma/localisation_train/models/model.pt \\
        --turn-on abdomen --out compare_neuroblastoma.json

For the disease, every case through :func:`mednet.pipeline.predict_cohort` twice, with the
bundles' shipped weights and with the candidate's (``--candidate BUNDLE=CHECKPOINT``, one
or more), on:

- ``default``: held-out default phantoms (``--cases``, ``demo`` size, classes in equal
  numbers, ``--seed`` 103: the validation patients of ``scripts/tune_postprocessing.py``,
  which no reference cohort held; a release is chosen on them, so that the test patients
  of ``scripts/evaluate_reference.py``, seed 101, stay unseen by every choice and its
  figures are not biased by the choice);
- ``randomised``: held-out randomised phantoms (seed ``--seed`` + 2) drawn from the preset
  ``--randomise`` with the flags ``--turn-on`` set (e.g. ``abdomen`` or ``head``: the look
  the candidate was trained on, which the preset gets with the release);
- the real scans beside the project (``scripts/benchmark_realdata.py``'s figures; one case
  each, anecdotes), when they are there.

For each phantom set it writes both headline figures (patient level, 95% bootstrap
intervals) and, per case, candidate minus shipped for the lesion Dice (and the mean organ
Dice where the disease has organs), with the mean difference and its bootstrap interval:
a release needs the candidate no worse where the shipped weights are good and better
where they fail, on the same patients.

``--set STAGE.KEY=VALUE`` (as ``mednet train``'s; VALUE is JSON) gives the candidate the config
overrides it was trained with, e.g. ``--set 'localisation.image_keys=["t2w","t1c","t1"]'``
for a network that reads a native T1 more (the pipeline then reads that sequence from the
cases); ``--optional t1`` draws both phantom sets with that optional sequence (the shipped
weights leave it aside).

``--work DIR`` keeps the cohorts and the predictions: run again (a later checkpoint of the
same candidate), the same cohorts are reused and only the cases whose weights changed are
predicted again.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from hashlib import sha256
from pathlib import Path

from benchmark_realdata import REALDATA, abdomen, glioma

from mednet.checksum import file_sha256
from mednet.errors import MednetError
from mednet.metrics.bootstrap import mean_ci
from mednet.pipeline import predict_cohort
from mednet.pipeline.case import Predictors
from mednet.pipeline.diseases import disease_spec
from mednet.synthetic.cohort import DISEASES as MODELS
from mednet.synthetic.cohort import reuse_or_generate_cohort
from mednet.synthetic.randomise import PRESETS, flagged_preset
from mednet.training.reference import VALIDATION_SEED, check_choice_seed
from mednet.training.train import parse_setting

#: The randomised phantoms' seed: ``--seed`` plus this.
RANDOMISED_SEED_OFFSET = 2
#: Per-case figures compared (when the records hold them).
FIGURES = ("dice_lesions", "mean_organ_dice")
#: The real-scan figures per disease (scripts/benchmark_realdata.py).
REAL = {"glioma": glioma, "neuroblastoma": abdomen}


def _cohorts(disease: str, cases: int, seed: int, preset: str, flags: list[str], root: Path, size: str,
             optional: tuple[str, ...] = ()) -> dict[str, Path]:  # fmt: skip
    """The two held-out phantom sets (with the ``optional`` sequences); their datalists."""
    balance = dict.fromkeys(MODELS[disease].CLASSES, 1.0)
    default = reuse_or_generate_cohort(disease, cases, root / "default", size=size, seed=seed, balance=balance,
                                       optional=optional, workers=2)  # fmt: skip
    with flagged_preset(preset, flags) as name:  # registered only while its cohort is drawn
        randomised = reuse_or_generate_cohort(disease, cases, root / "randomised", size=size,
                                              seed=seed + RANDOMISED_SEED_OFFSET,
                                              balance=balance, randomise=name, optional=optional,
                                              workers=2)  # fmt: skip
    return {"default": default, f"randomised ({name})": randomised}


def _predictions(root: Path, label: str, set_name: str, datalist: Path) -> Path:
    """Where one set's predictions with one set of weights go: named after the cohort they are of.

    With ``--work``, a cohort drawn again with other settings (its ``cohort.json`` changes)
    gets a new folder: cases are matched by id, which a new cohort reuses.
    """
    return root / label / f"{set_name.split(' ')[0]}-{file_sha256(datalist.parent / 'cohort.json')[:12]}"


def _per_case(out: Path) -> dict[str, dict]:
    """case id -> its localisation figures, from the case records of a predict_cohort output."""
    records = (json.loads(p.read_text()) for p in sorted(out.glob("*/*.json")) if p.stem == p.parent.name)
    return {r["case_id"]: r.get("localisation_metrics") or {} for r in records}


def compare(disease: str, candidate: dict[str, str], cases: int, seed: int, preset: str, flags: list[str],
            device: str, root: Path, size: str = "demo", real: bool = True,
            settings: dict[str, dict] | None = None, optional: tuple[str, ...] = ()) -> dict:  # fmt: skip
    """Shipped and candidate weights on the same cases; see the module's docstring.

    ``settings``: bundle name -> the candidate's config overrides; ``optional``: optional
    sequences drawn in both phantom sets.

    Returns:
        ``{"bundles", "candidate", "sets": {set: {"shipped", "candidate", "paired"}}, "real": {...}}``.
    """
    spec = disease_spec(disease)
    sets = _cohorts(disease, cases, seed, preset, flags, root / "data", size, tuple(optional))
    weights = {"shipped": None, "candidate": candidate}
    overrides = {"shipped": None, "candidate": settings or None}
    described = {bundle: {"weights": path, "sha256": file_sha256(path), "overrides": (settings or {}).get(bundle, {})}
                 for bundle, path in candidate.items()}  # fmt: skip
    result: dict = {"bundles": spec.versions, "weights_sha256": spec.weights_sha256, "candidate": described,
                    "optional": list(optional), "sets": {}, "real": {}}  # fmt: skip
    for set_name, datalist in sets.items():
        figures, per_case = {}, {}
        for label, models in weights.items():
            # other overrides, other predictions: their own folder
            named = f"{label}-{sha256(json.dumps(overrides[label], sort_keys=True).encode()).hexdigest()[:8]}"
            out = _predictions(root, named if overrides[label] else label, set_name, datalist)
            run = predict_cohort(datalist, disease, out, device=device, partition="all", models=models,
                                 settings=overrides[label], progress=lambda line: None)  # fmt: skip
            figures[label] = {"failed": run["failed"], **json.loads(run["metrics"].read_text())["headline"]}
            per_case[label] = _per_case(out)
        paired = {}
        for figure in FIGURES:
            ids = [c for c in per_case["shipped"] if figure in per_case["shipped"][c]
                   and figure in per_case["candidate"].get(c, {})]  # fmt: skip
            if ids:
                differences = [per_case["candidate"][c][figure] - per_case["shipped"][c][figure] for c in ids]
                paired[f"{figure}: candidate - shipped"] = mean_ci(differences)
        result["sets"][set_name] = {**figures, "paired": paired}
        print(set_name, json.dumps(result["sets"][set_name]["paired"]), flush=True)
    if real and disease in REAL and REALDATA.is_dir():
        for label, models in weights.items():
            predictors = Predictors.build(spec, device, models=models, settings=overrides[label])
            result["real"][label] = REAL[disease](predictors, root / "real" / label)
    return result


def candidate_settings(items: list[str], spec, candidate: dict[str, str]) -> dict[str, dict]:
    """``--set STAGE.KEY=VALUE`` items (as ``mednet train``'s) -> bundle name -> the candidate's config overrides.

    Raises:
        SystemExit: an item not of that form, or for a stage without candidate weights.
    """
    settings: dict[str, dict] = {}
    stages = {"localisation": spec.localisation.name, "grading": spec.grading.name}
    for item in items:
        try:
            stage, key, value = parse_setting(item)
        except MednetError as error:
            raise SystemExit(str(error)) from None
        if stages[stage] not in candidate:
            raise SystemExit(f"--set {item}: the {stage} bundle ({stages[stage]}) has no candidate weights")
        settings.setdefault(stages[stage], {})[key] = value
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disease", required=True, choices=sorted(MODELS))
    parser.add_argument("--candidate", action="append", required=True, metavar="BUNDLE=CHECKPOINT",
                        help="a bundle's candidate weights (repeat for each bundle that has them)")
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--seed", type=int, default=VALIDATION_SEED, help="the validation patients")
    parser.add_argument("--randomise", default="moderate", choices=sorted(PRESETS))
    parser.add_argument("--turn-on", action="append", default=[], metavar="FLAG",
                        help="a Randomisation flag to set in the randomised set (abdomen, head, ...)")
    parser.add_argument("--set", action="append", default=[], metavar="STAGE.KEY=VALUE",
                        help="a config override the candidate was trained with, as mednet train's --set "
                             "(VALUE is JSON; repeatable)")  # fmt: skip
    parser.add_argument("--optional", action="append", default=[], metavar="SEQUENCE",
                        help="an optional sequence drawn in both phantom sets (e.g. t1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-real", action="store_true", help="leave out the real scans")
    parser.add_argument("--out", default="compare.json")
    parser.add_argument("--work", default=None, metavar="DIR",
                        help="keep cohorts and predictions here (default: a temporary folder): a run again reuses "
                             "the same cohorts and the cases already predicted with the same weights")  # fmt: skip
    args = parser.parse_args()
    try:
        check_choice_seed(args.seed, args.seed + RANDOMISED_SEED_OFFSET)  # the default and the randomised phantoms
    except ValueError as error:
        parser.error(f"--{error}")
    candidate = dict(item.split("=", 1) for item in args.candidate)
    spec = disease_spec(args.disease)
    unknown = sorted(set(candidate) - {spec.localisation.name, spec.grading.name})
    if unknown:
        raise SystemExit(f"not a bundle of {args.disease}: {unknown}")
    try:
        with flagged_preset(args.randomise, args.turn_on):
            pass
    except ValueError as error:
        raise SystemExit(str(error)) from None
    settings = candidate_settings(args.set, spec, candidate)
    with tempfile.TemporaryDirectory() as tmp:
        result = compare(args.disease, candidate, args.cases, args.seed, args.randomise, args.turn_on, args.device,
                         Path(args.work or tmp), real=not args.no_real, settings=settings,
                         optional=tuple(args.optional))  # fmt: skip
    result["command"] = "python scripts/compare_weights.py " + " ".join(sys.argv[1:])
    Path(args.out).write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
