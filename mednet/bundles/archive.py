"""Bundles as files to share: the table of bundles, installing a run's weights, a self-contained archive."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from mednet.bundles.locate import bundle_metadata, bundle_path, list_bundles, weights_record

__all__ = ["bundle_table", "export_bundle", "install_weights"]


def install_weights(models: os.PathLike | str, name: str, root: os.PathLike | str | None = None) -> Path:
    """Copy a training run's ``models/`` files into bundle ``name``'s ``models/``; its ``model.pt``.

    Each file is copied to a temporary name and renamed, so an interrupted copy never
    leaves a truncated ``model.pt`` that would later pass for trained weights.

    Raises:
        FileNotFoundError: ``models`` holds no ``model.pt``.
    """
    from mednet.io.atomic import atomic_path  # not at the top: mednet.io loads MONAI, `mednet bundle list` need not

    models = Path(models)
    if not (models / "model.pt").is_file():
        raise FileNotFoundError(f"{models}: no model.pt to install")
    target = bundle_path(name, root) / "models"
    target.mkdir(exist_ok=True)
    for source in sorted(models.iterdir(), key=lambda p: p.name == "model.pt"):  # model.pt last
        if source.is_file():
            with atomic_path(target / source.name) as tmp:
                shutil.copyfile(source, tmp)
    return target / "model.pt"


def bundle_table(root: os.PathLike | str | None = None) -> list[dict]:
    """One row per bundle under ``root``: name, version, whether weights are present and where they come from.

    Returns:
        ``[{"name", "version", "title", "weights", "weights_mb", "trained", "source", "path"}]``;
        ``trained`` is the weights file's modification time (ISO), or ``""``; ``source`` says
        where the weights come from: mednet's reference weights (``models/reference.json``:
        synthetic data only, with the generator's seed), other weights, or none.
    """
    import datetime

    from mednet.report.provenance import training_source

    rows = []
    for name in list_bundles(root):
        path = bundle_path(name, root)
        meta = bundle_metadata(path)
        weights = path / "models" / "model.pt"
        present = weights.is_file()
        stamp = (
            datetime.datetime.fromtimestamp(weights.stat().st_mtime).isoformat(timespec="minutes") if present else ""
        )
        made = weights_record(path)
        if present and made:
            source = f"reference weights: {training_source(made)}"
        else:
            source = "weights without a training record (not mednet's reference weights)" if present else "none"
        rows.append({"name": name, "version": meta.get("version", ""), "title": meta.get("name", ""),
                     "weights": present, "weights_mb": round(weights.stat().st_size / 2**20, 1) if present else 0.0,
                     "trained": stamp, "source": source, "path": str(path)})  # fmt: skip
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
    from mednet.io.atomic import atomic_path  # not at the top: mednet.io loads MONAI, `mednet bundle list` need not

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
    with atomic_path(out, parents=True) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            if file.is_file() and not file.name.startswith("."):  # no temporary file of a write under way
                archive.write(file, f"{name}/{file.relative_to(path).as_posix()}")
    return Path(out)
