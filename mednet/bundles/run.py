"""Run a bundle's configs in-process, as ``python -m monai.bundle run`` does; train a bundle.

:func:`run_bundle` merges the named configs in order, uses the bundle's ``metadata.json``
and ``logging.conf``, and keyword arguments override config entries
(``roi_size=[64, 64, 32]``). :func:`console_to` sends what a run prints to a log file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import numbers
import os
import shutil
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from mednet.bundles.locate import bundle_path
from mednet.io.atomic import write_json_atomic

__all__ = ["console_to", "run_bundle", "train_bundle"]


def run_bundle(name: str, configs: Sequence[str], *, root: os.PathLike | str | None = None, **override) -> None:
    """Run a bundle's configs as ``python -m monai.bundle run`` would.

    Args:
        name: the bundle, e.g. ``"glioma_mri_segmentation"``.
        configs: config names without ``.json``, merged in order (``["inference", "evaluate"]``).
        root: folder holding the bundles (default :data:`BUNDLES_DIR`).
        override: config entries to replace, e.g. ``datalist="/data/datalist.json"``.
    """
    import monai.bundle

    path = bundle_path(name, root)
    files = [str(path / "configs" / f"{c}.json") for c in configs]
    with warnings.catch_warnings():
        # MONAI warns that configs run code; these are mednet's own configs.
        warnings.filterwarnings("ignore", message="parsing config_file", category=UserWarning)
        monai.bundle.run(
            config_file=files,
            meta_file=str(path / "configs" / "metadata.json"),
            logging_file=str(path / "configs" / "logging.conf"),
            **{"bundle_root": str(path), **override},
        )


def _loggers() -> list[logging.Logger]:
    manager = logging.Logger.manager
    return [logging.getLogger(), *(v for v in list(manager.loggerDict.values()) if isinstance(v, logging.Logger))]


@contextlib.contextmanager
def console_to(log: os.PathLike | str) -> Iterator[Path]:
    """Send what bundle runs print (MONAI's log lines, warnings, progress bars) to a file.

    Inside the block ``sys.stdout`` and ``sys.stderr`` are the file (appended to), the
    console handlers that loggers already have (MONAI's own) write to it too, and so
    does the console handler a bundle's ``logging.conf`` makes when a config runs. On the
    way out the handlers made inside are removed and the others given their streams
    back. For commands whose own progress lines should stay readable (``mednet
    predict``, ``mednet demo``): they print outside the block.

    Args:
        log: the log file (its folder is created).

    Yields:
        The log file's path.
    """
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    consoles = {id(s) for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)}
    with log.open("a", encoding="utf-8") as stream:
        swapped = [(h, h.stream) for logger in _loggers() for h in logger.handlers
                   if type(h) is logging.StreamHandler and id(h.stream) in consoles]  # fmt: skip
        try:
            for handler, _ in swapped:
                handler.setStream(stream)
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield log
        finally:
            for handler, original in swapped:
                handler.setStream(original)
            for logger in _loggers():
                for handler in list(logger.handlers):
                    if getattr(handler, "stream", None) is stream:
                        logger.removeHandler(handler)


def interrupted_run(work: os.PathLike | str) -> bool:
    """Whether ``work`` holds a run stopped after an epoch (``models/resume.pt``) for :func:`train_bundle` to resume."""
    return (Path(work) / "models" / "resume.pt").is_file()


def _setting(value: object) -> str:
    """A setting that is not JSON (a progress bar object): its type, which is what decides whether to resume."""
    return type(value).__qualname__


def train_bundle(
    name: str,
    datalist: os.PathLike | str,
    work: os.PathLike | str,
    *,
    epochs: int,
    root: os.PathLike | str | None = None,
    seed: int = 0,
    **override,
) -> float:
    """Train a bundle for a number of epochs, resuming an interrupted run of the same call; the seconds it took.

    The weights go to ``work/models`` (``model.pt``, the best validation epoch's), the logs
    and TensorBoard curves to ``work/train_log``. ``work`` is emptied first, unless it holds
    an interrupted run of the same bundle, datalist and settings (``work/run.json``) with
    its state after an epoch (``work/models/resume.pt``, :class:`mednet.engines.Resume`):
    that run then continues at its next epoch and ends with the weights it would have had
    uninterrupted. The seconds are those of every part of the run. The run's
    length is ``epochs`` (the config's ``max_epochs``), never the wall clock, so the same
    call gives the same weights on a slow or busy machine as on a fast one: on CPU, with
    the same ``seed`` and the same number of torch threads, byte for byte. A wall-clock
    limit remains an opt-in override (``time_budget_s=600``, ``mednet.engines.TimeBudget``),
    at the price of that reproducibility.

    Args:
        name: the bundle.
        datalist: the datalist with ``training`` and ``validation`` partitions.
        work: the run's folder.
        epochs: how many epochs to train (>= 1); the last is validated even when
            ``val_interval`` would skip it.
        root: folder holding the bundles (default :data:`BUNDLES_DIR`).
        seed: the training seed (network initialisation, shuffling, augmentation).
        override: further config entries (``roi_size=[64, 64, 32]``, ``val_interval=2``).

    Raises:
        ValueError: ``epochs`` is not a positive whole number, or ``max_epochs`` is given
            among the overrides (give ``epochs``).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 1:
        raise ValueError(f"epochs: expected a whole number >= 1, found {epochs!r}")
    if "max_epochs" in override:
        raise ValueError(f"max_epochs={override['max_epochs']!r}: give the run's length as epochs= instead")
    work = Path(work)
    settings = {"max_epochs": int(epochs), "seed": seed, **override}
    run = {"bundle": name, "root": str(root or ""), "datalist": str(Path(datalist).resolve()), "settings": settings}
    record = work / "run.json"
    same = record.is_file() and json.loads(record.read_text()) == json.loads(json.dumps(run, default=_setting))
    if not (same and interrupted_run(work)):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        write_json_atomic(record, run, indent=2, default=_setting)
    start = time.perf_counter()
    run_bundle(name, ["train"], root=root, datalist=str(datalist), ckpt_dir=str(work / "models"),
               output_dir=str(work / "train_log"), resume=True, **settings)  # fmt: skip
    timing = work / "models" / "training_time.json"
    return float(json.loads(timing.read_text())["seconds"]) if timing.is_file() else time.perf_counter() - start
