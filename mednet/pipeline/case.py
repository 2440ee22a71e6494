"""One case through the pipeline: localise, grade each sequence, fuse, write.

Each stage is the disease's own bundle, run in-process on a one-case datalist
(:func:`mednet.bundles.run_bundle`), so that ``mednet predict`` writes exactly what the
bundles write. The case's files are made in ``OUT/.partial/<case>/`` and moved to
``OUT/<case>/`` in one rename when everything is there: an interrupted case leaves no
partial files among the results, and a re-run finds it incomplete and does it again.

Files per case (``OUT/<case>/``): ``<case>_labels.nii.gz`` (organ and lesion map on the
reference input's exact grid) with ``<case>_labels.json`` (its label table),
``<case>_lesions.csv`` / ``.json`` (the lesion table), ``<case>.json`` (every stage's
output), ``<case>_grading_slices.csv`` (each graded slice's probabilities, secondary) and
``<case>_overview.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import torch

from mednet.bundles import run_bundle
from mednet.fusion import merge_readings
from mednet.pipeline.diseases import DiseaseSpec
from mednet.report.overview import write_overview

__all__ = ["CaseError", "case_record_path", "predict_case"]


class CaseError(RuntimeError):
    """A case the pipeline could not process; the message says why (recorded in ``summary.csv``)."""


def case_record_path(out: os.PathLike | str, case_id: str) -> Path:
    """``OUT/<case>/<case>.json``: present only when the case is complete."""
    return Path(out) / case_id / f"{case_id}.json"


def _one_case_datalist(case: Mapping, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"testing": [dict(case)]}, indent=2) + "\n")
    return path


def _device_overrides(device: str) -> dict:
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'cpu' or 'cuda', found {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but PyTorch finds no CUDA GPU; use --device cpu")
    return {"device": torch.device(device), "amp": device == "cuda"}


def predict_case(
    case: Mapping,
    spec: DiseaseSpec,
    out: os.PathLike | str,
    *,
    device: str = "cpu",
    readings: Mapping[str, Mapping[str, str]] | None = None,
) -> dict:
    """Run the pipeline on one case and write its files; return its ``<case>.json`` record.

    Args:
        case: a datalist entry: ``case_id``, ``patient_id``, an absolute path per sequence,
            optionally ``clinicians`` (reader role -> reading).
        spec: the disease's bundles and sequences.
        out: the cohort's output folder.
        device: ``"cpu"`` or ``"cuda"``.
        readings: ``case_id -> {role: reading}`` from a clinicians' CSV (overrides the case's own).

    Returns:
        The record written to ``OUT/<case>/<case>.json``.

    Raises:
        CaseError: a required sequence is missing or its file is not there (the message names it),
            or a stage failed.
    """
    case_id = str(case["case_id"])
    missing = [s for s in spec.required if not case.get(s)]
    if missing:
        raise CaseError(f"case {case_id}: missing required sequence(s) {', '.join(missing)} "
                        f"({spec.name} needs {', '.join(spec.required)})")  # fmt: skip
    absent = [f"{s} ({case[s]})" for s in spec.required if not Path(case[s]).exists()]
    if absent:
        raise CaseError(f"case {case_id}: file not found for {', '.join(absent)}")
    out = Path(out).resolve()  # the one-case datalists below hold absolute paths
    partial = out / ".partial" / case_id
    shutil.rmtree(partial, ignore_errors=True)
    work = partial / "_work"
    overrides = _device_overrides(device)
    timings: dict[str, float] = {}
    case_readings = merge_readings(case, readings)

    start = time.perf_counter()
    run_bundle(spec.localisation.name, ["inference"], root=spec.localisation.parent,
               datalist=str(_one_case_datalist(case, work / "localise.json")), partition="testing",
               output_dir=str(work / "localise"), ckpt_path=str(spec.weights(spec.localisation)), overwrite=True,
               **overrides)  # fmt: skip
    for file in (work / "localise" / case_id).iterdir():
        os.replace(file, partial / file.name)
    timings["localise_s"] = round(time.perf_counter() - start, 2)
    label_path = partial / f"{case_id}_labels.nii.gz"
    lesions = json.loads((partial / f"{case_id}_lesions.json").read_text())["lesions"]
    label_table = json.loads((partial / f"{case_id}_labels.json").read_text())["labels"]

    grading, note = None, ""
    if not any(int(lesion["label"]) in spec.lesion_values for lesion in lesions):
        note = "no lesion found by the localisation stage: nothing to grade"
    else:
        start = time.perf_counter()
        graded = {**case, spec.roi_key: str(label_path), "clinicians": case_readings}
        run_bundle(spec.grading.name, ["inference"], root=spec.grading.parent,
                   datalist=str(_one_case_datalist(graded, work / "grade.json")), partition="testing",
                   output_dir=str(work / "grade"), ckpt_path=str(spec.weights(spec.grading)), overwrite=True,
                   **overrides)  # fmt: skip
        grading = json.loads((work / "grade" / "grading.json").read_text())["cases"][0]
        os.replace(work / "grade" / "grading_slices.csv", partial / f"{case_id}_grading_slices.csv")
        timings["grade_and_fuse_s"] = round(time.perf_counter() - start, 2)

    diagnosis = grading["fused_class"] if grading else None
    record = {
        "case_id": case_id,
        "patient_id": str(case.get("patient_id", case_id)),
        "disease": spec.name,
        "inputs": {s: str(case[s]) for s in spec.required},
        "reference_sequence": spec.required[0],
        "labels": label_path.name,
        "label_table": label_table,
        "lesions": lesions,
        "sequences": grading["branches"] if grading else {},
        "slices": grading["slices"] if grading else 0,
        "aggregation": grading["aggregation"] if grading else None,
        "fused": grading["fused"] if grading else None,
        "fused_class": diagnosis,
        "fusion": grading["fusion"] if grading else None,
        "clinicians": case_readings,
        "true_class": case.get("class"),
        "reference_label": str(case["label"]) if case.get("label") else None,
        "note": note,
        "bundles": spec.versions,
        "device": device,
        "timings": timings,
    }
    start = time.perf_counter()
    probability = f" (p {grading['fused'][diagnosis]:.2f})" if grading else ""
    outlined = [*spec.lesion_values, *spec.metastasis_values]
    write_overview({s: case[s] for s in spec.required}, label_path, label_table, outlined,
                   f"{case_id}: {diagnosis or 'no lesion found'}{probability}",
                   partial / f"{case_id}_overview.png")  # fmt: skip
    timings["overview_s"] = round(time.perf_counter() - start, 2)
    shutil.rmtree(work)
    (partial / f"{case_id}.json").write_text(json.dumps(record, indent=2) + "\n")
    final = out / case_id
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)
    return record
