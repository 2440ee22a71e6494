"""One case through the pipeline, in memory: read and validate, localise, grade, fuse, write.

:class:`Predictors` holds a disease's two predictors, built once per cohort
(:mod:`mednet.inference`). :func:`predict_case` is one straight line: every input file
read once and validated by :func:`mednet.io.load_case` (NIfTI, NRRD, MetaImage, DICOM
series; all sequences on the reference grid, the first present sequence's), the label
map and lesion table from the localisation predictor, each present sequence graded and
the sequences fused by the grading predictor, then the files written. They are made in
``OUT/.partial/<case>/`` and moved to ``OUT/<case>/`` in one rename when everything is
there: an interrupted or failed case leaves nothing among the results.

Files per case (``OUT/<case>/``): ``<case>_labels.nii.gz`` (organ and lesion map on the
reference input's exact grid) with ``<case>_labels.json`` (its label table),
``<case>_lesions.csv`` / ``.json`` (the lesion table), ``<case>.json`` (every stage's
output), ``<case>_grading_slices.csv`` (each graded slice's probabilities, secondary) and
``<case>_overview.png``.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mednet.checksum import file_sha256
from mednet.fusion import merge_readings
from mednet.inference import GradingPredictor, LocalisationPredictor
from mednet.io.cases import LoadedCase, load_case, present_sequences
from mednet.localisation.outputs import LabelScheme, LocalisationResult, write_localisation
from mednet.localisation.plausibility import plausibility_flags
from mednet.metrics.localisation import map_labels, score_localisation
from mednet.pipeline.diseases import DiseaseSpec
from mednet.report.overview import write_overview
from mednet.report.provenance import input_checksums, run_provenance

__all__ = ["CaseError", "Predictors", "case_record_path", "predict_case", "read_case", "read_case_record"]


class CaseError(RuntimeError):
    """A case the pipeline could not process; the message says why (recorded in ``summary.csv``)."""


@dataclass
class Predictors:
    """A disease's predictors, built once per cohort.

    Attributes:
        spec: the disease.
        localise: the localisation predictor.
        grade: the grading predictor.
        device: where they run (``cpu`` or ``cuda:N``).
    """

    spec: DiseaseSpec
    localise: LocalisationPredictor
    grade: GradingPredictor
    #: bundle name -> the config overrides the predictors were built with (:meth:`build`'s ``settings``)
    settings: dict = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        spec: DiseaseSpec,
        device: str = "auto",
        models: Mapping[str, os.PathLike | str] | None = None,
        settings: Mapping[str, Mapping] | None = None,
        precision: str = "auto",
    ):
        """Both predictors on ``device``.

        Args:
            spec: the disease.
            device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
            models: bundle name -> checkpoint (default each bundle's own ``models/model.pt``).
            settings: bundle name -> config overrides the checkpoint was trained with that
                predicting must repeat (network size, slice count; a ``mednet train`` run's
                ``inference_overrides``).
            precision: the networks' arithmetic (:func:`mednet.inference.choose_precision`).
        """
        models, settings = dict(models or {}), dict(settings or {})
        spec = spec.with_settings(settings)  # a network trained on other sequences reads those
        loc, grade = spec.localisation, spec.grading
        return cls(spec, LocalisationPredictor(loc, device, models.get(loc.name), precision,
                                               **settings.get(loc.name, {})),
                   GradingPredictor(grade, device, models.get(grade.name), precision,
                                    **settings.get(grade.name, {})),
                   json.loads(json.dumps(settings)))  # fmt: skip

    @property
    def device(self) -> str:
        """The device, as text."""
        return str(self.localise.device)

    @property
    def precision(self) -> str:
        """The networks' arithmetic: ``float32``, ``bfloat16`` or ``float16``."""
        return self.localise.precision

    @functools.cached_property
    def weights(self) -> dict[str, str]:
        """Bundle name -> SHA-256 of the weights used.

        Recorded with every case: a resumed run redoes the cases that other weights made.
        """
        return {p.bundle.name: file_sha256(p.weights) for p in (self.localise, self.grade)}

    @property
    def made_by(self) -> dict:
        """What makes a case's outputs besides its images: ``weights``, bundle versions (``bundles``), ``settings``.

        Each is in every case record: a resumed run redoes the cases made otherwise (other
        weights, a bundle version with other post-processing or thresholds, other overrides).
        """
        return {"weights": self.weights, "bundles": self.spec.versions, "settings": self.settings}


def case_record_path(out: os.PathLike | str, case_id: str) -> Path:
    """``OUT/<case>/<case>.json``: present only when the case is complete."""
    return Path(out) / case_id / f"{case_id}.json"


def made_by_record(record: Mapping) -> dict:
    """What made a complete case, from its record, as :attr:`Predictors.made_by` (older records: no ``settings``)."""
    return {"weights": record.get("weights"), "bundles": record.get("bundles"), "settings": record.get("settings", {})}


def read_case_record(out: os.PathLike | str, case_id: str) -> dict | None:
    """A complete case's record, ``OUT/<case>/<case>.json`` (the one reader of that file).

    Returns:
        The record, or None when the case is not complete: no file, a file that is not
        JSON (e.g. cut by a full disk) or not a record (no ``case_id`` and ``disease``).
    """
    try:
        record = json.loads(case_record_path(out, case_id).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("case_id") and record.get("disease") else None


def read_case(case: Mapping, spec: DiseaseSpec) -> tuple[LoadedCase, float]:
    """Read and validate a case's images for ``spec`` (:func:`mednet.io.load_case`), and the seconds it took.

    The first step of :func:`predict_case`; a cohort runs it for the next case while the
    current one computes.

    Raises:
        CaseError: the case has none of the sequences the localisation reads.
        InvalidImageError: an input refused by :mod:`mednet.io` (the message names the file).
    """
    case_id = str(case["case_id"])
    present = present_sequences(case, spec.sequences)
    if not any(s in present for s in spec.localisation.sequences):
        wanted = spec.localisation.sequences
        raise CaseError(f"case {case_id}: missing sequence(s) {', '.join(wanted)}; expected {', '.join(wanted)} "
                        f"(at least one), found {', '.join(present) or 'none'}: {spec.name}'s localisation "
                        "reads these")  # fmt: skip
    start = time.perf_counter()
    loaded = load_case(case, spec.sequences, allow_missing=True)  # and the truth's label map, when the case has one
    return loaded, round(time.perf_counter() - start, 2)


def predict_case(
    case: Mapping,
    predictors: Predictors,
    out: os.PathLike | str,
    *,
    readings: Mapping[str, Mapping[str, str]] | None = None,
    loaded: tuple[LoadedCase, float] | None = None,
    defer: Callable[[Callable[[], dict]], None] | None = None,
) -> dict:
    """Run the pipeline on one case and write its files; return its ``<case>.json`` record.

    Args:
        case: a datalist entry: ``case_id``, ``patient_id``, a path per sequence (any
            non-empty subset of the disease's sequences), optionally ``label`` (the truth,
            recorded for evaluation), ``class`` and ``clinicians`` (reader role -> reading).
        predictors: the disease's predictors.
        out: the cohort's output folder.
        readings: ``case_id -> {role: reading}`` from a clinicians' CSV (overrides the case's own).
        loaded: the case already read by :func:`read_case` (default: read here).
        defer: given the function that writes the case's files (label map, tables,
            overview, record, then the one rename), runs it later, e.g. in a writer thread
            while the next case computes (:func:`mednet.pipeline.predict_cohort`); its
            errors are the case's. Default: the files are written before this returns.

    Returns:
        The record written to ``OUT/<case>/<case>.json`` (with ``defer``: complete once the
        deferred writing has run).

    Raises:
        CaseError: the case has none of the disease's sequences.
        InvalidImageError: an input refused by :mod:`mednet.io` (the message names the file).
    """
    spec = predictors.spec
    case_id = str(case["case_id"])
    present = present_sequences(case, spec.sequences)
    loaded, read_s = loaded or read_case(case, spec)
    out = Path(out)
    partial = out / ".partial" / case_id
    shutil.rmtree(partial, ignore_errors=True)
    timings: dict[str, float] = {"read_s": read_s}

    start = time.perf_counter()
    found = predictors.localise({"case_id": case_id, **loaded.images})
    timings["localise_s"] = round(time.perf_counter() - start, 2)

    grading, note = None, ""
    branches = [s for s in spec.branches if s in loaded.images]
    if not any(int(lesion["label"]) in spec.grading.lesion_values for lesion in found.lesions):
        note = "no lesion found by the localisation stage: nothing to grade"
    elif not branches:
        note = f"no grading sequence ({', '.join(spec.branches)}) in the case: not graded"
    else:
        start = time.perf_counter()
        grading = predictors.grade({s: loaded.images[s] for s in branches}, found.labels, case_id,
                                   merge_readings(case, readings))  # fmt: skip
        timings["grade_and_fuse_s"] = round(time.perf_counter() - start, 2)

    flags = plausibility_flags(found.array, loaded.reference[0].numpy(), found.lesions, spec.localisation.lesion_values)
    scores, truth = None, None
    if loaded.label is not None:  # the truth came with the case: score the map against it, on the input grid
        truth = map_labels(loaded.label[0].numpy().astype(np.int64), *spec.localisation.truth_labels)
        scores = score_localisation(found.array, truth, loaded.grid.spacing, spec.localisation.classes_by_value,
                                    spec.localisation.lesion_classes, spec.localisation.min_reference_mm3)  # fmt: skip

    missing = loaded.missing
    outside = found.outside_field_of_view
    share = f"{outside} voxels ({100 * outside / found.array.size:.1f}%)"
    notes = [note, f"missing sequence(s): {', '.join(missing)}" if missing else "",
             f"{share} of zeros beyond the acquired field of view: filled for the network, background in the map"
             if outside else ""]  # fmt: skip
    checked = time.perf_counter()
    read = {s: case[s] for s in [*present, *(["label"] if case.get("label") else [])]}
    checksums = input_checksums(read)  # what was read, cheaply (ms per file)
    timings["checksum_s"] = round(time.perf_counter() - checked, 3)
    record = {
        "case_id": case_id,
        "patient_id": str(case.get("patient_id", case_id)),
        "disease": spec.name,
        "inputs": {s: str(case[s]) for s in present},
        "inputs_sha256": checksums,
        "reference_sequence": loaded.reference_key,
        "sequences_used": {"localisation": found.sequences_used, "grading": branches if grading else []},
        "missing_sequences": missing,
        "resampling": loaded.resampling,
        "outside_field_of_view_voxels": outside,
        "labels": None,  # file names: set by the writing below
        "labels_dicom_seg": None,  # DICOM input only
        "label_table": [{"value": 0, "name": "background", "colour": "#000000"}, *found.label_table],
        "lesions": found.lesions,
        "sequences": grading.sequences if grading else {},
        "slices": grading.slices if grading else 0,
        "aggregation": grading.aggregation if grading else None,
        "fused": grading.fused if grading else None,
        "fused_class": grading.fused_class if grading else None,
        "call": grading.call if grading else None,
        "fusion": grading.fusion if grading else None,
        "ood_check": predictors.grade.ood_check,
        "clinicians": merge_readings(case, readings),
        "true_class": case.get("class"),
        "reference_label": str(case["label"]) if case.get("label") else None,
        "localisation_metrics": scores,
        "flags": flags,
        "note": "; ".join(filter(None, notes)),
        "bundles": spec.versions,
        "weights": predictors.weights,
        "settings": predictors.settings,
        "device": predictors.device,
        "precision": predictors.precision,
        "timings": timings,
        "provenance": run_provenance(),
    }

    def write() -> dict:
        """Every file of the case into ``OUT/.partial/<case>/``, then one rename to ``OUT/<case>/``; the record."""
        start = time.perf_counter()
        scheme = LabelScheme(found.label_table, spec.localisation.lesion_classes)  # lesions coded as such in a SEG
        files = write_localisation(LocalisationResult(found.array, found.lesions), loaded.reference, partial.parent,
                                   case_id, scheme, overwrite=True)  # fmt: skip
        record["labels"] = files["labels"].name
        record["labels_dicom_seg"] = files["dicom_seg"].name if "dicom_seg" in files else None
        if grading is not None:
            _write_slices(partial / f"{case_id}_grading_slices.csv", case, grading.slice_rows, spec.classes)
        diagnosis = record["fused_class"]
        probability = f" (p {grading.fused[diagnosis]:.2f})" if grading and diagnosis in grading.fused else ""
        if grading and grading.call != diagnosis:
            diagnosis = f"indeterminate, leaning {diagnosis}"
        write_overview(loaded.images, found.labels, record["label_table"],
                       [*spec.grading.lesion_values, *spec.grading.metastasis_values, *spec.localisation.lesion_values],
                       f"{case_id}: {diagnosis or 'no lesion found'}{probability}",
                       partial / f"{case_id}_overview.png", lesions=found.lesions, truth=truth)  # fmt: skip
        timings["write_s"] = round(time.perf_counter() - start, 2)
        (partial / f"{case_id}.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
        final = out / case_id
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        return record

    if defer is None:
        write()
    else:
        defer(write)
    return record


def _write_slices(path: Path, case: Mapping, rows: list[dict], classes) -> None:
    """Each graded slice's probabilities per sequence and class (secondary, slice level)."""
    sequences = [k for k in (rows[0] if rows else {}) if k != "slice_index"]
    ids = [str(case["case_id"]), str(case.get("patient_id", case["case_id"]))]
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["case_id", "patient_id", "slice_index", "true_class",
                         *[f"p_{s}_{c}" for s in sequences for c in classes]])  # fmt: skip
        for row in rows:
            writer.writerow([*ids, row["slice_index"], case.get("class") or "",
                             *[f"{v:.6f}" for s in sequences for v in row[s]]])  # fmt: skip
