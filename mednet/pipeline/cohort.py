"""A cohort through the pipeline: every case, a summary, an HTML report, metrics when possible.

``mednet predict`` calls :func:`predict_cohort`. Cases come from a folder (found by
their file names, as ``mednet datalist`` finds them) or a datalist JSON (its
``testing`` partition by default). Complete cases (``OUT/<case>/<case>.json`` exists) are
skipped, so an interrupted run resumes where it stopped; a case that fails is written to
``summary.csv`` with its error and the others go on. What the bundles print goes to
``OUT/predict.log``; the console gets one line per case.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from mednet.bundles import console_to
from mednet.fusion import read_clinician_csv
from mednet.io.atomic import atomic_path
from mednet.pipeline.case import Predictors, case_record_path, predict_case
from mednet.pipeline.diseases import disease_spec
from mednet.report.html import write_report

__all__ = ["load_cases", "predict_cohort", "summary_row"]

#: Partitions a datalist input can take its cases from.
PARTITIONS = ("training", "validation", "testing", "all")


def load_cases(source: os.PathLike | str, partition: str = "testing") -> list[dict]:
    """The cases of a folder or a datalist, with absolute paths.

    A case lacking a sequence is kept: it is predicted with the sequences it has (and
    recorded as failed, with the reason, when it has none the disease reads).

    Args:
        source: a folder of images (one case per ``<case>_<sequence>`` name or folder; every
            format :mod:`mednet.io` reads) or a datalist JSON.
        partition: for a datalist: which partition, or ``"all"``.

    Raises:
        FileNotFoundError: no such folder or file.
        ValueError: no case found, or an unknown partition.
    """
    from mednet.io import discover_cases, load_datalist

    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such folder or datalist")
    if source.is_dir():
        found = discover_cases(source)
        cases = [dict(c) for c in found.cases]
        skipped = [f"{s['path']}: {s['reason']}" for s in found.skipped]
    else:
        if partition not in PARTITIONS:
            raise ValueError(f"partition: expected one of {', '.join(PARTITIONS)}, found {partition!r}")
        datalist = load_datalist(source)
        names = ("training", "validation", "testing") if partition == "all" else (partition,)
        cases = [dict(c) for name in names for c in datalist.get(name, [])]
        skipped = []
    if not cases:
        detail = f"; skipped: {'; '.join(skipped[:5])}" if skipped else ""
        raise ValueError(f"{source}: no case found{detail}")
    for case in cases:
        case.setdefault("patient_id", case["case_id"])
    return cases


def summary_row(record: Mapping | None, case_id: str, sequences, error: str = "") -> dict:
    """One ``summary.csv`` row: a complete case's diagnosis, or a failed case's error.

    ``fused_probability`` and each ``p_<sequence>`` are the probabilities that the fusion
    and each sequence's classifier give to the case's diagnosis (``fused_class``), so that
    a row reads the same way whatever the class.
    """
    if record is None:
        return {"case_id": case_id, "status": "failed", "error": error}
    fused, diagnosis = record.get("fused") or {}, record.get("fused_class")
    lesions = record.get("lesions") or []
    row = {
        "case_id": case_id,
        "patient_id": record.get("patient_id", ""),
        "status": "ok",
        "error": "",
        "call": record.get("call") or "",
        "fused_class": diagnosis or "",
        "fused_probability": fused.get(diagnosis, "") if diagnosis else "",
        "why_indeterminate": "; ".join((record.get("fusion") or {}).get("reasons") or []),
        "fusion": (record.get("fusion") or {}).get("method", ""),
        "true_class": record.get("true_class") or "",
        "lesions": len(lesions),
        "lesion_volume_ml": round(sum(float(lesion.get("volume_ml", 0.0)) for lesion in lesions), 3),
        "flags": "; ".join(record.get("flags") or []),
        "note": record.get("note", ""),
        "overview": f"{case_id}/{case_id}_overview.png",
    }
    for s in sequences:  # every probability in a row is the one given to the row's diagnosis
        row[f"p_{s}"] = (record.get("sequences") or {}).get(s, {}).get(diagnosis, "") if diagnosis else ""
    return row


def predict_cohort(
    source: os.PathLike | str,
    disease: str,
    out: os.PathLike | str,
    *,
    device: str = "auto",
    bundles: os.PathLike | str | None = None,
    models: Mapping[str, os.PathLike | str] | None = None,
    clinicians: os.PathLike | str | None = None,
    partition: str = "testing",
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Run the pipeline on every case; write ``summary.csv``, ``report.html`` (and ``metrics.json``).

    Args:
        source: a folder or a datalist JSON (see :func:`load_cases`).
        disease: ``glioma``, ``cpa`` or ``neuroblastoma``.
        out: the output folder.
        device: ``auto`` (the GPU when there is one), ``cpu`` or ``cuda``; checked before any case.
        bundles: folder of the bundles (default: mednet's own, with their ``models/model.pt``).
        models: bundle name -> checkpoint, instead of the bundle's own ``models/model.pt``.
        clinicians: a CSV of clinicians' readings (``case_id``, role, reading).
        partition: for a datalist: the partition to predict.
        overwrite: redo complete cases too.
        progress: called with one line per case (default: a progress line on stderr).

    Returns:
        ``{"cases", "ok", "failed", "skipped", "summary", "report", "metrics", "log", "interrupted"}``;
        ``interrupted`` says how far a run stopped by Ctrl-C or SIGTERM got (None when it ran
        to the end): the cases done are in the summary and the report, and the same command
        again finishes the rest.

    Raises:
        FileNotFoundError: a bundle without trained weights (with how to train it).
        ValueError: an output path that is a file or a folder that cannot be written (before any work).
    """
    out = _output_folder(out)  # refused before any work: a file, or a folder that cannot be written
    spec = disease_spec(disease, bundles)
    predictors = Predictors.build(spec, device, models)  # device, weights and configs checked before any case
    cases = load_cases(source, partition)
    readings = read_clinician_csv(clinicians) if clinicians else {}
    console = sys.stderr  # the progress lines stay on the console while the libraries' output goes to the log
    say = progress or (lambda line: print(line, file=console, flush=True))
    log = out / "predict.log"  # warnings and log lines of the libraries
    rows, skipped, failed, interrupted = [], 0, 0, None
    with console_to(log), _terminate_as_interrupt():
        try:
            for i, case in enumerate(cases, start=1):
                case_id = str(case["case_id"])
                record_path = case_record_path(out, case_id)
                record = json.loads(record_path.read_text()) if record_path.is_file() and not overwrite else None
                if record is not None and record.get("weights") == predictors.weights:
                    skipped += 1
                    say(f"[{i}/{len(cases)}] {case_id}: complete, skipped")
                else:
                    if record is not None:
                        say(f"[{i}/{len(cases)}] {case_id}: made with other weights: predicted again")
                    try:
                        record = predict_case(case, predictors, out, readings=readings)
                        say(f"[{i}/{len(cases)}] {case_id}: {record['call'] or record['note']}")
                    except Exception as error:  # one bad case must not stop the cohort
                        failed += 1
                        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                        rows.append(summary_row(None, case_id, [], message))
                        say(f"[{i}/{len(cases)}] {case_id}: FAILED: {message}")
                        continue
                rows.append(summary_row(record, case_id, spec.branches))
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the cases done are summarised and reported
            interrupted = f"interrupted after {len(rows)} of {len(cases)} cases; run the same command again to finish"
            say(f"mednet predict: {interrupted}")
    summary = _write_summary(out / "summary.csv", rows, spec.branches)
    metrics, metrics_note = None, ""
    done = [r["case_id"] for r in rows if r["status"] == "ok"]
    if not interrupted and done:
        from mednet.pipeline.evaluate import evaluate_predictions

        with console_to(log):  # MONAI's metrics warn about their own deprecations
            try:
                metrics = evaluate_predictions(out, spec, case_ids=done)
            except ValueError as error:  # no truth to score against, or none usable: the report still comes
                metrics_note = f"No metrics: {error}"
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    bundles_used = ", ".join(f"{k} {v}" for k, v in spec.versions.items())
    notes = ["Research use only: mednet is not a medical device and must not be used for clinical decisions.",
             f"Disease {spec.name}; bundles {bundles_used}; device {predictors.device}. "
             f"{len(rows)} cases: {len(rows) - failed} done, {failed} failed."]  # fmt: skip
    notes += [note for note in (interrupted, metrics_note) if note]
    report = write_report(out / "report.html", f"mednet {spec.name}: {stamp}", rows, spec.branches,
                          metrics=metrics, notes=notes)  # fmt: skip
    return {"cases": len(cases), "ok": len(rows) - failed, "failed": failed, "skipped": skipped,
            "summary": summary, "report": report, "metrics": out / "metrics.json" if metrics else None,
            "log": log, "interrupted": interrupted}  # fmt: skip


def _output_folder(out: os.PathLike | str) -> Path:
    """The output folder, made; refused before any work when it is a file or cannot be written.

    Raises:
        ValueError: the path is a file, or the folder cannot be created or written (the message
            names it and says why).
    """
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: the output path is a file, not a folder; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".mednet-write-check-"):
            pass
    except OSError as error:
        raise ValueError(
            f"{out}: cannot write the outputs here ({error.strerror or error}); choose another --out"
        ) from error
    return out


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (a scheduler stopping the job) stops the run as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:  # a handler not installed from Python reads as None: the default is what it was
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _write_summary(path: Path, rows: list[dict], sequences: list[str]) -> Path:
    columns = ["case_id", "patient_id", "status", "error", "call", "fused_class", "fused_probability",
               "why_indeterminate", *[f"p_{s}" for s in sequences], "fusion", "true_class", "lesions",
               "lesion_volume_ml", "flags", "note", "overview"]  # fmt: skip
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path
