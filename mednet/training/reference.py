"""The reference weights mednet ships: one deterministic recipe per disease, from synthetic data only.

:func:`train_reference` runs a disease's recipe (:data:`RECIPES`) into a folder, each step
skipped when its result is already there (run it again to resume):

1. two domain-randomised synthetic cohorts (:func:`mednet.synthetic.generate_cohort` with
   ``randomise``), seeded: ``moderate`` randomisation for the localisation bundle
   (physics-plausible and, in one case in six, fully random contrasts; any resolution and
   plane, artefacts, skull stripping, the BraTS look; glioma also with brain metastases),
   ``plausible`` for the grading bundle (each branch reads its own sequence's contrast);
2. the localisation bundle trained on the first, the grading bundle on the second, each
   for a fixed number of epochs with a cosine learning rate, seeded: the same call gives
   the same weights on the same machine and torch build;
3. the weights also stored as float16 (``model_fp16.pt``, what mednet ships: half the size;
   the networks load them into float32);
4. the grading bundle's feature-distance check (:func:`mednet.grading.fit_feature_ood`,
   ``ood.json``) fitted on its training cases for those float16 weights;
5. each bundle's test partition scored with its own ``evaluate.json`` with the float32 and
   the float16 weights (patient-level figures with 95% bootstrap intervals), into
   ``record.json``.

``mednet demo --retrain`` runs it into the demo's folder; ``scripts/train_reference.py``
runs it for a release and installs the weights into a clone's bundles.

Layout of ``out/<disease>/``: ``localisation_data/``, ``grading_data/`` (the cohorts),
``localisation_train/``, ``grading_train/`` (log, TensorBoard curves, ``models/``),
``localisation_test/``, ``grading_test/`` (and ``*_fp16``: test predictions and metrics),
``record.json``; for a recipe with a ``base``, ``<stage>_base_data/`` and ``<stage>_base_train/``
too, or ``<stage>_base_released/`` where the base's weights were taken from a release (each level of
``base`` adds another ``_base``: ``<stage>_base_base_released/``). A cohort in ``parts``:
``<stage>_data/part<i>/`` and the merged ``datalist.json``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path

import torch

import mednet
from mednet.bundles import (
    BundleSpec,
    bundle_path,
    console_to,
    interrupted_run,
    load_state_dict,
    run_bundle,
    train_bundle,
)
from mednet.checksum import bytes_sha256, file_sha256
from mednet.io.atomic import atomic_path, write_json_atomic
from mednet.synthetic.cohort import reuse_or_generate_cohort
from mednet.synthetic.randomise import flagged_preset

__all__ = [
    "FINE_TUNING_ONLY",
    "RECIPES",
    "STAGES",
    "TEST_SEED",
    "TEST_SEEDS",
    "VALIDATION_SEED",
    "check_choice_seed",
    "cohort_seeds",
    "from_scratch",
    "merge_cohorts",
    "portable_overrides",
    "reference_cohort",
    "reference_models",
    "reference_seeds",
    "train_reference",
]

_NB_BALANCE = {"L1": 1, "L2": 1, "M": 1}
#: The segmentation UNets' filters per level (their configs' ``network_def#channels``): every release's
#: up to neuroblastoma localisation 0.7.0.
_NARROW = [16, 32, 64, 128, 256]
#: The neuroblastoma localisation UNet's filters from 0.8.0: 1.5 times as many (10.8 M parameters).
_NB_WIDE = [24, 48, 96, 192, 384]


def _nb_fine_tuning(
    seed: int, learning_rate: float, base: dict, weights_sha256: str | None = None, channels: list[int] | None = None
) -> dict:
    """A neuroblastoma localisation recipe: ``base``'s weights fine-tuned 12 epochs (cosine) on fresh phantoms.

    Its cohort: 80 default phantoms (``seed``) and 80 ``moderate`` ones (``seed`` + 1). Its network's
    filters per level (``network_def#channels``) are named: ``channels``, or the 16..256 UNet of the
    releases up to 0.7.0, so a bundle whose config widens its network still trains the old steps as
    they were. Wider than the base's, the base's filters are kept in their places
    (:func:`mednet.engines.initialised`).
    """
    parts = [{"cases": 80, "balance": _NB_BALANCE, "randomise": None, "seed": seed},
             {"cases": 80, "balance": _NB_BALANCE, "randomise": "moderate", "seed": seed + 1}]  # fmt: skip
    recipe = {"bundle": "neuroblastoma_mri_segmentation", "parts": parts, "seed": seed, "epochs": 12,
              "overrides": {"lr_anneal": "cosine", "val_interval": 4, "learning_rate": learning_rate,
                            "network_def#channels": channels or _NARROW},
              "base": base}  # fmt: skip
    return {**recipe, "weights_sha256": weights_sha256} if weights_sha256 else recipe


#: Neuroblastoma localisation releases, each starting from the one before (taken from the release by
#: its weights' SHA-256 instead of being trained again): 0.5.0, 48 epochs on moderate phantoms;
#: 0.6.0, 12 epochs more (lr 5e-4); 0.7.0, twice 12 epochs more (lr 3e-4), its first step not
#: released by itself; 0.8.0, 0.7.0 widened to 24..384 and 12 epochs more (lr 5e-4); 0.9.0, 12
#: epochs more (lr 3e-4). Every fine-tuning draws fresh phantoms, default and moderate half and half.
_NB_LOCALISATION_050 = {
    "bundle": "neuroblastoma_mri_segmentation", "cases": 160, "balance": _NB_BALANCE, "randomise": "moderate",
    "seed": 2026, "epochs": 48,
    "overrides": {"lr_anneal": "cosine", "val_interval": 8, "network_def#channels": _NARROW},
    "weights_sha256": "1180e87cf4e3c27c9f09fba42b6b688e639dccb000cf2f30e2a69600e64e717e",
}  # fmt: skip
_NB_LOCALISATION_060 = _nb_fine_tuning(
    2040, 5e-4, _NB_LOCALISATION_050, "a441035cc98e3ae156e63d7ff2b75860510a2c855172e18574b6e318fd79aa36"
)
_NB_LOCALISATION_070 = _nb_fine_tuning(
    2044, 3e-4, _nb_fine_tuning(2042, 3e-4, _NB_LOCALISATION_060),
    "ff86ab57d988a7b65e88481a5356a0666023c6038c6fe1479867c7403ebae935",
)
_NB_LOCALISATION_080 = _nb_fine_tuning(
    2050, 5e-4, _NB_LOCALISATION_070, "cf10322c553c4e19fe0bf9a19446b393c781ca1c68149f9cc131c2c16d1ab816",
    channels=_NB_WIDE,
)
_NB_LOCALISATION_090 = _nb_fine_tuning(
    2052, 3e-4, _NB_LOCALISATION_080, "5482d2eb80ed7f506b4b5b49bde3df47d087265759843b92dca556e72073a14f",
    channels=_NB_WIDE,
)

#: Per disease and stage: bundle, cohort (cases, balance, randomisation, seed; ``size`` "demo" and no
#: ``optional`` sequences unless given; or ``parts``, a list of such cohorts, each with ``turn_on`` flags
#: of its preset if any, merged by partition), epochs, config overrides, and optionally a ``base``: the
#: recipe whose weights this one starts from (fine-tuning; trained first). Timed on 2 CPU cores: about
#: 85 s per glioma localisation epoch.
RECIPES: dict[str, dict[str, dict]] = {
    "glioma": {
        "localisation": {"bundle": "glioma_mri_segmentation", "cases": 160,
                         "balance": {"HGG": 1, "LGG": 1, "MET": 0.3}, "randomise": "moderate", "seed": 2026,
                         "epochs": 20, "overrides": {"lr_anneal": "cosine", "val_interval": 5}},
        "grading": {"bundle": "glioma_mri_classification", "cases": 120, "balance": {"HGG": 1, "LGG": 1},
                    "randomise": "plausible", "seed": 2027, "epochs": 20, "overrides": {}},
    },
    "cpa": {
        "localisation": {"bundle": "cpa_mri_segmentation", "cases": 160, "balance": {"AN": 1, "MG": 1},
                         "randomise": "moderate", "seed": 2026, "epochs": 32,
                         "overrides": {"lr_anneal": "cosine", "val_interval": 8}},
        "grading": {"bundle": "cpa_mri_classification", "cases": 120, "balance": {"AN": 1, "MG": 1},
                    "randomise": "plausible", "seed": 2027, "epochs": 15, "overrides": {}},
    },
    "neuroblastoma": {
        # 0.9.0: see _NB_LOCALISATION_090
        "localisation": _NB_LOCALISATION_090,
        "grading": {"bundle": "neuroblastoma_mri_classification", "cases": 240,
                    "balance": {"L1": 1, "L2": 1, "M": 1}, "randomise": "plausible", "seed": 2027, "epochs": 40,
                    "overrides": {}},
    },
}  # fmt: skip
STAGES = ("localisation", "grading")

#: Seeds of the held-out synthetic patients (``demo`` size, classes in equal numbers): the test
#: patients the shipped weights are reported on (``scripts/evaluate_reference.py``; ``TEST_SEED``
#: + 1 its glioma brain metastases), and the validation patients the post-processing and the
#: candidate weights are chosen on (``scripts/tune_postprocessing.py``, ``scripts/compare_weights.py``;
#: the grading's ``min_confidence`` is fitted on its training cohort's validation partition,
#: ``scripts/calibrate_confidence.py``). No choice sees the test.
TEST_SEED = 101
TEST_SEEDS = frozenset({TEST_SEED, TEST_SEED + 1})
VALIDATION_SEED = 103


#: What a released base's record (the bundle's ``models/reference.json``) must share with the
#: base recipe for its weights to stand in for training that recipe again.
RELEASE_MATCH = ("epochs", "seed", "overrides")
#: ... and with the base recipe's cohort.
RELEASE_DATA_MATCH = ("cases", "seed", "randomise", "balance", "size", "optional")


#: Config overrides a release record without them was trained with: the segmentation networks'
#: channels before a recipe named them (every segmentation release so far: each bundle's 16..256).
LEGACY_OVERRIDES = {"network_def#channels": _NARROW}
#: Overrides that only fine-tuning needs (its starting weights, their sequences, its learning rate).
FINE_TUNING_ONLY = ("init_ckpt", "init_keys", "learning_rate")


def reference_seeds(recipes: Mapping = RECIPES) -> set[int]:
    """Every seed a reference cohort is drawn with: each recipe's, its parts' and its bases'."""
    seeds: set[int] = set()
    for stages in recipes.values():
        for recipe in stages.values():
            while recipe:
                seeds.update(part["seed"] for part in recipe.get("parts") or [recipe])
                recipe = recipe.get("base")
    return seeds


def check_choice_seed(*seeds: int) -> None:
    """Refuse the seeds of the patients a release choice is made on where one is the test's or a reference cohort's.

    Give every seed the choice draws patients with (``scripts/compare_weights.py``: its
    default phantoms' and its randomised phantoms').

    Raises:
        ValueError: a seed in :data:`TEST_SEEDS` or :func:`reference_seeds`.
    """
    trained_on = reference_seeds()
    for seed in seeds:
        if seed in TEST_SEEDS:
            raise ValueError(f"seed {seed}: the held-out test patients' seed; a choice is made on others "
                             f"(validation: {VALIDATION_SEED})")  # fmt: skip
        if seed in trained_on:
            raise ValueError(f"seed {seed}: a reference cohort's seed (patients the shipped weights were trained on)")


def cohort_seeds(datalist: os.PathLike | str) -> list[int]:
    """The seeds a synthetic cohort was drawn with (its ``cohort.json``; each part's for a merged one).

    To check with :func:`check_choice_seed`; none for other data (a user's own cases).

    Raises:
        FileNotFoundError: no datalist there.
    """
    datalist = Path(datalist)
    if not datalist.is_file():
        raise FileNotFoundError(f"no datalist here ({'a folder' if datalist.is_dir() else 'nothing'})")
    made = datalist.parent / "cohort.json"
    if not made.is_file():
        return []
    record = json.loads(made.read_text())
    return [int(part["seed"]) for part in record.get("parts") or [record] if part.get("seed") is not None]


def from_scratch(recipe: Mapping) -> dict:
    """``recipe`` as one training from scratch (what ``mednet train`` runs on a researcher's cases).

    A recipe without a ``base`` is returned as it is. One with a base fine-tunes weights
    that its base trained: from scratch, the run takes the length (epochs) and the
    learning-rate settings of the first recipe of the chain, and the other overrides of the
    recipe itself (its sequences, augmentation), those of :data:`FINE_TUNING_ONLY` aside.

    Example:
        >>> base = {"bundle": "b", "epochs": 48, "seed": 1, "overrides": {"lr_anneal": "cosine"}}
        >>> tuned = {"bundle": "b", "epochs": 24, "seed": 2, "base": base,
        ...          "overrides": {"learning_rate": 5e-4, "init_keys": ["t2w"], "image_keys": ["t2w", "t1"]}}
        >>> scratch = from_scratch(tuned)
        >>> scratch["epochs"], scratch["overrides"]
        (48, {'lr_anneal': 'cosine', 'image_keys': ['t2w', 't1']})
    """
    if "base" not in recipe:
        return dict(recipe)
    first = from_scratch(recipe["base"])
    own = {k: v for k, v in recipe["overrides"].items() if k not in FINE_TUNING_ONLY}
    result = {k: v for k, v in recipe.items() if k != "base"}
    return {**result, "epochs": first["epochs"], "overrides": {**first["overrides"], **own}}


def reference_cohort(recipe: dict, disease: str, root: Path) -> Path:
    """The stage's cohort (generated unless the same one is there, its preset's settings included); its datalist.

    A recipe with ``parts`` (a list of cohort settings: ``cases``, ``balance``, ``randomise``,
    ``seed``, optionally ``turn_on``, ``optional``, ``size``) gets each part drawn into
    ``root/part<i>/`` and merged (:func:`merge_cohorts`); else the recipe is its one part.
    """
    parts = recipe.get("parts")
    if not parts:
        return _cohort_part(recipe, disease, root)
    return merge_cohorts([_cohort_part(part, disease, root / f"part{i}") for i, part in enumerate(parts)], root)


def _cohort_part(part: Mapping, disease: str, root: Path) -> Path:
    """One cohort of a recipe: its preset with the ``turn_on`` flags set (e.g. ``abdomen``)."""
    with flagged_preset(part["randomise"], part.get("turn_on", ())) if part["randomise"] else nullcontext() as name:
        return reuse_or_generate_cohort(disease, part["cases"], root, size=part.get("size", "demo"),
                                        seed=part["seed"], balance=part["balance"], randomise=name,
                                        optional=tuple(part.get("optional", ())),
                                        workers=os.cpu_count() or 1)  # fmt: skip


def _is_file_entry(key: str, value: object, folder: Path) -> bool:
    """Whether a datalist case's entry is a path relative to its cohort's folder (a sequence, a label map)."""
    return key not in ("case_id", "patient_id", "class") and isinstance(value, str) and (folder / value).exists()


def merge_cohorts(datalists: Sequence[Path], root: Path) -> Path:
    """One datalist in ``root`` over the cohorts of ``datalists`` (each in a folder under ``root``); its path.

    Each partition keeps its cases (training stays training: the split stays by patient);
    case and patient ids get the cohort's folder name as prefix (``part0_NB_0003``: ids
    repeat across cohorts) and file paths are made relative to ``root``.
    ``root/cohort.json`` lists the cohorts' own ``cohort.json`` contents; written last, and
    the merge is skipped when it is there and the same.

    Raises:
        ValueError: a cohort not under ``root``.
    """
    root = Path(root).resolve()
    made = {"parts": [json.loads((d.parent / "cohort.json").read_text()) for d in datalists]}
    if (root / "cohort.json").is_file() and json.loads((root / "cohort.json").read_text()) == made:
        return root / "datalist.json"
    merged: dict = {"training": [], "validation": [], "testing": []}
    for datalist in datalists:
        folder = datalist.parent.resolve()
        if not folder.is_relative_to(root):
            raise ValueError(f"merge_cohorts: {folder} is not under {root}")
        prefix = folder.relative_to(root).as_posix()
        document = json.loads(datalist.read_text())
        for key, value in document.items():
            if key not in ("training", "validation", "testing"):
                merged.setdefault(key, value)
                continue
            for case in value:
                moved = {k: (f"{prefix}/{v}" if _is_file_entry(k, v, folder) else v) for k, v in case.items()}
                moved["case_id"] = f"{folder.name}_{case['case_id']}"
                moved["patient_id"] = f"{folder.name}_{case.get('patient_id', case['case_id'])}"
                merged.setdefault(key, []).append(moved)
    merged["source"] = {"kind": "merged cohorts", "paths": [d.parent.relative_to(root).as_posix() for d in datalists]}
    merged.pop("split", None)  # each cohort's own split counts; the merged partitions are theirs together
    write_json_atomic(root / "datalist.json", merged, indent=2)
    write_json_atomic(root / "cohort.json", made, indent=2)
    return root / "datalist.json"


def _train(recipe: dict, datalist: Path, work: Path) -> dict:
    """Train the stage's bundle unless ``work/done.json`` says it was trained with this recipe on this cohort."""
    done = work / "done.json"
    cohort = json.loads((datalist.parent / "cohort.json").read_text())
    wanted = {"epochs": recipe["epochs"], "seed": recipe["seed"], "overrides": recipe["overrides"],
              "bundle": recipe["bundle"], "cohort": cohort}  # fmt: skip
    start_from = recipe["overrides"].get("init_ckpt")
    if start_from:  # fine-tuning: other starting weights, another run
        wanted["init_sha256"] = file_sha256(start_from)
    if done.is_file() and json.loads(done.read_text()).get("recipe") == wanted:
        return json.loads(done.read_text())
    log = work.parent / f"{work.name}.log"
    if not interrupted_run(work):
        log.unlink(missing_ok=True)  # a fresh run; an interrupted one resumes and its log goes on
    with console_to(log):
        seconds = train_bundle(recipe["bundle"], datalist, work, epochs=recipe["epochs"], seed=recipe["seed"],
                               **recipe["overrides"])  # fmt: skip
    record = {"recipe": wanted, "train_seconds": round(seconds, 1), "log": str(log),
              "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
    write_json_atomic(done, record, indent=2)
    return record


def _trained(recipe: Mapping, disease: str, root: Path, name: str,
             echo: Callable[[str], None]) -> tuple[Path, dict, dict | None]:  # fmt: skip
    """Draw ``recipe``'s cohort into ``root/<name>_data`` and train into ``root/<name>_train``, its base first.

    A recipe with a ``base`` (another recipe for the same bundle) starts from the float16
    weights that one gives, as a release ships them (``init_ckpt``, trained into
    ``<name>_base_*``): a fine-tuning recipe is reproduced from scratch, its base included.

    Returns:
        ``(datalist, training record, base)``: ``base`` is ``None``, or what the base was
        (bundle, cohort, epochs, seed, overrides, seconds, ``weights``: the path it gave) with
        its own ``base``.
    """
    recipe = dict(recipe)
    base = None
    if "base" in recipe:
        base = _released_base(recipe["base"], root / f"{name}_base_released", echo)
        if base is None:
            base = _trained_base(recipe["base"], disease, root, f"{name}_base", echo)
        recipe["overrides"] = {**recipe["overrides"], "init_ckpt": base["weights"]}
    start = time.perf_counter()
    datalist = reference_cohort(recipe, disease, root / f"{name}_data")
    echo(f"{disease} {name}: cohort {datalist} ({time.perf_counter() - start:.0f} s)")
    trained = _train(recipe, datalist, root / f"{name}_train")
    echo(f"{disease} {name}: trained {recipe['epochs']} epochs in {trained['train_seconds']:.0f} s")
    return datalist, trained, base


def _trained_base(base: Mapping, disease: str, root: Path, name: str, echo: Callable[[str], None]) -> dict:
    """Train ``base`` into ``root/<name>_*``; what it was, with ``weights``: its float16 weights, as shipped."""
    datalist, trained, its_base = _trained(base, disease, root, name, echo)
    weights = _half(root / f"{name}_train" / "models" / "model.pt").resolve()
    cohort = json.loads((datalist.parent / "cohort.json").read_text())
    made = {"data": {**cohort, "synthetic_only": True}, "epochs": base["epochs"], "seed": base["seed"],
            "overrides": base["overrides"], "train_seconds": trained["train_seconds"], "weights": str(weights),
            "weights_sha256": file_sha256(weights), "base": its_base}  # fmt: skip
    if base.get("weights_sha256") and made["weights_sha256"] != base["weights_sha256"]:
        echo(f"{disease} {name}: trained again, its weights differ from the release's (SHA-256 "
             f"{made['weights_sha256'][:12]}, released {base['weights_sha256'][:12]}: another machine or torch build)")
        made["released_sha256"] = base["weights_sha256"]
    return made


def _released_base(base: Mapping, folder: Path, echo: Callable[[str], None]) -> dict | None:
    """The weights a release shipped for ``base`` (it names their ``weights_sha256``), instead of training it again.

    Looked for in the bundle's ``models/model.pt`` as installed, then in each version of it
    in the git history of the clone mednet runs from; taken only with that version's
    ``models/reference.json`` describing ``base`` (:data:`RELEASE_MATCH`,
    :data:`RELEASE_DATA_MATCH`). Written to ``folder/model_fp16.pt``.

    Returns:
        What the base was (its release record's data, epochs, seed, overrides, seconds and
        own base), with ``weights`` (the path), ``weights_sha256`` and ``taken_from``; or
        ``None`` (no SHA-256 named, not found, or another recipe's record).
    """
    wanted = base.get("weights_sha256")
    if not wanted:
        return None
    for weights, record, source in _released_versions(base["bundle"]):
        if bytes_sha256(weights) != wanted or not _describes(record, base):
            continue
        target = folder / "model_fp16.pt"
        if not (target.is_file() and file_sha256(target) == wanted):
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                Path(tmp).write_bytes(weights)
        echo(f"{base['bundle']}: base weights {wanted[:12]} taken from {source} (not trained again)")
        return {"data": record["data"], "epochs": record["epochs"], "seed": record["seed"],
                "overrides": record["overrides"], "train_seconds": record["train_seconds"],
                "weights": str(target.resolve()), "weights_sha256": wanted, "taken_from": source,
                "base": record.get("base")}  # fmt: skip
    return None


def _describes(record: Mapping, base: Mapping) -> bool:
    """Whether a release record (``models/reference.json``) is of the recipe ``base``.

    The record's ``init_ckpt`` override (a path on the machine that trained it) is left out;
    an override neither names is taken as :data:`LEGACY_OVERRIDES` has it, on both sides
    (a segmentation recipe that names its channels describes the releases from before
    recipes named them).
    """
    legacy = LEGACY_OVERRIDES if str(base.get("bundle", "")).endswith("_segmentation") else {}
    own = {**record, "overrides": {**legacy, **portable_overrides(record.get("overrides") or {})}}
    base = {**base, "overrides": {**legacy, **(base.get("overrides") or {})}}
    return all(own.get(k) == base.get(k) for k in RELEASE_MATCH) and (
        _cohorts(record.get("data") or {}) == _cohorts(base)
    )


def portable_overrides(overrides: Mapping) -> dict:
    """A training record's config overrides without ``init_ckpt`` (a path on the machine that trained it)."""
    return {k: v for k, v in overrides.items() if k != "init_ckpt"}


def _cohorts(cohort: Mapping) -> list[dict]:
    """What identifies a cohort (a recipe's, or a record's ``data``): :data:`RELEASE_DATA_MATCH` of each part.

    Both sides are read as :func:`_cohort_part` draws them: ``size`` "demo" and no ``optional``
    sequences where not given; a recipe part's preset with its ``turn_on`` flags is named as
    its cohort records it (``"moderate+abdomen"``, :func:`mednet.synthetic.randomise.flagged_preset`).

    Example:
        >>> recipe = {"cases": 2, "seed": 1, "balance": {"A": 1}, "randomise": "moderate", "turn_on": ["abdomen"]}
        >>> record = {**recipe, "randomise": "moderate+abdomen", "size": "demo", "optional": []}
        >>> del record["turn_on"]
        >>> _cohorts(recipe) == _cohorts(record)
        True
    """
    defaults = {"size": "demo", "optional": ()}
    identities = []
    for part in cohort.get("parts") or [cohort]:
        identity = {k: part.get(k, defaults.get(k)) for k in RELEASE_DATA_MATCH}
        identity["optional"] = list(identity["optional"] or ())  # in order: the order draws other phantoms
        if identity["randomise"] and part.get("turn_on"):
            identity["randomise"] = "+".join([identity["randomise"], *part["turn_on"]])
        identities.append(identity)
    return identities


def _released_versions(bundle: str):
    """``(model.pt bytes, reference.json record, where)``: the bundle as installed, then each commit that changed it."""
    models = bundle_path(bundle) / "models"
    if (models / "model.pt").is_file() and (models / "reference.json").is_file():
        record = json.loads((models / "reference.json").read_text())
        yield (models / "model.pt").read_bytes(), record, "the installed bundle"
    git = shutil.which("git")
    if git is None:
        return

    def run(where: Path, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([git, "-C", str(where), *args], capture_output=True, check=False)

    top = run(models, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        return
    root = Path(top.stdout.decode().strip()).resolve()
    path = (models / "model.pt").resolve().relative_to(root).as_posix()
    for commit in run(root, "log", "--format=%H", "--", path).stdout.decode().split():
        weights = run(root, "show", f"{commit}:{path}")
        record = run(root, "show", f"{commit}:{path.rsplit('/', 1)[0]}/reference.json")
        if weights.returncode == 0 and record.returncode == 0:
            yield weights.stdout, json.loads(record.stdout), f"git commit {commit[:12]}"


def _newer(output: Path, *inputs: Path) -> bool:
    """Whether ``output`` exists and is newer than every input (a step to skip when resuming)."""
    return output.is_file() and all(output.stat().st_mtime >= i.stat().st_mtime for i in inputs)


def _test(recipe: dict, datalist: Path, weights: Path, out: Path) -> dict:
    """The bundle's ``inference`` + ``evaluate`` on the test partition: its metrics (kept if newer than the weights).

    The recipe's config overrides apply here too (e.g. ``image_keys``, which shapes the
    network); those that only training reads are set and left unused.
    """
    if _newer(out / "metrics.json", weights):
        return json.loads((out / "metrics.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    with console_to(out.parent / f"{out.name}.log"):
        run_bundle(recipe["bundle"], ["inference", "evaluate"], datalist=str(datalist), ckpt_path=str(weights),
                   output_dir=str(out), overwrite=True, **recipe["overrides"])  # fmt: skip
    metrics = out / "metrics.json"
    return json.loads(metrics.read_text()) if metrics.is_file() else {}


def _half(weights: Path) -> Path:
    """``model_fp16.pt`` beside ``weights``: the same state dict in float16 (kept when newer than ``weights``)."""
    out = weights.with_name("model_fp16.pt")
    if not _newer(out, weights):
        state = load_state_dict(weights)
        with atomic_path(out) as tmp:
            torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, tmp)
    return out


def _fit_ood(recipe: dict, datalist: Path, weights: Path) -> Path:
    """The grading bundle's feature-distance check for ``weights`` (the shipped float16 ones).

    Fitted on the training cases and written beside the weights (kept when newer than them).
    """
    from mednet.grading import fit_feature_ood
    from mednet.inference import GradingPredictor
    from mednet.io import datalist_cases

    out = weights.with_name("ood.json")
    if not _newer(out, weights):
        predictor = GradingPredictor(BundleSpec.load(bundle_path(recipe["bundle"])), "cpu", weights)
        cases = datalist_cases(datalist, "training", list(predictor.bundle.sequences) + ["label"])
        fit_feature_ood(predictor, cases, out)
    return out


def train_reference(
    disease: str,
    out: os.PathLike | str,
    stages: Sequence[str] = STAGES,
    echo: Callable[[str], None] = print,
    recipes: Mapping[str, Mapping[str, dict]] | None = None,
) -> dict:
    """Run ``disease``'s recipe into ``out/<disease>/``; the training record (also ``record.json``).

    Args:
        disease: ``glioma``, ``cpa`` or ``neuroblastoma``.
        out: the runs' folder.
        stages: ``localisation``, ``grading`` or both.
        echo: where progress lines go.
        recipes: disease -> stage -> recipe, instead of :data:`RECIPES` (tests use tiny ones).

    Returns:
        stage -> ``{"bundle", "data", "epochs", "seed", "train_seconds", "machine",
        "test_metrics", "test_metrics_fp16", "weights_mb", ...}``.
    """
    root = Path(out) / disease
    root.mkdir(parents=True, exist_ok=True)
    record_path = root / "record.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    for stage in stages:
        recipe = dict((recipes or RECIPES)[disease][stage])
        datalist, trained, base = _trained(recipe, disease, root, stage, echo)
        if base is not None:
            recipe["overrides"] = {**recipe["overrides"], "init_ckpt": base["weights"]}
        weights = root / f"{stage}_train" / "models" / "model.pt"
        shipped = _half(weights)
        if stage == "grading":
            echo(f"{disease} {stage}: feature-distance check {_fit_ood(recipe, datalist, shipped)}")
        metrics = _test(recipe, datalist, weights, root / f"{stage}_test")
        metrics_fp16 = _test(recipe, datalist, shipped, root / f"{stage}_test_fp16")
        cohort = json.loads((root / f"{stage}_data" / "cohort.json").read_text())
        record[stage] = {
            "bundle": recipe["bundle"], "data": {**cohort, "synthetic_only": True},
            "recipe": f"mednet.training.reference.RECIPES[{disease!r}][{stage!r}]",
            "epochs": recipe["epochs"], "seed": recipe["seed"], "overrides": recipe["overrides"],
            "train_seconds": trained["train_seconds"], "finished": trained["finished"], "base": base,
            "machine": {"cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                        "platform": platform.platform(), "torch": torch.__version__},
            "mednet_version": mednet.__version__, "test_metrics": metrics, "test_metrics_fp16": metrics_fp16,
            "weights_mb": {"float32": round(weights.stat().st_size / 2**20, 2),
                           "float16": round(weights.with_name("model_fp16.pt").stat().st_size / 2**20, 2)},
        }  # fmt: skip
        write_json_atomic(record_path, record, indent=2, default=float)
        echo(f"{disease} {stage}: tested; record {record_path}")
    return record


def reference_models(
    out: os.PathLike | str, disease: str, recipes: Mapping[str, Mapping[str, dict]] | None = None
) -> dict[str, Path]:
    """Bundle name -> the float16 checkpoint a :func:`train_reference` run into ``out`` made."""
    root = Path(out) / disease
    return {recipe["bundle"]: root / f"{stage}_train" / "models" / "model_fp16.pt"
            for stage, recipe in (recipes or RECIPES)[disease].items()}  # fmt: skip
