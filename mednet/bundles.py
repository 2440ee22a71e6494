"""Find mednet's MONAI bundles and run their configs in-process.

The bundles live in the repository's ``bundles/`` folder, one folder per bundle
(``configs/``, ``docs/``, ``models/``); an installed mednet carries them as package
data (:data:`BUNDLES_DIR`). :func:`run_bundle` is what
``python -m monai.bundle run`` does, called from Python: the named configs are merged
in order, the bundle's ``metadata.json`` and ``logging.conf`` are used, and keyword
arguments override config entries (``roi_size=[64, 64, 32]``).
"""

from __future__ import annotations

import contextlib
import logging
import numbers
import os
import shutil
import sys
import time
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = [
    "BUNDLES_DIR",
    "bundle_path",
    "bundle_table",
    "console_to",
    "export_bundle",
    "install_weights",
    "list_bundles",
    "run_bundle",
    "train_bundle",
    "write_benchmark_section",
]

#: mednet's bundle folder: the repository's ``bundles/`` in a clone (``mednet/_bundles``
#: links to it), the copy inside the package in an installed wheel. Training and the
#: demo write weights into its bundles' ``models/``, where ``mednet predict`` finds them.
BUNDLES_DIR = (Path(__file__).resolve().parent / "_bundles").resolve()


def list_bundles(root: os.PathLike | str | None = None) -> list[str]:
    """Names of the bundles under ``root`` (default :data:`BUNDLES_DIR`): folders with ``configs/metadata.json``."""
    root = Path(root) if root else BUNDLES_DIR
    return (
        sorted(p.name for p in root.iterdir() if (p / "configs" / "metadata.json").is_file()) if root.is_dir() else []
    )


def bundle_path(name: str, root: os.PathLike | str | None = None) -> Path:
    """The folder of bundle ``name``.

    Raises:
        FileNotFoundError: no such bundle, with the names that exist.
    """
    root = Path(root) if root else BUNDLES_DIR
    path = root / name
    if not (path / "configs" / "metadata.json").is_file():
        raise FileNotFoundError(f"{path}: no bundle {name!r} here; bundles in {root}: {', '.join(list_bundles(root))}")
    return path


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
    """Train a bundle from scratch for a number of epochs; the seconds it took.

    ``work`` is emptied first; the weights go to ``work/models`` (``model.pt``, the best
    validation epoch's), the logs and TensorBoard curves to ``work/train_log``. The run's
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
    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    settings = {"max_epochs": int(epochs), "seed": seed, **override}
    run_bundle(name, ["train"], root=root, datalist=str(datalist), ckpt_dir=str(work / "models"),
               output_dir=str(work / "train_log"), **settings)  # fmt: skip
    return time.perf_counter() - start


def install_weights(models: os.PathLike | str, name: str, root: os.PathLike | str | None = None) -> Path:
    """Copy a training run's ``models/`` files into bundle ``name``'s ``models/``; its ``model.pt``.

    Each file is copied to a temporary name and renamed, so an interrupted copy never
    leaves a truncated ``model.pt`` that would later pass for trained weights.

    Raises:
        FileNotFoundError: ``models`` holds no ``model.pt``.
    """
    models = Path(models)
    if not (models / "model.pt").is_file():
        raise FileNotFoundError(f"{models}: no model.pt to install")
    target = bundle_path(name, root) / "models"
    target.mkdir(exist_ok=True)
    for source in sorted(models.iterdir(), key=lambda p: p.name == "model.pt"):  # model.pt last
        if source.is_file():
            partial = target / f".{source.name}.partial"
            shutil.copyfile(source, partial)
            os.replace(partial, target / source.name)
    return target / "model.pt"


def bundle_table(root: os.PathLike | str | None = None) -> list[dict]:
    """One row per bundle under ``root``: name, version, task, whether weights are present, folder.

    Returns:
        ``[{"name", "version", "title", "weights", "weights_mb", "trained", "path"}]``; ``trained``
        is the weights file's modification time (ISO), or ``""``.
    """
    import datetime
    import json

    rows = []
    for name in list_bundles(root):
        path = bundle_path(name, root)
        meta = json.loads((path / "configs" / "metadata.json").read_text())
        weights = path / "models" / "model.pt"
        present = weights.is_file()
        stamp = (
            datetime.datetime.fromtimestamp(weights.stat().st_mtime).isoformat(timespec="minutes") if present else ""
        )
        rows.append({"name": name, "version": meta.get("version", ""), "title": meta.get("name", ""),
                     "weights": present, "weights_mb": round(weights.stat().st_size / 2**20, 1) if present else 0.0,
                     "trained": stamp, "path": str(path)})  # fmt: skip
    return rows


#: What a bundle archive holds, relative to the bundle folder (``models/`` added by :func:`export_bundle`).
_ARCHIVED = ("configs", "docs", "LICENSE")


def export_bundle(name: str, out: os.PathLike | str, root: os.PathLike | str | None = None) -> Path:
    """Write bundle ``name`` as a self-contained zip archive (MONAI model-zoo layout).

    The archive holds one top folder ``<name>/`` with ``configs/`` (metadata, train,
    inference, evaluate, ...), ``docs/`` (the model card), ``LICENSE`` and ``models/``
    (``model.pt`` and any ``model.ts`` / ``model_branches.json`` / ``stacking.json``), and
    nothing else (no ``eval/`` or prediction outputs). Written to a temporary name and
    renamed.

    Args:
        name: the bundle.
        out: the ``.zip`` to write (an existing file is replaced).
        root: folder holding the bundles (default :data:`BUNDLES_DIR`).

    Returns:
        The archive's path.

    Raises:
        FileNotFoundError: the bundle has no trained weights (with how to train it) or lacks
            one of its required parts.
    """
    path = bundle_path(name, root)
    weights = path / "models" / "model.pt"
    if not weights.is_file():
        raise FileNotFoundError(
            f"{weights}: bundle {name} has no trained weights to export; train it first "
            f"(python -m monai.bundle run --config_file {path}/configs/train.json --bundle_root {path} "
            "--datalist <datalist.json>, or `mednet demo`)"
        )
    missing = [part for part in _ARCHIVED if not (path / part).exists()]
    if missing:
        raise FileNotFoundError(f"{path}: bundle {name} lacks {', '.join(missing)}")
    files = [f for part in _ARCHIVED for f in ([path / part] if (path / part).is_file() else
                                                sorted((path / part).rglob("*")))]  # fmt: skip
    files += sorted(f for f in (path / "models").iterdir() if f.suffix in {".pt", ".ts", ".json"})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            if file.is_file() and not file.name.startswith("."):
                archive.write(file, f"{name}/{file.relative_to(path).as_posix()}")
    os.replace(partial, out)
    return out


def write_benchmark_section(bundle: str, marker: str, text: str, root: os.PathLike | str | None = None) -> Path:
    """Replace the text between ``<!-- benchmark:M -->`` and ``<!-- /benchmark:M -->`` in a model card.

    Args:
        bundle: the bundle's folder name.
        marker: ``M``, e.g. the disease.
        text: the new section (Markdown).
        root: the bundles folder (default :data:`BUNDLES_DIR`).

    Returns:
        The model card's path (``docs/README.md``).

    Raises:
        ValueError: the card lacks the markers.
    """
    readme = bundle_path(bundle, root) / "docs" / "README.md"
    start, end = f"<!-- benchmark:{marker} -->", f"<!-- /benchmark:{marker} -->"
    content = readme.read_text()
    if start not in content or end not in content:
        raise ValueError(f"{readme}: no {start} ... {end} section to replace")
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{text}\n{end}{tail}")
    return readme
