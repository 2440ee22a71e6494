"""One summary, report and metrics from an output folder's case folders, whoever wrote them.

A ``mednet predict`` run (or each shard of one, see :func:`shard_cases`) writes into
``OUT``:

- ``OUT/run.json``: the cohort: disease, bundles folder, source and the case ids in order
  (every shard of a run writes the same);
- ``OUT/<case>/<case>.json``: a complete case's record;
- ``OUT/.failed/<case>.json``: a case that failed, with its error (removed when it
  succeeds later).

:func:`report_cohort` (``mednet report OUT``, and the end of every ``mednet predict``)
reads these and writes ``summary.csv`` (one row per case done or failed, in the cohort's
order), ``report.html`` and, when every case is done, ``metrics.json``. So a cohort run as
N shards, on one machine or many, and reported once, gives exactly the summary of one run.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from mednet.io.atomic import atomic_path, write_json_atomic

__all__ = [
    "RUN_FILE",
    "check_case_ids",
    "clear_failure",
    "parse_shard",
    "read_run",
    "record_failure",
    "report_cohort",
    "shard_cases",
    "summary_row",
    "write_run",
]

#: The cohort of an output folder: disease, bundles, source and case ids in order.
RUN_FILE = "run.json"
#: Where the failed cases' errors are kept.
FAILED_FOLDER = ".failed"
#: Names in ``OUT`` that are mednet's own (besides the dot-folders): no case folder may take them.
RESERVED_NAMES = (RUN_FILE, "summary.csv", "report.html", "metrics.json", "metrics")
_LOG_NAME = re.compile(r"predict(\.shard-\d+-of-\d+)?\.log", re.IGNORECASE)
#: Longest case id, in bytes (UTF-8): its files' names (``<case>_grading_slices.csv``) stay within 255.
MAX_CASE_ID_BYTES = 200


def _unsafe_case_id(case_id: str) -> str | None:
    """Why ``case_id`` cannot name a folder in ``OUT``, or None when it can."""
    if not case_id.strip():
        return "it is empty"
    if any(c in case_id for c in "/\\\0"):
        return "it holds a path separator (/ or \\) or a NUL byte, so its folder would lie elsewhere"
    if case_id.startswith("."):
        return "it starts with a dot (hidden folders, and mednet's own .partial and .failed)"
    if case_id.casefold() in {n.casefold() for n in RESERVED_NAMES} or _LOG_NAME.fullmatch(case_id):
        return f"{case_id} is the name of one of mednet's own files in the output folder"
    if any(ord(c) < 32 for c in case_id):
        return "it holds control characters"
    if len(case_id.encode("utf-8", "surrogatepass")) > MAX_CASE_ID_BYTES:
        return f"it is longer than {MAX_CASE_ID_BYTES} bytes (file names are limited to 255)"
    return None


def check_case_ids(case_ids: Sequence[str], source: object) -> None:
    """Refuse, before any work, case ids that cannot each name their own folder in ``OUT``.

    A case's outputs go to ``OUT/<case id>/``: an id with a path separator or ``..`` would
    put them (and their clean-up) outside ``OUT``; one of mednet's own names would overwrite
    the summary or the report; two cases with one id (also ids that differ only in letter
    case, one folder on macOS and Windows) would overwrite each other's results.

    Raises:
        ValueError: naming ``source``, the ids and why (all of them, up to five of each kind).
    """
    unsafe = [(i, why) for i in case_ids if (why := _unsafe_case_id(str(i)))]
    if unsafe:
        listed = "; ".join(f"{i!r}: {why}" for i, why in unsafe[:5])
        more = f" (and {len(unsafe) - 5} more)" if len(unsafe) > 5 else ""
        raise ValueError(f"{source}: case ids that cannot name an output folder: {listed}{more}; "
                         "rename them (letters, digits, - and _ are safe)")  # fmt: skip
    folded = Counter(str(i).casefold() for i in case_ids)
    repeated = [k for k, n in folded.items() if n > 1]
    if repeated:
        groups = [sorted({str(i) for i in case_ids if str(i).casefold() == k}) for k in repeated[:5]]
        listed = "; ".join(f"{' / '.join(g)} ({folded[k]} cases)" for g, k in zip(groups, repeated, strict=False))
        raise ValueError(f"{source}: case ids used by more than one case (letter case ignored, as some file "
                         f"systems do): {listed}; each case needs its own id (its outputs go to OUT/<case id>/)")


def parse_shard(text: str | None, environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(K, N)``: this process's share of a cohort, 1 <= K <= N.

    Args:
        text: ``"K/N"``; ``"auto"`` for the launcher's numbering (``torchrun``'s ``RANK`` and
            ``WORLD_SIZE``, or a SLURM array's ``SLURM_ARRAY_TASK_ID``, ``_MIN`` and ``_COUNT``);
            None: ``torchrun``'s numbering when ``WORLD_SIZE`` > 1, else ``(1, 1)`` (the whole
            cohort), so that every rank of a ``torchrun`` launch takes its own share.
        environ: the environment (default ``os.environ``).

    Raises:
        ValueError: not ``K/N`` with 1 <= K <= N, or ``auto`` without a launcher's numbering.
    """
    env = os.environ if environ is None else environ
    if text is None:
        return (int(env["RANK"]) + 1, int(env["WORLD_SIZE"])) if int(env.get("WORLD_SIZE", "1") or 1) > 1 else (1, 1)
    text = text.strip().lower()
    if text == "auto":
        if "WORLD_SIZE" in env and "RANK" in env:
            return int(env["RANK"]) + 1, int(env["WORLD_SIZE"])
        if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
            first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
            return int(env["SLURM_ARRAY_TASK_ID"]) - first + 1, int(env["SLURM_ARRAY_TASK_COUNT"])
        raise ValueError("--shard auto: no RANK/WORLD_SIZE (torchrun) nor SLURM_ARRAY_TASK_* in the environment")
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit()) or not 1 <= int(k) <= int(n):
        raise ValueError(f"--shard: expected K/N with 1 <= K <= N (e.g. 2/4), or auto; found {text!r}")
    return int(k), int(n)


