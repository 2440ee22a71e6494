"""A cohort through the pipeline: every case, a summary, an HTML report, metrics when possible.

``mednet predict`` calls :func:`predict_cohort`. Cases come from a folder (found by
their file names, as ``mednet datalist`` finds them) or a datalist JSON (its
``testing`` partition by default). Complete cases (``OUT/<case>/<case>.json`` exists) made
with the same weights, bundle versions and settings (:attr:`Predictors.made_by`) are
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
import os
import shutil
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from mednet.bundles import console_to
from mednet.fusion import read_clinician_csv
from mednet.pipeline.case import Predictors, made_by_record, predict_case, read_case, read_case_record
from mednet.pipeline.diseases import disease_spec
from mednet.pipeline.summary import (
    RUN_FILE,
    check_case_ids,
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


def load_cases(
    source: os.PathLike | str,
    partition: str = "testing",
    sequences: Sequence[str] | None = None,
    disease: str = "the disease",
) -> list[dict]:
    """The cases of a folder, a datalist or one image file, with absolute paths.

    A case lacking a sequence is kept: it is predicted with the sequences it has (and
    recorded as failed, with the reason, when it has none the disease reads).

    Args:
        source: a folder of images (one case per ``<case>_<sequence>`` name or folder; every
            format :mod:`mednet.io` reads), a datalist JSON, or one image file: a one-case
            cohort when the disease reads one sequence (``sequences``).
        partition: for a datalist: which partition, or ``"all"``.
        sequences: the sequences the disease reads (for one image file; None: refused).
        disease: the disease's name, for the messages.

    Raises:
        FileNotFoundError: no such folder or file.
        ValueError: no case found, an unknown partition, one image file for a disease that
            reads several sequences (the message says which and how to give them), or case ids
            that cannot each name their own output folder (:func:`check_case_ids`).
    """
    from mednet.io import discover_cases, load_datalist
    from mednet.io.read import is_image_path, looks_like_dicom

    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such folder or datalist")
    if source.is_dir():
        found = discover_cases(source)
        cases = [dict(c) for c in found.cases]
        skipped = [f"{s['path']}: {s['reason']}" for s in found.skipped]
    elif not source.name.lower().endswith(".json") and (is_image_path(source) or looks_like_dicom(source)):
        cases = [_single_image_case(source.absolute(), tuple(sequences or ()), disease)]  # a link keeps its name
        check_case_ids([cases[0]["case_id"]], source)
        return cases
    else:
        if partition not in PARTITIONS:
            raise ValueError(f"partition: expected one of {', '.join(PARTITIONS)}, found {partition!r}")
        datalist = load_datalist(source)
        names = PARTITIONS[:-1] if partition == "all" else (partition,)
        cases = [dict(c) for name in names for c in datalist.get(name, [])]
        if not cases:
            sizes = ", ".join(f"{name} {len(datalist.get(name, []))}" for name in PARTITIONS[:-1])
            raise ValueError(f"{source}: no case in partition {partition!r} (cases per partition: {sizes}); "
                             "choose one with --partition (or all)")  # fmt: skip
        skipped = []
    if not cases:
        detail = f"; skipped: {'; '.join(skipped[:5])}" if skipped else ""
        raise ValueError(f"{source}: no case found{detail}")
    check_case_ids([str(c["case_id"]) for c in cases], source)  # each its own folder in OUT, inside OUT
    for case in cases:
        case.setdefault("patient_id", case["case_id"])
    return cases


def _single_image_case(path: Path, sequences: tuple[str, ...], disease: str) -> dict:
    """One image file as a one-case cohort, when the disease reads one sequence; else refused saying how.

    The case id is the file name's ``<case>`` part (``P1_t2.nii.gz``: ``P1``; ``P1/t2.nii.gz``: ``P1``),
    or its stem.
    """
    from mednet.io.datalist import _parse_name
    from mednet.io.read import IMAGE_SUFFIXES

    lower = path.name.lower()
    suffix = next((x for x in sorted(IMAGE_SUFFIXES, key=len, reverse=True) if lower.endswith(x)), "")
    parsed = _parse_name(path)  # (case, sequence, naming scheme): P1_t2.nii.gz, or t2.nii.gz in a folder P1
    case_id = parsed[0] if parsed else path.name[: len(path.name) - len(suffix)] or path.name
    if len(sequences) == 1:
        if parsed and parsed[1] != sequences[0]:
            example = f"{case_id}_{sequences[0]}{suffix or '.nii.gz'}"
            raise ValueError(f"{path}: the file name says {parsed[1]}, but {disease} reads {sequences[0]}; "
                             f"rename it (e.g. {example}) or give a datalist JSON")  # fmt: skip
        return {"case_id": case_id, "patient_id": case_id, sequences[0]: str(path)}
    example = ", ".join(f"{case_id}_{s}.nii.gz" for s in sequences)
    raise ValueError(
        f"{path}: one image file, but {disease} reads {len(sequences)} sequences ({', '.join(sequences)}); "
        f"give --input a folder with one file per sequence named <case>_<sequence> (e.g. {example}), "
        "or a datalist JSON (`mednet datalist` writes one)"
    )


def predict_cohort(
    source: os.PathLike | str,
    disease: str,
    out: os.PathLike | str,
    *,
    device: str = "auto",
    precision: str = "auto",
    bundles: os.PathLike | str | None = None,
    models: Mapping[str, os.PathLike | str] | None = None,
    settings: Mapping[str, Mapping] | None = None,
    clinicians: os.PathLike | str | None = None,
    partition: str = "testing",
    overwrite: bool = False,
    shard: tuple[int, int] = (1, 1),
    prefetch: bool = True,
    progress: Callable[[str], None] | None = None,
    bar: bool | None = None,
    verbosity: int = 1,
) -> dict:
    """Run the pipeline on every case (or shard K/N's); write ``summary.csv``, ``report.html``, ``metrics.json``.

    Args:
        source: a folder, a datalist JSON or one image file (see :func:`load_cases`).
        disease: ``glioma``, ``cpa`` or ``neuroblastoma``.
        out: the output folder. One used before for the same disease keeps its complete
            cases in the summary (the console says how many); one holding another disease's
            run is refused.
        device: ``auto`` (the GPU when there is one; under ``torchrun``, the rank's own GPU),
            ``cpu``, ``cuda`` or ``cuda:N``; one that is not there is refused before any work.
        precision: the networks' arithmetic: ``auto`` (float16 on a GPU, float32 on the CPU),
            ``float32``, ``bfloat16`` or ``float16`` (:func:`mednet.inference.choose_precision`).
        bundles: folder of the bundles (default: mednet's own, with their ``models/model.pt``).
        models: bundle name -> checkpoint, instead of the bundle's own ``models/model.pt``.
        settings: bundle name -> config overrides the checkpoints need (see :meth:`Predictors.build`).
        clinicians: a CSV of clinicians' readings (``case_id``, role, reading).
        partition: for a datalist: the partition to predict (or ``all``).
        overwrite: redo complete cases too.
        shard: ``(K, N)``: predict only every N-th case from the K-th
            (:func:`mednet.pipeline.summary.shard_cases`); the shards of one cohort may run
            at once, on one machine or many sharing ``out``. The summary lists every case done
            so far, whichever shard did it; the last shard to finish writes the complete one.
        prefetch: overlap the files with the compute: read the next case's images while the
            current case computes, and write a case's files while the next one computes.
        progress: called with each console line (default: printed on stderr).
        bar: a progress bar with the ETA on stderr (tqdm); None: when stderr is a terminal
            and ``progress`` is not given.
        verbosity: 0: only failures; 1: a line per case (only failures and notices beside a
            bar); 2: a line per case with its timings, bar or not.

    Returns:
        ``{"cases", "ok", "failed", "skipped", "pending", "kept", "summary", "report", "metrics",
        "log", "interrupted", "device", "partition", "case_status"}``: ``cases``, ``ok``,
        ``failed`` and ``skipped`` count this run's (shard's) cases, ``pending`` the summary's
        cases no run has done yet, ``kept`` the complete cases of earlier runs in ``out`` that
        the summary keeps; ``interrupted`` says how far a run stopped by Ctrl-C or SIGTERM got
        (None when it ran to the end): the cases done are in the summary and the report, and
        the same command again finishes the rest. ``case_status``: per case of this run,
        ``{"case_id", "status" (ok, skipped, failed or not run), "call", "error", "folder"}``.

    Raises:
        FileNotFoundError: a bundle without trained weights (with how to train it).
        ValueError: a device that is not there, an output path that is a file or a folder that
            cannot be written, one image file for a disease reading several sequences, a bad
            shard, or an output folder of another disease or (for a shard) another cohort;
            all before any work.
    """
    from mednet.inference.device import choose_device, choose_precision

    choose_precision(choose_device(device), precision)  # a GPU asked for and absent: refused now, not case by case
    spec = disease_spec(disease, bundles).with_settings(settings)
    k, n = shard
    if not 1 <= k <= n:
        raise ValueError(f"shard: expected K/N with 1 <= K <= N, found {k}/{n}")
    cohort = load_cases(source, partition, spec.sequences, spec.name)
    out = _output_folder(out)  # refused before any work: a file, or a folder that cannot be written
    ids = [str(c["case_id"]) for c in cohort]
    summary_ids, kept = _plan_output(out, spec.name, source, ids, sharded=n > 1)
    if device == "auto" and n > 1 and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per rank on a node
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"
    with warnings.catch_warnings():  # the libraries' deprecation notices are not the user's business (no log yet)
        warnings.simplefilter("ignore", FutureWarning)
        # weights and configs checked before any case
        predictors = Predictors.build(spec, device, models, settings, precision)
    write_run(out, spec.name, bundles, source, partition, summary_ids)
    cases = shard_cases(cohort, shard)
    readings = read_clinician_csv(clinicians) if clinicians else {}
    console = sys.stderr  # the progress lines stay on the console while the libraries' output goes to the log
    label = f" shard {k}/{n}" if n > 1 else ""
    show_bar = (progress is None and console.isatty()) if bar is None else bar
    write_line = progress or (lambda line: print(line, file=console, flush=True))
    meter = _Meter(write_line, console, show_bar and verbosity > 0)
    say = meter.say
    datalist = not Path(source).is_dir() and Path(source).name.lower().endswith(".json")
    if verbosity > 0:
        where = f"datalist {source}, partition {partition}" if datalist else f"{source}"
        share = f"; shard {k}/{n}: {len(cases)} of them" if n > 1 else ""
        say(f"{spec.name}: {len(cohort)} cases from {where}{share}; device {predictors.device}"
            + (f" ({predictors.precision})" if predictors.precision != "float32" else ""))
        if kept:
            say(f"{out}: keeps {len(kept)} complete case(s) of earlier runs in the summary "
                f"({len(summary_ids)} cases in all)")  # fmt: skip
    log = out / (f"predict.shard-{k}-of-{n}.log" if n > 1 else "predict.log")  # the libraries' warnings and logs
    done, skipped, failed, interrupted = 0, 0, 0, None
    previous = {str(c["case_id"]): _record_of(out, str(c["case_id"]), overwrite) for c in cases}
    made_by = predictors.made_by
    complete = {k for k, record in previous.items() if record is not None and made_by_record(record) == made_by}
    status = {str(c["case_id"]): {"case_id": str(c["case_id"]), "status": "not run", "call": None, "error": None,
                                  "folder": None} for c in cases}  # fmt: skip
    reader = _ReadAhead([c for c in cases if str(c["case_id"]) not in complete], spec, enabled=prefetch)
    meter.start(len(cases) - len(complete))
    if complete and verbosity == 1 and meter.bar is not None:
        say(f"{len(complete)} complete cases skipped (made with the same weights, bundle versions and settings)")
    writer = _WriteBehind(enabled=prefetch)

    def settle(case_id: str, head: str, record: dict | None, error: BaseException | None) -> None:
        """Count and report a case whose files are written (or that failed)."""
        nonlocal done, failed
        if error is not None:
            failed += 1
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            shutil.rmtree(out / ".partial" / case_id, ignore_errors=True)  # nothing half-written stays
            record_failure(out, case_id, message, predictors.weights)
            status[case_id].update(status="failed", error=message)
            say(f"{head}: FAILED: {message}")  # at every verbosity
            meter.advance(f"{case_id} failed")
            return
        outcome = record["call"] or record["note"]
        status[case_id].update(status="ok", call=record["call"], folder=str(out / case_id))
        if verbosity > 1:
            timings = ", ".join(f"{k} {v:.1f}" for k, v in (record.get("timings") or {}).items()
                                if isinstance(v, (int, float)))  # fmt: skip
            say(f"{head}: {outcome} ({timings})")
        elif verbosity == 1 and meter.bar is None:
            say(f"{head}: {outcome}")
        meter.advance(f"{case_id}: {record['call'] or 'no call'}")
        clear_failure(out, case_id)
        done += 1

    with console_to(log), _terminate_as_interrupt(), reader, meter, writer:
        try:
            for i, case in enumerate(cases, start=1):
                case_id = str(case["case_id"])
                head = f"[{i}/{len(cases)}{label}] {case_id}"
                if case_id in complete:
                    writer.settle(settle)
                    skipped += 1
                    status[case_id].update(status="skipped", call=_call_of(previous[case_id]),
                                           folder=str(out / case_id))  # fmt: skip
                    if verbosity > 1 or (verbosity == 1 and meter.bar is None):
                        say(f"{head}: complete, skipped")
                    clear_failure(out, case_id)
                    done += 1
                    continue
                if previous[case_id] is not None and verbosity > 0:
                    say(f"{head}: made with other weights, bundle versions or settings: predicted again")
                try:  # one bad case must not stop the cohort
                    record = predict_case(case, predictors, out, readings=readings, loaded=reader.take(case_id),
                                          defer=writer.for_case(case_id, head))  # fmt: skip
                except Exception as error:
                    writer.settle(settle)
                    settle(case_id, head, None, error)
                    continue
                if not writer.enabled:
                    settle(case_id, head, record, None)
                else:  # the previous case's files, written while this one computed; this one's go on
                    writer.settle(settle, leave=1)
            writer.settle(settle)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the cases done are summarised and reported
            writer.settle(settle, interrupted=True)
            interrupted = (f"interrupted after {done + failed} of {len(cases)} cases{label}; "
                           "run the same command again to finish")  # fmt: skip
    if interrupted:
        say(f"mednet predict: {interrupted}")
    report = report_cohort(out, bundles=bundles, notes=[interrupted or ""], metrics=not interrupted)
    return {"cases": len(cases), "ok": done, "failed": failed, "skipped": skipped, "pending": report["pending"],
            "kept": len(kept), "summary": report["summary"], "report": report["report"],
            "metrics": report["metrics"], "log": log, "interrupted": interrupted, "device": predictors.device,
            "precision": predictors.precision,
            "partition": partition if datalist else None, "case_status": list(status.values())}  # fmt: skip


def _call_of(record: Mapping | None) -> str | None:
    return (record or {}).get("call") or None


class _Meter:
    """The console of a cohort run: lines, and a tqdm progress bar (cases to predict, ETA) when asked.

    Lines go above the bar (``tqdm.write``), so that the bar stays at the bottom.
    """

    def __init__(self, write_line: Callable[[str], None], stream, enabled: bool):
        self.write_line, self.stream, self.enabled, self.bar = write_line, stream, enabled, None

    def start(self, total: int) -> None:
        if self.enabled and total > 0:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, file=self.stream, unit="case", desc="mednet predict", dynamic_ncols=True,
                            mininterval=0.5, smoothing=0.1)  # fmt: skip

    def say(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            self.write_line(line)

    def advance(self, last: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(last, refresh=False)
            self.bar.update(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _record_of(out: Path, case_id: str, overwrite: bool) -> dict | None:
    """A case's record from an earlier run (None when there is none, or with ``overwrite``)."""
    return None if overwrite else read_case_record(out, case_id)


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


class _WriteBehind:
    """Writes a case's files in a thread while the next case computes (one case at a time, in order).

    :func:`predict_case` hands its writing to the function :meth:`for_case` gives; the loop
    :meth:`settle` s the cases written so far once the next case has computed: waits for
    their files and reports each (ok, or failed with the writing's error). Interrupted,
    writing that has not started is cancelled (the case is not done; the same command
    again redoes it) and the one in progress finishes (a case is written whole or not at
    all). Disabled: the writing runs at once inside :func:`predict_case`.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mednet-write") if enabled else None
        self.pending: list[tuple[str, str, Future]] = []

    def for_case(self, case_id: str, head: str) -> Callable[[Callable[[], dict]], None] | None:
        """What :func:`predict_case` gets as ``defer`` for this case (None when disabled)."""
        if not self.enabled:
            return None

        def defer(write: Callable[[], dict]) -> None:
            self.pending.append((case_id, head, self.pool.submit(write)))

        return defer

    def settle(self, report: Callable, interrupted: bool = False, leave: int = 0) -> None:
        """Wait for the pending cases' files, in order; ``report(case_id, head, record, error)`` for each.

        Args:
            report: called for each case settled.
            interrupted: the run was stopped: cancel what has not started.
            leave: how many of the latest cases to leave pending.
        """
        while len(self.pending) > leave:
            case_id, head, future = self.pending[0]
            if interrupted and future.cancel():  # not started: not done
                self.pending.pop(0)
                continue
            try:
                record, error = future.result(), None  # a Ctrl-C here leaves the case pending, for what follows
            except KeyboardInterrupt:
                if not interrupted:
                    raise
                continue  # a second Ctrl-C while the last files are written: they finish first
            except Exception as failure:
                record, error = None, failure
            self.pending.pop(0)
            report(case_id, head, record, error)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _plan_output(out: Path, disease: str, source, case_ids: list[str], sharded: bool) -> tuple[list[str], list[str]]:
    """``(case ids of the summary, earlier cases kept)``; refuses a folder the run cannot share.

    An output folder used before for the same disease keeps its complete cases in the summary
    (those of ``run.json`` in its order, then any other complete case folder of the disease,
    by name), before this run's cohort; earlier cases that are neither this run's nor complete
    (failed or not run) leave the summary. Shards must run the same cohort, or their summary
    would mix.

    Raises:
        ValueError: ``out`` holds a run of another disease, or (a shard) of other cases.
    """
    try:
        previous = read_run(out)
    except FileNotFoundError:
        previous = None
    if previous is not None and previous.get("disease") != disease:
        raise ValueError(f"{out}: holds a {previous.get('disease')} run ({len(previous.get('case_ids') or [])} "
                         f"cases from {previous.get('source')}), and this one is {disease}: one summary cannot "
                         "list both; choose another --out")  # fmt: skip
    if sharded:
        if previous is not None and previous.get("case_ids") != case_ids:
            raise ValueError(f"{out}: holds a run of other cases ({RUN_FILE}: {previous.get('disease')}, "
                             f"{len(previous.get('case_ids') or [])} cases from {previous.get('source')}); "
                             "every shard must run the same cohort: check --input and --partition, "
                             "or choose another --out")  # fmt: skip
        return case_ids, []
    ours = set(case_ids)
    listed = [str(c) for c in (previous or {}).get("case_ids") or []]
    others = sorted(d.name for d in out.iterdir() if d.is_dir() and not d.name.startswith(".")
                    and d.name not in ours and d.name not in listed)  # fmt: skip
    kept = [c for c in dict.fromkeys([*listed, *others]) if c not in ours and _complete(out, c, disease)]
    return [*kept, *case_ids], kept


def _complete(out: Path, case_id: str, disease: str) -> bool:
    """Whether ``OUT/<case>`` holds a complete case of ``disease``."""
    record = read_case_record(out, case_id)
    return record is not None and record["disease"] == disease


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
