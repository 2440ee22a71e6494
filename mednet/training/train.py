"""``mednet train``: a disease's two bundles trained on a researcher's own cases, in one run folder.

:func:`train_run` takes cases (a folder, a CSV manifest or a datalist), makes **one**
patient-level split for both stages (seeded; saved as ``RUN/datalist.json``), and trains

1. the localisation (segmentation) bundle, then
2. the grading (classification) bundle, on the ground-truth lesion maps (the bundle's
   ``roi_key``, ``label``) of the same training and validation patients,

each for a fixed number of epochs (default: the reference recipe's,
:data:`mednet.training.reference.RECIPES`) with the recipe's settings and a seed: never
the wall clock, so the same command gives the same weights on the same machine and torch
build. The testing patients are kept out of both stages: the grading bundle never trains
on a patient that tests the localiser. A tqdm bar per stage (steps, epoch, loss, ETA) goes
to ``progress`` (the command's stderr) while MONAI's own lines go to the stage's log.

Run it again and a finished stage whose settings and data are unchanged is skipped (its
``done.json`` holds what it was trained with), so a stopped run resumes at the stage it
was in. :func:`run_models` gives what ``mednet predict`` needs: bundle name -> checkpoint.

Layout of ``RUN``::

    datalist.json              the split (training / validation / testing), both stages
    training.json              the record: data source, split (case ids), settings, per-stage
                               seconds and test figures, versions of mednet, torch, MONAI
    localisation.log           MONAI's log of the stage (loss and validation per epoch)
    localisation/models/model.pt            the weights (best validation epoch)
    localisation/train_log/    TensorBoard curves (train loss, validation Dice per class)
    localisation/test/         the testing patients' predictions and metrics.json
    localisation/done.json     what the stage was trained with (resume)
    grading.log, grading/...   the same for the grading bundle (models/ood.json: the
                               feature-distance check fitted for its weights)
"""

from __future__ import annotations

import csv
import datetime
import difflib
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from mednet.checksum import file_sha256
from mednet.errors import DatalistError, MednetError, OutputExistsError

__all__ = [
    "STAGES",
    "TrainingRunError",
    "parse_setting",
    "prepare_split",
    "read_grades",
    "run_models",
    "run_settings",
    "train_run",
]

#: The stages in the order they train.
STAGES = ("localisation", "grading")
_RECORD = "training.json"
_KIND = "mednet train"
_CASE_COLUMNS = ("case_id", "case", "id", "scan_id", "subject_id", "patient_id")
_CLASS_COLUMNS = ("class", "grade", "diagnosis", "stage")
_NIFTI = (".nii", ".nii.gz")
_OOD_MIN_CASES = 10  # mednet.grading.FeatureOOD.fit's minimum


class TrainingRunError(MednetError, FileNotFoundError):
    """A folder that is not a ``mednet train`` run, or a run with a stage not trained."""


# ---------------------------------------------------------------- the cases and their split