def shard_cases(cases: Sequence[Mapping], shard: tuple[int, int]) -> list[Mapping]:
    """Shard ``K/N``'s cases: every N-th case of the cohort from the K-th.

    Interleaved rather than in blocks, so that shards of a cohort sorted by anything (size,
    site) get similar work.
    """
    k, n = shard
    return list(cases[k - 1 :: n])


def write_run(out: Path, disease: str, bundles, source, partition: str, case_ids: Sequence[str]) -> dict:
    """Write ``OUT/run.json``: the cohort an output folder's summary lists, in order."""
    run = {"disease": disease, "bundles": str(Path(bundles).resolve()) if bundles else None,
           "source": str(Path(source).resolve()), "partition": partition,
           "case_ids": list(map(str, case_ids))}  # fmt: skip
    write_json_atomic(out / RUN_FILE, run)
    return run


def read_run(out: os.PathLike | str) -> dict:
    """``OUT/run.json``.

    Raises:
        FileNotFoundError: no ``run.json``: not a ``mednet predict`` output folder.
    """
    path = Path(out) / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{Path(out)}: no {RUN_FILE}; not a `mednet predict` output folder")
    return json.loads(path.read_text())


def _failure_path(out: Path, case_id: str) -> Path:
    return out / FAILED_FOLDER / f"{case_id}.json"


def record_failure(out: Path, case_id: str, error: str, weights: Mapping | None = None) -> None:
    """Keep a failed case's error in ``OUT/.failed/<case>.json``, for the summary."""
    (out / FAILED_FOLDER).mkdir(exist_ok=True)
    write_json_atomic(_failure_path(out, case_id), {"case_id": case_id, "error": error, "weights": dict(weights or {})})


def clear_failure(out: Path, case_id: str) -> None:
    """A case that succeeded: forget an earlier failure."""
    _failure_path(out, case_id).unlink(missing_ok=True)


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


def _case_state(out: Path, case_id: str, disease: str) -> tuple[dict | None, str | None]:
    """``(record, None)`` for a complete case, ``(None, error)`` for a failed one, ``(None, None)`` when pending.

    A failure is cleared when the case succeeds, so one that is there is the latest attempt's,
    even beside an older record.
    """
    failure = _failure_path(out, case_id)
    if failure.is_file():
        return None, str(json.loads(failure.read_text()).get("error") or "failed")
    from mednet.pipeline.case import read_case_record

    record = read_case_record(out, case_id)
    return (record, None) if record is not None and record["disease"] == disease else (None, None)


