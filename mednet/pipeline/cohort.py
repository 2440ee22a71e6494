"""A cohort through the pipeline: every case, a summary, an HTML report, metrics when possible.

``mednet predict`` calls :func:`predict_cohort`. Cases come from a folder (found by
their file names, as ``mednet datalist`` finds them) or a datalist JSON (its
``testing`` partition by default). Complete cases (``OUT/<case>/<case>.json`` exists) are
skipped, so an interrupted run resumes where it stopped; a case that fails is kept with its
error (``OUT/.failed/``, and a row of ``summary.csv``) and the others go on. What the
bundles print goes to ``OUT/predict.log``; the console gets one line per case.

A cohort can be split into shards (``mednet predict --shard K/N``, or the ranks of a
``torchrun`` launch), run at once by processes or machines sharing ``OUT``; the summary,
report and metrics come from the case folders (:mod:`mednet.pipeline.summary`, also
``mednet report OUT``), so they are the same as one run's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from mednet.bundles import console_to
from mednet.fusion import read_clinician_csv
from mednet.pipeline.case import Predictors, case_record_path, predict_case, read_case
from mednet.pipeline.diseases import disease_spec
from mednet.pipeline.summary import (
    RUN_FILE,
    clear_failure,
    read_run,
    record_failure,
    report_cohort,
    shard_cases,
    write_run,
)

__all__ = ["load_cases", "predict_cohort"]

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
    shard: tuple[int, int] = (1, 1),
    prefetch: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Run the pipeline on every case (or shard K/N's); write ``summary.csv``, ``report.html``, ``metrics.json``.

    Args:
        source: a folder or a datalist JSON (see :func:`load_cases`).
        disease: ``glioma``, ``cpa`` or ``neuroblastoma``.
        out: the output folder.
        device: ``auto`` (the GPU when there is one; under ``torchrun``, the rank's own GPU),
            ``cpu`` or ``cuda``; checked before any case.
        bundles: folder of the bundles (default: mednet's own, with their ``models/model.pt``).
        models: bundle name -> checkpoint, instead of the bundle's own ``models/model.pt``.
        clinicians: a CSV of clinicians' readings (``case_id``, role, reading).
        partition: for a datalist: the partition to predict.
        overwrite: redo complete cases too.
        shard: ``(K, N)``: predict only every N-th case from the K-th
            (:func:`mednet.pipeline.summary.shard_cases`); the shards of one cohort may run
            at once, on one machine or many sharing ``out``. The summary lists every case done
            so far, whichever shard did it; the last shard to finish writes the complete one.
        prefetch: read the next case's images while the current case computes.
        progress: called with one line per case (default: a progress line on stderr).

    Returns:
        ``{"cases", "ok", "failed", "skipped", "pending", "summary", "report", "metrics", "log",
        "interrupted"}``: ``cases``, ``ok``, ``failed`` and ``skipped`` count this run's (shard's)
        cases, ``pending`` the cohort's cases no run has done yet; ``interrupted`` says how far a
        run stopped by Ctrl-C or SIGTERM got (None when it ran to the end): the cases done are
        in the summary and the report, and the same command again finishes the rest.

    Raises:
        FileNotFoundError: a bundle without trained weights (with how to train it).
        ValueError: an output path that is a file or a folder that cannot be written, a bad
            shard, or a shard of another cohort in ``out`` (before any work).
    """
    out = _output_folder(out)  # refused before any work: a file, or a folder that cannot be written
    spec = disease_spec(disease, bundles)
    k, n = shard
    if not 1 <= k <= n:
        raise ValueError(f"shard: expected K/N with 1 <= K <= N, found {k}/{n}")
    if device == "auto" and n > 1 and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per rank on a node
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"
    predictors = Predictors.build(spec, device, models)  # device, weights and configs checked before any case
    cohort = load_cases(source, partition)
    _claim_output(out, spec.name, bundles, source, partition, [str(c["case_id"]) for c in cohort], sharded=n > 1)
    cases = shard_cases(cohort, shard)
    readings = read_clinician_csv(clinicians) if clinicians else {}
    console = sys.stderr  # the progress lines stay on the console while the libraries' output goes to the log
    label = f" shard {k}/{n}" if n > 1 else ""
    say = progress or (lambda line: print(line, file=console, flush=True))
    log = out / (f"predict.shard-{k}-of-{n}.log" if n > 1 else "predict.log")  # the libraries' warnings and logs
    done, skipped, failed, interrupted = 0, 0, 0, None
    previous = {str(c["case_id"]): _record_of(out, str(c["case_id"]), overwrite) for c in cases}
    complete = {
        k for k, record in previous.items() if record is not None and record.get("weights") == predictors.weights
    }
    reader = _ReadAhead([c for c in cases if str(c["case_id"]) not in complete], spec, enabled=prefetch)
    with console_to(log), _terminate_as_interrupt(), reader:
        try:
            for i, case in enumerate(cases, start=1):
                case_id = str(case["case_id"])
                if case_id in complete:
                    skipped += 1
                    say(f"[{i}/{len(cases)}{label}] {case_id}: complete, skipped")
                else:
                    if previous[case_id] is not None:
                        say(f"[{i}/{len(cases)}{label}] {case_id}: made with other weights: predicted again")
                    try:
                        record = predict_case(case, predictors, out, readings=readings, loaded=reader.take(case_id))
                        say(f"[{i}/{len(cases)}{label}] {case_id}: {record['call'] or record['note']}")
                    except Exception as error:  # one bad case must not stop the cohort
                        failed += 1
                        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                        record_failure(out, case_id, message, predictors.weights)
                        say(f"[{i}/{len(cases)}{label}] {case_id}: FAILED: {message}")
                        continue
                clear_failure(out, case_id)
                done += 1
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the cases done are summarised and reported
            interrupted = (f"interrupted after {done + failed} of {len(cases)} cases{label}; "
                           "run the same command again to finish")  # fmt: skip
            say(f"mednet predict: {interrupted}")
    report = report_cohort(out, bundles=bundles, notes=[interrupted or ""], metrics=not interrupted)
    return {"cases": len(cases), "ok": done, "failed": failed, "skipped": skipped, "pending": report["pending"],
            "summary": report["summary"], "report": report["report"], "metrics": report["metrics"], "log": log,
            "interrupted": interrupted}  # fmt: skip