def read_grades(path: os.PathLike | str) -> dict[str, str]:
    """Case id -> class from a CSV with a case id column (``case_id``) and a class column (``class``).

    Raises:
        DatalistError: the file is missing, lacks one of the columns, or gives a case two classes.
    """
    path = Path(path)
    if not path.is_file():
        raise DatalistError(f"--grades {path}: file not found")
    with path.open(newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    lower = {c.strip().lower(): c for c in columns}
    case_col = next((lower[n] for n in _CASE_COLUMNS if n in lower), None)
    class_col = next((lower[n] for n in _CLASS_COLUMNS if n in lower and lower[n] != case_col), None)
    if case_col is None or class_col is None:
        found = ", ".join(columns) or "none"
        raise DatalistError(f"--grades {path}: expected a case id column ({', '.join(_CASE_COLUMNS[:2])}) and a "
                            f"class column ({', '.join(_CLASS_COLUMNS[:2])}), found {found}")  # fmt: skip
    grades: dict[str, str] = {}
    for line, row in enumerate(rows, start=2):
        case, grade = (row.get(case_col) or "").strip(), (row.get(class_col) or "").strip()
        if not case or not grade:
            continue
        if grades.get(case, grade) != grade:
            raise DatalistError(f"--grades {path}:{line}: case {case} given two classes, {grades[case]} and {grade}")
        grades[case] = grade
    if not grades:
        raise DatalistError(f"--grades {path}: no row with both a case id and a class")
    return grades


def _listing(items: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _discover(source: Path) -> tuple[list[dict], dict, dict[str, str] | None, list[str]]:
    """Cases, the source's description, the split given with them (case id -> partition) and notes."""
    from mednet.io.datalist import discover_cases, load_datalist, read_manifest
    from mednet.io.splits import PARTITIONS

    if source.is_dir():
        found = discover_cases(source)
    elif source.suffix.lower() == ".csv":
        found = read_manifest(source)
    elif source.suffix.lower() == ".json":
        doc = load_datalist(source)
        cases = [dict(c) for name in PARTITIONS for c in doc[name]]
        given = {str(c["case_id"]): name for name in PARTITIONS for c in doc[name]}
        return cases, {"kind": "datalist", "path": str(source.resolve()), "split": doc.get("split")}, given, []
    else:
        raise DatalistError(f"--input {source}: expected a folder of cases, a CSV manifest or a datalist JSON, "
                            f"found {'a ' + source.suffix + ' file' if source.exists() else 'nothing'}")  # fmt: skip
    notes = [*found.notes, *(f"skipped {s['path']}: {s['reason']}" for s in found.skipped)]
    given = {str(c["case_id"]): c["split"] for c in found.cases if c.get("split")}
    cases = [{k: v for k, v in c.items() if k != "split"} for c in found.cases]
    return cases, dict(found.source), given or None, notes


def prepare_split(
    disease: str,
    source: os.PathLike | str,
    *,
    grades: os.PathLike | str | None = None,
    seed: int = 0,
    ratios: Sequence[float] | None = None,
    resplit: bool = False,
) -> dict:
    """The datalist both stages train from: ``disease``'s cases in ``source``, split by patient.

    ``source`` is a folder (BraTS names, ``<case>_<sequence>`` files, case folders; a class
    from ``HGG`` / ``LGG`` folders above a case), a CSV manifest (a ``class`` column) or a
    datalist JSON (its split kept unless ``resplit``; a manifest's ``split`` column too).
    ``grades`` (CSV: ``case_id,class``; a case id absent there is looked up by its patient
    id) gives or replaces the classes. Class names are matched to the grading bundle's
    without regard to case (``hgg`` is ``HGG``).

    Returns:
        The datalist: ``training``, ``validation``, ``testing`` (no patient in two),
        ``split`` (how, seed, counts), ``source``, ``notes`` and the rest of
        :func:`mednet.io.build_datalist`'s keys.

    Raises:
        DatalistError: naming every case without a grade, without a label map, without a
            sequence the bundles read, with a class the grading bundle does not know, or
            with a file that is not NIfTI; too few patients for a training and a validation
            partition.
    """
    from mednet.io.datalist import Discovery, build_datalist
    from mednet.io.splits import DEFAULT_RATIOS, PARTITIONS
    from mednet.pipeline.diseases import disease_spec

    spec = disease_spec(disease)
    source = Path(source)
    cases, described, given, notes = _discover(source)
    if grades is not None:
        table = read_grades(grades)
        used = set()
        for case in cases:
            key = next((k for k in (str(case["case_id"]), str(case.get("patient_id", ""))) if k in table), None)
            if key is not None:
                case["class"] = table[key]
                used.add(key)
        unused = sorted(set(table) - used)
        if unused:
            notes.append(f"--grades: {len(unused)} row(s) match no case: {_listing(unused)}")
        described["grades"] = str(Path(grades).resolve())
    if not cases:
        raise DatalistError(f"--input {source}: no case found" + ("".join(f"\n  {n}" for n in notes[:20])))
    classes = {c.lower(): c for c in spec.classes}
    problems: dict[str, list[str]] = {"grade": [], "class": [], "label": [], "sequence": [], "nifti": []}
    for case in cases:
        case_id = str(case["case_id"])
        grade = str(case.get("class") or "").strip()
        if not grade:
            problems["grade"].append(case_id)
        elif grade.lower() not in classes:
            problems["class"].append(f"{case_id} ({grade})")
        else:
            case["class"] = classes[grade.lower()]
        if not case.get("label"):
            problems["label"].append(case_id)
        missing = [s for s in spec.sequences if not case.get(s)]
        if missing:
            problems["sequence"].append(f"{case_id} (no {', '.join(missing)})")
        odd = [k for k in (*spec.sequences, "label") if case.get(k) and not str(case[k]).lower().endswith(_NIFTI)]
        if odd:
            problems["nifti"].append(f"{case_id} ({', '.join(f'{k} {Path(case[k]).name}' for k in odd)})")
    said = {
        "grade": "without a grade (give --grades CSV with case_id,class, or put each case under a folder "
                 f"named by its class, e.g. DIR/{spec.classes[-1]}/<case>/)",
        "class": f"with a class the {spec.grading.name} bundle does not know (expected {', '.join(spec.classes)})",
        "label": "without a label map (a <case>_seg file, a label column; both stages train on the ground truth)",
        "sequence": f"without a sequence the bundles read ({', '.join(spec.sequences)})",
        "nifti": "with a file that is not NIfTI (training reads .nii / .nii.gz; convert it, e.g. with SimpleITK)",
    }  # fmt: skip
    errors = [f"{len(v)} case(s) {said[k]}: {_listing(v)}" for k, v in problems.items() if v]
    if errors:
        raise DatalistError(f"--input {source}: cannot train {disease} on these cases:\n  " + "\n  ".join(errors))
    if given and not resplit and len(given) != len(cases):
        notes.append(f"a split was given for {len(given)} of {len(cases)} cases: split again")
        given = None
    if given and not resplit:
        cases = [{**c, "split": given[str(c["case_id"])]} for c in cases]
    ratios = tuple(ratios or DEFAULT_RATIOS)
    datalist = build_datalist(Discovery(cases=cases, notes=notes, source=described), ratios, seed=seed)
    datalist.pop("created", None)  # the same cases and seed give the same file
    counts = datalist["split"]["counts"]
    empty = [n for n in PARTITIONS[:2] if not counts[n]["patients"]]
    if empty:
        raise DatalistError(f"--input {source}: {len(cases)} case(s) give no patient to {' and '.join(empty)} "
                            f"(ratios {list(ratios)}); training needs both (more cases, other --ratios"
                            + (", or --resplit" if given else "") + ")")  # fmt: skip
    return datalist


def _file_state(path: str) -> list:
    stat = Path(path).stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _fingerprint(datalist: Mapping, keys: Sequence[str]) -> str:
    """SHA-256 of the split: every partition's cases, their classes and their files (path, size, mtime)."""
    from mednet.io.splits import PARTITIONS, patient_of

    doc = {name: [[str(c["case_id"]), patient_of(c), str(c.get("class")),
                   {k: _file_state(c[k]) for k in keys if c.get(k)}] for c in datalist[name]]
           for name in PARTITIONS}  # fmt: skip
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------- settings


def parse_setting(text: str) -> tuple[str, str, Any]:
    """``STAGE.KEY=VALUE`` (``--set``) -> ``(stage, key, value)``; VALUE is JSON, else text.

    Example: ``localisation.roi_size=[64,64,32]`` -> ``("localisation", "roi_size", [64, 64, 32])``.

    Raises:
        DatalistError: not of that form, or an unknown stage.
    """
    from mednet.options import choose

    name, sep, value = text.partition("=")
    stage, dot, key = name.strip().partition(".")
    if not sep or not dot or not key:
        raise DatalistError(f"--set {text!r}: expected STAGE.KEY=VALUE, e.g. localisation.num_workers=0")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    if key == "max_epochs":
        raise DatalistError(f"--set {text!r}: give the run's length with --epochs")
    try:
        return choose(stage, STAGES, "--set stage"), key, parsed
    except ValueError as err:
        raise DatalistError(f"--set {text!r}: {err}") from None


def _stage_settings(disease: str, epochs: int | None, seed: int, overrides: Mapping) -> dict[str, dict]:
    """Per stage: bundle, epochs, seed, config overrides (the reference recipe's, then the caller's)."""
    from mednet.training.reference import RECIPES, from_scratch

    unknown = set(overrides) - set(STAGES)
    if unknown:
        raise DatalistError(f"overrides: expected stages {', '.join(STAGES)}, found {', '.join(sorted(unknown))}")
    settings = {}
    for stage in STAGES:
        recipe = from_scratch(RECIPES[disease][stage])  # a fine-tuning recipe's settings for a run from scratch
        length = recipe["epochs"] if epochs is None else epochs
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise DatalistError(f"--epochs: expected a whole number >= 1, found {length!r}")
        given = dict(overrides.get(stage, {}))
        known = _config_keys(recipe["bundle"], ("train", "inference", "evaluate"))
        for key in given:
            if key.split("#")[0] not in known:
                root = key.split("#")[0]
                hint = difflib.get_close_matches(root, sorted(known), n=1)
                raise DatalistError(f"--set {stage}.{key}: {recipe['bundle']} has no config entry {root!r}"
                                    + (f"; did you mean {hint[0]!r}?" if hint else ""))  # fmt: skip
        settings[stage] = {"bundle": recipe["bundle"], "epochs": length, "seed": seed,
                           "overrides": {**recipe["overrides"], **given}}  # fmt: skip
    return settings


def _config_keys(bundle: str, configs: Sequence[str]) -> set[str]:
    """The top-level entries of a bundle's configs."""
    from mednet.bundles import BundleSpec, bundle_path

    return BundleSpec.load(bundle_path(bundle)).config_keys(*configs)


# ---------------------------------------------------------------- progress


class StepBar:
    """A tqdm bar over a training run's steps (every epoch's iterations): epoch, loss, ETA.

    An ignite handler: ``attach(trainer)``. It only reads the engine's state, so the
    weights do not depend on it.

    Args:
        stream: where the bar is drawn (the command's stderr).
        desc: the bar's label.
    """

    def __init__(self, stream: TextIO, desc: str):
        self.stream, self.desc, self.bar = stream, desc, None

    def attach(self, engine) -> None:
        """Open the bar when ``engine`` starts, advance it each iteration, close it at the end."""
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration)
        engine.add_event_handler(Events.COMPLETED, self._close)
        engine.add_event_handler(Events.EXCEPTION_RAISED, self._failed)

    def _started(self, engine) -> None:
        from tqdm import tqdm

        state = engine.state
        total = state.max_epochs * state.epoch_length if state.epoch_length else None
        self.bar = tqdm(total=total, initial=state.iteration, desc=self.desc, unit="step", file=self.stream,
                        dynamic_ncols=True, mininterval=0.5)  # fmt: skip

    def _iteration(self, engine) -> None:
        if self.bar is None:
            return
        output = engine.state.output
        if isinstance(output, list) and output:
            output = output[0]
        loss = output.get("loss") if isinstance(output, Mapping) else None
        postfix = {"epoch": f"{engine.state.epoch}/{engine.state.max_epochs}"}
        if loss is not None:
            postfix["loss"] = f"{float(loss.detach() if hasattr(loss, 'detach') else loss):.3f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def _close(self, engine) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _failed(self, engine, error: BaseException) -> None:
        self._close(engine)
        raise error


# ---------------------------------------------------------------- one stage


def _config_hash(bundle: str) -> str:
    from mednet.bundles import bundle_path

    configs = bundle_path(bundle) / "configs"
    text = "".join((configs / f"{n}.json").read_text() for n in ("train", "metadata"))
    return hashlib.sha256(text.encode()).hexdigest()


def _inference_overrides(bundle: str, overrides: Mapping) -> dict:
    """The overrides that name an entry of the bundle's ``inference.json`` or ``evaluate.json`` (top level)."""
    keys = _config_keys(bundle, ("inference", "evaluate"))
    return {k: v for k, v in overrides.items() if k.split("#")[0] in keys}


def _train_stage(stage: str, settings: dict, datalist: Path, run: Path, data_sha: str,
                 progress: TextIO | None, echo: Callable[[str], None]) -> dict:  # fmt: skip
    """Train the stage's bundle unless ``RUN/<stage>/done.json`` says it was, with these settings on this data."""
    from mednet.bundles import console_to, interrupted_run, train_bundle

    work, log = run / stage, run / f"{stage}.log"
    done = work / "done.json"
    wanted = json.loads(
        json.dumps({**settings, "config_sha256": _config_hash(settings["bundle"]), "data_sha256": data_sha})
    )  # as done.json holds it
    weights = work / "models" / "model.pt"
    if done.is_file() and weights.is_file():
        record = json.loads(done.read_text())
        if record.get("settings") == wanted and record.get("weights_sha256") == file_sha256(weights):
            echo(f"{stage}: trained earlier with the same settings and data: skipped ({weights})")
            return {**record, "skipped": True}
    echo(f"{stage}: training {settings['bundle']} for {settings['epochs']} epoch(s), seed {settings['seed']} "
         f"(log {log}; TensorBoard curves {work / 'train_log'})")  # fmt: skip
    if not interrupted_run(work):
        log.unlink(missing_ok=True)  # a fresh run; an interrupted one resumes and its log goes on
    overrides = dict(settings["overrides"])
    if progress is not None:
        bar = StepBar(progress, stage)
        overrides.update({"train#progress_bar": bar,
                          "train#handlers": "$@train#every_rank_handlers + @train#logging_handlers"
                                            " + [@train#progress_bar]"})  # fmt: skip
    with console_to(log):
        seconds = train_bundle(settings["bundle"], datalist, work, epochs=settings["epochs"], seed=settings["seed"],
                               **overrides)  # fmt: skip
    if not weights.is_file():
        raise MednetError(f"{stage}: training ended without weights in {weights.parent}; see {log}")
    record = {"settings": wanted, "weights": str(weights), "weights_sha256": file_sha256(weights),
              "train_seconds": round(seconds, 1), "log": str(log), "tensorboard": str(work / "train_log"),
              "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
    _save(done, record)
    echo(f"{stage}: trained in {seconds:.0f} s; weights {weights}")
    return {**record, "skipped": False}


def _fit_ood(settings: dict, datalist: Path, weights: Path, log: Path) -> str:
    """The grading bundle's feature-distance check for ``weights``, fitted on the training cases (``ood.json``).

    Returns what was done, for the record: the file, or why there is none (fewer training
    cases than a fit needs: predict then grades without the check).
    """
    from mednet.bundles import BundleSpec, bundle_path, console_to
    from mednet.grading import fit_feature_ood
    from mednet.inference import GradingPredictor
    from mednet.io import datalist_cases
    from mednet.training.reference import _newer

    out = weights.with_name("ood.json")
    if _newer(out, weights):
        return str(out)
    out.unlink(missing_ok=True)
    spec = BundleSpec.load(bundle_path(settings["bundle"]))
    cases = datalist_cases(datalist, "training", list(spec.sequences) + ["label"])
    if len(cases) < _OOD_MIN_CASES:
        return f"none: {len(cases)} training case(s), a feature-distance check needs {_OOD_MIN_CASES}"
    overrides = _inference_overrides(settings["bundle"], settings["overrides"])
    overrides.pop("num_workers", None)
    with console_to(log):
        fit_feature_ood(GradingPredictor(spec, "cpu", weights, **overrides), cases, out)
    return str(out)


def _test_stage(stage: str, settings: dict, datalist: Path, run: Path, stamp_doc: dict,
                echo: Callable[[str], None]) -> dict:  # fmt: skip
    """The bundle's ``inference`` + ``evaluate`` on the testing patients: its metrics (kept while the weights are)."""
    import shutil

    from mednet.bundles import console_to, run_bundle

    out = run / stage / "test"
    stamp = out / "tested.json"
    if stamp.is_file() and (out / "metrics.json").is_file() and json.loads(stamp.read_text()) == stamp_doc:
        return json.loads((out / "metrics.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    echo(f"{stage}: scoring the testing patients ({out})")
    overrides = _inference_overrides(settings["bundle"], settings["overrides"])
    with console_to(run / f"{stage}.log"):
        run_bundle(settings["bundle"], ["inference", "evaluate"], datalist=str(datalist), output_dir=str(out),
                   ckpt_path=str(run / stage / "models" / "model.pt"), overwrite=True, **overrides)  # fmt: skip
    metrics_path = out / "metrics.json"
    if not metrics_path.is_file():
        raise MednetError(f"{stage}: the test run wrote no {metrics_path}; see {run / f'{stage}.log'}")
    metrics = json.loads(metrics_path.read_text())
    _save(stamp, stamp_doc)
    return metrics


def _figure(doc: Mapping, *keys: str):
    for key in keys:
        doc = doc.get(key) if isinstance(doc, Mapping) else None
    return doc


def _headline(stage: str, metrics: Mapping) -> dict:
    """A stage's headline test figures (named as in ``mednet predict``'s ``metrics.json``); the rest: its file."""
    if stage == "localisation":
        summary = metrics.get("summary", {})
        figures = {"lesion Dice": _figure(summary, "dice_lesions"),
                   "lesion sensitivity": _figure(summary, "detection", "sensitivity"),
                   "false positives per scan": _figure(summary, "detection", "false_positives_per_scan")}  # fmt: skip
    else:
        levels = metrics.get("patient_level", {})
        key = "auc" if "auc" in levels.get("fused", {}) else "macro_f1"
        figures = {f"fused {key}": _figure(levels, "fused", key),
                   "fused decision accuracy": _figure(metrics, "fused_decision", "accuracy"),
                   **{f"{name} {key}": _figure(v, key) for name, v in levels.items() if name != "fused"}}  # fmt: skip
    return {"patients": metrics.get("patients", _figure(metrics, "summary", "patients")),
            **{k: v for k, v in figures.items() if v}}  # fmt: skip


def _save(path: Path, doc: Mapping) -> Path:
    from mednet.io.atomic import write_json_atomic

    return write_json_atomic(path, doc, indent=2, default=float)


# ---------------------------------------------------------------- the run


def _versions() -> dict:
    import monai
    import torch

    import mednet

    return {"mednet": mednet.__version__, "torch": torch.__version__, "monai": monai.__version__,
            "python": platform.python_version()}  # fmt: skip


def _partition_ids(datalist: Mapping) -> dict[str, list[str]]:
    from mednet.io.splits import PARTITIONS

    return {name: [str(c["case_id"]) for c in datalist[name]] for name in PARTITIONS}


def _check_run_folder(run: Path) -> None:
    if run.exists() and not run.is_dir():
        raise OutputExistsError(f"--out {run}: a file is there; expected a folder for the training run")
    if run.is_dir() and any(run.iterdir()) and not (run / _RECORD).is_file() and not (run / "datalist.json").is_file():
        raise OutputExistsError(f"--out {run}: a folder that is not a mednet training run (no {_RECORD}) and "
                                "not empty; choose a new folder")  # fmt: skip


def train_run(
    disease: str,
    source: os.PathLike | str,
    out: os.PathLike | str,
    *,
    grades: os.PathLike | str | None = None,
    epochs: int | None = None,
    seed: int = 0,
    ratios: Sequence[float] | None = None,
    resplit: bool = False,
    test: bool = True,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    progress: TextIO | None = None,
    echo: Callable[[str], None] = print,
    command: str | None = None,
) -> dict:
    """Train ``disease``'s localisation and grading bundles on the cases in ``source`` into ``out``.

    See the module docstring for what is done and where it goes.

    Args:
        disease: ``glioma``, ``cpa`` or ``neuroblastoma``.
        source: a folder of cases, a CSV manifest or a datalist JSON (:func:`prepare_split`).
        out: the run's folder (created; a run there is resumed).
        grades: CSV of ``case_id,class`` (:func:`read_grades`).
        epochs: epochs of each stage (default: the reference recipe's).
        seed: seed of the split and of both stages' training.
        ratios: training, validation, testing proportions of the patients (default 0.7, 0.15, 0.15).
        resplit: split a datalist's (or a manifest's) cases again instead of keeping its split.
        test: score each stage's testing patients with its ``evaluate.json``.
        overrides: stage -> bundle config entries (``{"localisation": {"num_workers": 0}}``).
        progress: where the tqdm bars go (None: no bar).
        echo: where the progress lines go.
        command: the command line, for the record.

    Returns:
        The training record (also ``out/training.json``).

    Raises:
        DatalistError: cases that cannot train (named), bad settings.
        OutputExistsError: ``out`` is a folder of something else.
    """
    from mednet.io.datalist import save_datalist
    from mednet.options import choose
    from mednet.pipeline.diseases import DISEASES

    start = time.perf_counter()
    try:
        disease = choose(disease, DISEASES, "disease")
    except ValueError as err:
        raise DatalistError(str(err)) from None
    settings = _stage_settings(disease, epochs, seed, overrides or {})
    run = Path(out).resolve()
    _check_run_folder(run)
    datalist = prepare_split(disease, source, grades=grades, seed=seed, ratios=ratios, resplit=resplit)
    run.mkdir(parents=True, exist_ok=True)
    path = run / "datalist.json"
    from mednet.io.datalist import load_datalist

    if not path.is_file() or _partition_ids(load_datalist(path)) != _partition_ids(datalist) \
            or json.loads(path.read_text()).get("split") != datalist["split"]:  # fmt: skip
        save_datalist(datalist, path)
    split = datalist["split"]
    echo(f"split by patient ({split['method']}, seed {split.get('seed', '-')}), the same for both stages: "
         + ", ".join(f"{n} {c['patients']} patients" for n, c in split["counts"].items()) + f" ({path})")  # fmt: skip
    from mednet.pipeline.diseases import disease_spec

    spec = disease_spec(disease)
    data_sha = _fingerprint(load_datalist(path), [*spec.sequences, "label"])
    record_path = run / _RECORD
    record = {
        "kind": _KIND, "disease": disease, "versions": _versions(),
        "source": {**datalist["source"], "cases": sum(len(v) for v in _partition_ids(datalist).values())},
        "datalist": str(path), "split": {**split, "partitions": _partition_ids(datalist)},
        "settings": {"epochs": {s: v["epochs"] for s, v in settings.items()}, "seed": seed,
                     "ratios": split.get("ratios"), "overrides": {s: v["overrides"] for s, v in settings.items()},
                     "test": test},
        "machine": {"cpu_cores": os.cpu_count(), "platform": platform.platform(),
                    "cuda": _cuda_name()},
        "notes": datalist.get("notes", []), "stages": {},
        "command": command,
    }  # fmt: skip
    _save(record_path, record)
    for stage in STAGES:
        began = time.perf_counter()
        trained = _train_stage(stage, settings[stage], path, run, data_sha, progress, echo)
        entry = {"bundle": settings[stage]["bundle"], "bundle_version": _bundle_version(settings[stage]["bundle"]),
                 "weights": trained["weights"], "weights_sha256": trained["weights_sha256"],
                 "epochs": settings[stage]["epochs"], "seed": seed, "overrides": settings[stage]["overrides"],
                 "train_seconds": trained["train_seconds"], "skipped": trained["skipped"], "log": trained["log"],
                 "tensorboard": trained["tensorboard"], "trained": trained["finished"]}  # fmt: skip
        # what predicting with these weights must set too (a --set that changed the network or its inputs)
        needed = _inference_overrides(entry["bundle"], entry["overrides"])
        entry["inference_overrides"] = {k: v for k, v in needed.items() if k not in ("num_workers", "n_boot")}
        weights = Path(trained["weights"])
        if stage == "grading":
            entry["ood"] = _fit_ood(settings[stage], path, weights, run / f"{stage}.log")
        if test and datalist["testing"]:
            stamp = {"weights_sha256": trained["weights_sha256"], "data_sha256": data_sha}
            metrics = _test_stage(stage, settings[stage], path, run, stamp, echo)
            entry["test_metrics"] = _headline(stage, metrics)
            entry["test_metrics_file"] = str(run / stage / "test" / "metrics.json")
        entry["seconds"] = round(time.perf_counter() - began, 1)
        record["stages"][stage] = entry
        _save(record_path, record)
    record["seconds"] = round(time.perf_counter() - start, 1)
    record["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    _save(record_path, record)
    echo(f"training record {record_path}; predict with these weights: mednet predict --models {run}")
    return record


def _cuda_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _bundle_version(bundle: str) -> str:
    from mednet.bundles import BundleSpec, bundle_path

    return BundleSpec.load(bundle_path(bundle)).version


def run_models(run: os.PathLike | str, disease: str | None = None) -> dict[str, Path]:
    """Bundle name -> checkpoint (``model.pt``) of a :func:`train_run` folder: ``Predictors.build(models=...)``.

    Args:
        run: the ``mednet train --out`` folder.
        disease: when given, the disease the run must have trained.

    Raises:
        TrainingRunError: ``run`` is not a folder made by ``mednet train``, it trained another
            disease, or a stage did not finish there (the message says how to resume).
    """
    return {bundle: weights for bundle, (weights, _) in _finished_stages(run, disease).items()}


def run_settings(run: os.PathLike | str, disease: str | None = None) -> dict[str, dict]:
    """Bundle name -> the config overrides predicting must repeat: ``Predictors.build(settings=...)``.

    A run trained with ``--set`` entries that change the network or its inputs (its size,
    the slice count) needs them at prediction time too; the others (workers, learning
    rate) are left out. Raises as :func:`run_models`.
    """
    return {bundle: settings for bundle, (_, settings) in _finished_stages(run, disease).items()}


def _finished_stages(run: os.PathLike | str, disease: str | None) -> dict[str, tuple[Path, dict]]:
    """Bundle name -> (checkpoint, inference overrides) of every stage of a finished training run."""
    run = Path(run)
    record_path = run / _RECORD
    if not run.is_dir():
        raise TrainingRunError(f"{run}: expected a training run folder (made by mednet train), found "
                               f"{'a file' if run.exists() else 'nothing'}")  # fmt: skip
    try:
        record = json.loads(record_path.read_text())
    except FileNotFoundError:
        raise TrainingRunError(f"{run}: not a training run: no {_RECORD} (made by mednet train --out {run})") from None
    except json.JSONDecodeError as err:
        raise TrainingRunError(f"{record_path}: not valid JSON ({err})") from None
    if not isinstance(record, dict) or record.get("kind") != _KIND:
        raise TrainingRunError(f"{record_path}: not the record of a mednet train run (kind {_KIND!r} expected)")
    if disease is not None and record.get("disease") != disease:
        raise TrainingRunError(f"{run}: a {record.get('disease')} training run, not {disease}")
    stages = {}
    for stage in STAGES:
        entry = record.get("stages", {}).get(stage)
        if entry is None:
            raise TrainingRunError(f"{run}: the {stage} stage of this {record.get('disease')} training run did not "
                                   "finish; run the same mednet train command again to resume it")  # fmt: skip
        weights = run / stage / "models" / "model.pt"  # here, not the recorded path: a run folder may move
        if not weights.is_file():
            raise TrainingRunError(f"{run}: the {stage} stage's weights {weights} are missing; run the same "
                                   "mednet train command again to train them")  # fmt: skip
        stages[entry["bundle"]] = (weights.resolve(), dict(entry.get("inference_overrides") or {}))
    return stages