@contextlib.contextmanager
def _report_lock(out: Path) -> Iterator[None]:
    """Shards finishing together write the summary one after the other (the later one sees all)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; `mednet report OUT` redoes the summary at will
        yield
        return
    with (out / ".report.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def report_cohort(
    out: os.PathLike | str,
    *,
    bundles: os.PathLike | str | None = None,
    notes: Sequence[str] = (),
    metrics: bool = True,
) -> dict:
    """Write ``summary.csv``, ``report.html`` and ``metrics.json`` from ``OUT``'s case folders.

    Rows follow ``run.json``'s case order; a case is done (its record), failed (its error) or
    pending (not predicted yet: no row, counted in the report's notes). Metrics are computed
    when no case is pending and at least one is done.

    Args:
        out: a ``mednet predict`` output folder.
        bundles: the bundles' folder (default: the one ``run.json`` names).
        notes: more lines for the report (e.g. that a run was interrupted).
        metrics: compute metrics when the cohort is complete.

    Returns:
        ``{"cases", "ok", "failed", "pending", "summary", "report", "metrics"}``.

    Raises:
        FileNotFoundError: no ``run.json`` in ``out``.
    """
    from mednet.bundles import console_to
    from mednet.pipeline.case import made_by_record
    from mednet.pipeline.diseases import disease_spec
    from mednet.report.html import write_report

    out = Path(out).resolve()
    run = read_run(out)
    spec = disease_spec(run["disease"], bundles or run.get("bundles"))
    with _report_lock(out):
        rows, records, pending = [], [], []
        for case_id in run["case_ids"]:
            record, error = _case_state(out, case_id, spec.name)
            if record is not None:
                rows.append(summary_row(record, case_id, spec.branches))
                records.append(record)
            elif error is not None:
                rows.append(summary_row(None, case_id, [], error))
            else:
                pending.append(case_id)
        failed = sum(r["status"] == "failed" for r in rows)
        summary = _write_summary(out / "summary.csv", rows, spec.branches)
        scores, metrics_note = None, ""
        if metrics and records and not pending:
            from mednet.pipeline.evaluate import evaluate_records

            with console_to(out / "predict.log"):  # MONAI's metrics warn about their own deprecations
                try:
                    scores = evaluate_records(records, spec, out)
                except ValueError as error:  # no truth to score against, or none usable: the report still comes
                    metrics_note = f"No metrics: {error}"
        elif pending:
            metrics_note = (f"{len(pending)} of {len(run['case_ids'])} cases not predicted yet (first: {pending[0]}); "
                            "metrics come when every case is done")  # fmt: skip
        stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        bundles_used = ", ".join(f"{k} {v}" for k, v in spec.versions.items())
        devices = sorted({str(r.get("device")) + (f" ({r['precision']})" if r.get("precision", "float32") != "float32"
                                                  else "") for r in records if r.get("device")})  # fmt: skip
        made_by = {json.dumps(made_by_record(r), sort_keys=True) for r in records}
        lines = ["Research use only: mednet is not a medical device and must not be used for clinical decisions.",
                 f"Disease {spec.name}; bundles {bundles_used}; device {', '.join(devices) or 'none'}. "
                 f"{len(rows)} cases: {len(rows) - failed} done, {failed} failed."]  # fmt: skip
        if len(made_by) > 1:
            lines.append(f"The cases were made with {len(made_by)} different sets of weights, bundle versions or "
                         "settings (see each case's record); run `mednet predict` again to redo them with the "
                         "bundles' own")  # fmt: skip
        lines += [note for note in (*notes, metrics_note) if note]
        from mednet.report.provenance import cohort_provenance

        images = sorted((out / "metrics").glob("*.png")) if scores else []  # this evaluation's ROC and confusion
        report = write_report(out / "report.html", f"mednet {spec.name}: {stamp}", rows, spec.branches,
                              metrics=scores, notes=lines, records={r["case_id"]: r for r in records},
                              provenance=cohort_provenance((spec.localisation, spec.grading), records),
                              metrics_images=images)  # fmt: skip
    return {"cases": len(run["case_ids"]), "ok": len(rows) - failed, "failed": failed, "pending": len(pending),
            "summary": summary, "report": report, "metrics": out / "metrics.json" if scores else None}  # fmt: skip


def _write_summary(path: Path, rows: list[dict], sequences: list[str]) -> Path:
    columns = ["case_id", "patient_id", "status", "error", "call", "fused_class", "fused_probability",
               "why_indeterminate", *[f"p_{s}" for s in sequences], "fusion", "true_class", "lesions",
               "lesion_volume_ml", "flags", "note", "overview"]  # fmt: skip
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path