def _record_of(out: Path, case_id: str, overwrite: bool) -> dict | None:
    """A case's record from an earlier run (None when there is none, or with ``overwrite``)."""
    path = case_record_path(out, case_id)
    return json.loads(path.read_text()) if path.is_file() and not overwrite else None


class _ReadAhead:
    """Reads the next case to predict in a thread while the current one computes.

    ``take(case_id)`` returns the case's ``(LoadedCase, seconds)`` (:func:`read_case`), read
    ahead or read now, and starts reading the one after; a read error is raised by ``take``,
    for the case it belongs to. Cases are taken in the order given. Disabled: ``take``
    returns None and :func:`predict_case` reads the case itself.
    """

    def __init__(self, cases: list[Mapping], spec, enabled: bool = True):
        self.cases, self.spec, self.enabled = cases, spec, enabled and len(cases) > 1
        self.position = {str(c["case_id"]): i for i, c in enumerate(cases)}
        self.pending: dict[str, Future] = {}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mednet-read-ahead") if self.enabled else None

    def _submit(self, index: int) -> None:
        if index < len(self.cases):
            case_id = str(self.cases[index]["case_id"])
            if case_id not in self.pending:
                self.pending[case_id] = self.pool.submit(read_case, self.cases[index], self.spec)

    def take(self, case_id: str):
        """The case read (or None when reading ahead is off); raises the case's read error."""
        if not self.enabled:
            return None
        index = self.position[case_id]
        self._submit(index)
        future = self.pending.pop(case_id)
        self._submit(index + 1)  # the next one reads while this one computes
        return future.result()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:  # an interrupted run does not wait for a read nobody will use
            self.pool.shutdown(wait=False, cancel_futures=True)


def _claim_output(out: Path, disease: str, bundles, source, partition: str, case_ids: list[str], sharded: bool):
    """Write ``OUT/run.json`` for this cohort; a shard refuses a folder holding another cohort's run.

    An unsharded run replaces an earlier run's cohort (the summary is then this run's, as
    the case folders of the other stay); shards must agree, or their summary would mix.

    Raises:
        ValueError: a shard, and ``out`` holds a run of another disease or other cases.
    """
    with contextlib.suppress(FileNotFoundError):
        previous = read_run(out)
        if sharded and (previous.get("disease"), previous.get("case_ids")) != (disease, case_ids):
            raise ValueError(f"{out}: holds a run of other cases ({RUN_FILE}: {previous.get('disease')}, "
                             f"{len(previous.get('case_ids') or [])} cases from {previous.get('source')}); "
                             "every shard must run the same cohort: check --input and --partition, "
                             "or choose another --out")  # fmt: skip
    write_run(out, disease, bundles, source, partition, case_ids)


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
