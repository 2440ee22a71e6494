"""Write a synthetic cohort of one disease: NIfTI files, manifest, label table, datalist.

Layout of ``out``::

    manifest.csv        case_id, patient_id, one column per sequence, label, class
                        (+ radiology, radiotherapy for CPA); paths relative to out
    labels.json         label table: value, name, colour
    cases.json          per case: class, grids, and the drawn parameters (ground truth)
    cohort.json         how the cohort was made: generator version, disease, seed, size,
                        randomisation, balance (what a model card cites)
    datalist.json       patient-level split made by mednet.io from the manifest
    <case>/<case>_<sequence>.nii.gz, <case>/<case>_seg.nii.gz

The same seed gives byte-identical files; each case draws from its own random
stream, so case ``i`` does not depend on how many cases are generated. With
``randomise`` (a preset of :mod:`mednet.synthetic.randomise`) every case also draws how
its scans look (contrast, resolution, acquisition plane, artefacts, skull stripping,
the BraTS look) and its lesion's kind.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import nibabel as nib
import numpy as np

from mednet import __version__
from mednet.io.atomic import atomic_path, write_json_atomic
from mednet.io.datalist import build_datalist, read_manifest, save_datalist
from mednet.io.splits import largest_remainder
from mednet.io.write import save_atomic
from mednet.synthetic import cpa, glioma, neuroblastoma
from mednet.synthetic.phantom import PLANE_AXES, Phantom, acquisition_grid, render
from mednet.synthetic.randomise import PRESETS, CaseStyle, Randomisation, atlas_grid, draw_style

__all__ = ["DISEASES", "SIZES", "Cohort", "cohort_settings", "generate_cohort", "reuse_or_generate_cohort"]

DISEASES: dict[str, ModuleType] = {"glioma": glioma, "cpa": cpa, "neuroblastoma": neuroblastoma}
#: In-plane matrix of each size.
SIZES: dict[str, int] = {"small": 48, "demo": 128, "full": 240}
_ORIENTATIONS = ("RAS", "LPS", "LAS")


@dataclass
class Cohort:
    """What :func:`generate_cohort` wrote."""

    root: Path
    manifest: Path
    datalist: Path
    labels: Path
    cases: list[dict]


def _class_list(rng: np.random.Generator, balance: dict[str, float], n: int) -> list[str]:
    names = list(balance)
    counts = largest_remainder(n, np.asarray([balance[k] for k in names], float) / sum(balance.values()))
    classes = [name for name, count in zip(names, counts, strict=True) for _ in range(count)]
    return [classes[i] for i in rng.permutation(n)]


def _save(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    image = nib.Nifti1Image(array, affine)
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    image.header.set_xyzt_units(xyz="mm")
    save_atomic(image, path)


def _single_threaded() -> None:
    """Worker set-up: one BLAS/OpenMP thread per process, so that workers do not fight for cores."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


@dataclass(frozen=True)
class _CaseJob:
    disease: str
    index: int
    label: str
    seed: int
    size: str
    sequences: tuple[str, ...]
    mixed_grids: bool
    reader_accuracy: float
    root: Path
    randomise: str | None = None
    #: the cohort's settings (:func:`cohort_settings` and the mednet version) as JSON text
    settings: str = ""


def _progress(root: Path) -> Path:
    """Where a cohort being generated keeps its finished cases (removed when the cohort is complete)."""
    return root / ".progress"


def _make_case(job: _CaseJob) -> tuple[dict, dict]:
    """One case's manifest row and record: rendered and written, or kept from an interrupted run. Runs in a worker.

    A case is kept when the run that wrote it had the same settings: its files were written
    before its progress record (``.progress/<index>.json``), so a case cut off mid-way has
    none and is rendered again; rendering is deterministic, so a kept case is the same.
    """
    done = _progress(job.root) / f"{job.index:04d}.json"
    try:
        kept = json.loads(done.read_text())
        if kept["settings"] == job.settings:
            return kept["row"], kept["record"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    made = json.loads(json.dumps(dict(zip(("row", "record"), _render_case(job), strict=True))))  # as kept
    write_json_atomic(done, {"settings": job.settings, **made}, parents=True)
    return made["row"], made["record"]


def _render_case(job: _CaseJob) -> tuple[dict, dict]:
    """Render and write one case; returns its manifest row and its record."""
    disease, i, label, seed, size = job.disease, job.index, job.label, job.seed, job.size
    sequences, mixed_grids, reader_accuracy, root = list(job.sequences), job.mixed_grids, job.reader_accuracy, job.root
    model = DISEASES[disease]
    matrix = SIZES[size]
    rng = np.random.default_rng([seed, i])
    case_id = f"{model.PREFIX}_{i:04d}"
    preset = PRESETS[job.randomise] if job.randomise else None
    phantom, facts = model.build(rng, label, varied=preset) if preset else model.build(rng, label)
    phantom.offset = rng.uniform(-20, 20, 3)
    fov = facts.pop("fov_mm", model.FOV_MM)
    aim = phantom.offset + np.asarray(facts.pop("fov_centre_mm", (0.0, 0.0, 0.0)))  # the field of view's centre
    low, high = model.SLICE_MM[size]
    style = None
    if preset is None:
        thickness, orientation = rng.uniform(low, high), str(rng.choice(_ORIENTATIONS))
        grid = acquisition_grid(rng, aim, fov, matrix, thickness, orientation)
        grids = {sequences[0]: grid}
        for sequence in sequences[1:]:
            grids[sequence] = (
                grid
                if not mixed_grids
                else acquisition_grid(
                    rng,
                    aim,
                    fov,
                    int(matrix * rng.uniform(0.8, 1.0)),
                    rng.uniform(low, high) * 1.1,
                    str(rng.choice(_ORIENTATIONS)),
                )
            )
    else:
        style = draw_style(rng, preset, brain=model.BRAIN, glioma=disease == "glioma")
        grids = _randomised_grids(rng, preset, style, phantom, aim, fov, matrix, sequences, mixed_grids)
        grid = grids[sequences[0]]
    images, labels = render(phantom, grid, [s for s in sequences if grids[s] is grid], rng, style=style)
    for sequence in sequences:
        if grids[sequence] is not grid:
            images[sequence] = render(phantom, grids[sequence], [sequence], rng, style=style)[0][sequence]
    folder = root / case_id
    row = {"case_id": case_id, "patient_id": case_id}
    for sequence in sequences:
        _save(images[sequence], grids[sequence].affine, folder / f"{case_id}_{sequence}.nii.gz")
        row[sequence] = f"{case_id}/{case_id}_{sequence}.nii.gz"
    _save(labels, grid.affine, folder / f"{case_id}_seg.nii.gz")
    row["label"] = f"{case_id}/{case_id}_seg.nii.gz"
    row["class"] = label
    if disease == "cpa":
        other = next(c for c in model.CLASSES if c != label)
        for role in ("radiology", "radiotherapy"):
            row[role] = label if rng.random() < reader_accuracy else other
    record = {"case_id": case_id, "class": label, "grids": {s: g.describe() for s, g in grids.items()}, **facts}
    if style is not None:
        record["style"] = style.describe()
    return row, record


def _randomised_grids(
    rng: np.random.Generator,
    preset: Randomisation,
    style: CaseStyle,
    phantom: Phantom,
    aim: np.ndarray,
    fov: tuple[float, float, float],
    matrix: int,
    sequences: list[str],
    mixed_grids: bool,
) -> dict:
    """Each sequence's acquisition grid for a randomised case (see :mod:`mednet.synthetic.randomise`).

    The BraTS look puts every sequence on one atlas-like grid (1 mm at the ``full`` size,
    coarser for smaller sizes); otherwise each acquisition draws its plane, slice
    thickness, matrix, field of view and position, and each sequence after the first has
    its own grid with probability ``preset.own_grids`` (always with ``mixed_grids``). Every
    field of view is centred near ``aim`` (world mm).
    """
    if style.brats:
        atlas = atlas_grid(phantom.offset, 240.0 / matrix)
        return dict.fromkeys(sequences, atlas)

    def draw():
        plane = str(rng.choice(list(preset.planes), p=list(preset.planes.values())))
        view = np.asarray(fov) * rng.uniform(*preset.fov_scale, 3)
        centre = aim + rng.uniform(-preset.fov_shift_mm, preset.fov_shift_mm, 3)
        pixel = fov[0] / matrix / rng.uniform(*preset.matrix_scale)
        in_plane = int(np.rint(view[PLANE_AXES[plane][0]] / pixel))
        thickness = rng.uniform(*preset.slice_mm)
        return acquisition_grid(rng, centre, tuple(view), max(in_plane, 8), thickness,
                                str(rng.choice(_ORIENTATIONS)), plane=plane)  # fmt: skip

    first = draw()
    return {s: first if k == 0 or not (mixed_grids or rng.random() < preset.own_grids) else draw()
            for k, s in enumerate(sequences)}  # fmt: skip


def generate_cohort(
    disease: str,
    n_cases: int,
    out: os.PathLike | str,
    *,
    size: str = "small",
    seed: int = 0,
    balance: dict[str, float] | None = None,
    mixed_grids: bool = False,
    optional: tuple[str, ...] = (),
    reader_accuracy: float = 0.85,
    workers: int = 1,
    randomise: str | None = None,
) -> Cohort:
    """Generate ``n_cases`` phantoms of ``disease`` into ``out``.

    Resumable: each finished case is recorded in ``out/.progress``; a run that was stopped
    (killed, the machine restarted) and is started again with the same settings keeps
    those cases (their files are the ones it would render) and renders the rest. The
    folder goes when ``cohort.json``, written last, marks the cohort complete.

    Args:
        disease: ``"glioma"``, ``"cpa"`` or ``"neuroblastoma"``.
        n_cases: number of cases (one scan per patient).
        out: output folder (created).
        size: ``"small"`` (48 in plane, for tests), ``"demo"`` (128) or ``"full"`` (240).
        seed: random seed; the same seed gives byte-identical files.
        balance: class -> weight; default the papers' proportions.
        mixed_grids: put every sequence after the first on its own grid (matrix,
            orientation, position), as real protocols do.
        optional: optional sequences to add (``("dwi",)`` for neuroblastoma).
        reader_accuracy: CPA only: probability that each simulated clinician reads right.
        workers: processes rendering cases in parallel; the files do not depend on it.
        randomise: a preset of :data:`mednet.synthetic.randomise.PRESETS` (``"full"``,
            ``"moderate"``, ``"plausible"``): every case draws its look and its lesion's kind; None
            renders every case with mednet's contrast table.

    Returns:
        The :class:`Cohort`.

    Raises:
        ValueError: unknown disease, size, class, optional sequence or randomisation preset.
    """
    from monai.utils import look_up_option

    model = DISEASES[look_up_option(disease, list(DISEASES))]
    look_up_option(size, list(SIZES))
    unknown = set(optional) - set(getattr(model, "OPTIONAL_SEQUENCES", ()))
    if unknown:
        raise ValueError(
            f"optional sequences for {disease}: expected some of "
            f"{', '.join(getattr(model, 'OPTIONAL_SEQUENCES', ())) or 'none'}, found {', '.join(sorted(unknown))}"
        )
    balance = _balance(disease, balance)
    known = (*model.CLASSES, *getattr(model, "OTHER_CLASSES", ()))
    if set(balance) - set(known) or not any(balance.values()):
        raise ValueError(f"balance for {disease}: expected weights for {', '.join(known)}, found {balance}")
    if randomise is not None:
        look_up_option(randomise, list(PRESETS))
    if not 0.0 <= reader_accuracy <= 1.0:
        raise ValueError(f"reader_accuracy: expected a probability in [0, 1], found {reader_accuracy}")
    sequences = list(model.SEQUENCES) + list(optional)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    (root / "cohort.json").unlink(missing_ok=True)  # written last: until then, not a complete cohort
    classes = _class_list(np.random.default_rng([seed, 2**20]), balance, n_cases)
    made_how = {"generator": "mednet.synthetic", "mednet_version": __version__,
                **cohort_settings(disease, n_cases, size=size, seed=seed, balance=balance, mixed_grids=mixed_grids,
                                  optional=optional, reader_accuracy=reader_accuracy, randomise=randomise)}  # fmt: skip
    settings = json.dumps(made_how, sort_keys=True)  # an interrupted run with these settings: its cases are kept

    job = dict(seed=seed, size=size, sequences=tuple(sequences), mixed_grids=mixed_grids,
               reader_accuracy=reader_accuracy, root=root, randomise=randomise, settings=settings)  # fmt: skip
    jobs = [_CaseJob(disease, i, label, **job) for i, label in enumerate(classes)]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers, initializer=_single_threaded) as pool:
            made = list(pool.map(_make_case, jobs))
    else:
        made = [_make_case(job) for job in jobs]
    rows = [row for row, _ in made]
    records = [record for _, record in made]

    manifest = root / "manifest.csv"
    with atomic_path(manifest) as tmp, open(tmp, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    label_table = [{"value": 0, "name": "background", "colour": "#000000"}] + [
        {"value": v, "name": n, "colour": c} for v, n, c in model.LABELS
    ]
    labels_path = root / "labels.json"
    write_json_atomic(labels_path, label_table, indent=2)
    write_json_atomic(root / "cases.json", records, indent=2)
    datalist = build_datalist(read_manifest(manifest), seed=seed)
    datalist["created"] = None  # keep the cohort byte-identical for a given seed
    datalist["source"] = {"kind": "manifest", "path": "manifest.csv"}
    path = save_datalist(datalist, root / "datalist.json")
    write_json_atomic(root / "cohort.json", made_how, indent=2)  # last: a cohort.json means a complete cohort
    shutil.rmtree(_progress(root), ignore_errors=True)
    return Cohort(root=root, manifest=manifest, datalist=path, labels=labels_path, cases=records)


def _balance(disease: str, balance: dict[str, float] | None) -> dict[str, float]:
    return dict(balance or DISEASES[disease].DEFAULT_BALANCE)


def cohort_settings(disease: str, n_cases: int, **options) -> dict:
    """What makes a cohort what it is, as ``cohort.json`` records it (JSON types).

    ``options``: :func:`generate_cohort`'s keyword arguments, its defaults for the others
    (``workers`` changes nothing and is left out). ``randomisation`` is the preset's every
    setting, not only its name: a preset changed by a release (e.g. ``abdomen`` turned on in
    ``moderate``) makes another cohort.

    Raises:
        ValueError: an unknown disease or preset.
        TypeError: an option :func:`generate_cohort` does not take.
    """
    from monai.utils import look_up_option

    bound = inspect.signature(generate_cohort).bind(disease, n_cases, "", **options)
    bound.apply_defaults()
    chosen = {k: v for k, v in bound.arguments.items() if k not in ("disease", "n_cases", "out", "workers")}
    disease = look_up_option(disease, list(DISEASES))
    randomise = chosen.pop("randomise")
    preset = dataclasses.asdict(PRESETS[look_up_option(randomise, list(PRESETS))]) if randomise is not None else None
    settings = {"disease": disease, "cases": n_cases, **chosen, "balance": _balance(disease, chosen["balance"]),
                "optional": list(chosen["optional"]), "randomise": randomise, "randomisation": preset}  # fmt: skip
    return json.loads(json.dumps(settings))


def reuse_or_generate_cohort(disease: str, n_cases: int, out: os.PathLike | str, **options) -> Path:
    """The cohort in ``out`` if the same one (:func:`cohort_settings`) is complete there, else a new one; its datalist.

    ``options``: as :func:`generate_cohort`'s. A cohort made with other settings, or by a
    run that did not finish (``cohort.json`` is removed first and written last), is
    generated again.
    """
    root = Path(out)
    if (root / "datalist.json").is_file() and not cohort_differences(root, disease, n_cases, **options):
        return root / "datalist.json"
    return generate_cohort(disease, n_cases, root, **options).datalist


def cohort_differences(folder: os.PathLike | str, disease: str, n_cases: int, **options) -> list[str]:
    """What the complete cohort in ``folder`` was drawn with otherwise (:func:`cohort_settings`' keys); [] if the same.

    Every key where ``folder`` holds no complete cohort (no ``cohort.json``: it is written last).
    """
    settings = cohort_settings(disease, n_cases, **options)
    made = Path(folder) / "cohort.json"
    recorded = json.loads(made.read_text()) if made.is_file() else {}
    return sorted(k for k, v in settings.items() if recorded.get(k) != v)
