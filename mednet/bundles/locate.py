"""Where mednet's MONAI bundles are: the repository's ``bundles/`` in a clone, package data when installed."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["BUNDLES_DIR", "bundle_metadata", "bundle_path", "list_bundles", "weights_record"]

#: mednet's bundle folder: the repository's ``bundles/`` in a clone (``mednet/_bundles``
#: links to it), the copy inside the package in an installed wheel. Training and the
#: demo write weights into its bundles' ``models/``, where ``mednet predict`` finds them.
BUNDLES_DIR = (Path(__file__).resolve().parent.parent / "_bundles").resolve()


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


def bundle_metadata(path: os.PathLike | str) -> dict:
    """A bundle folder's ``configs/metadata.json`` (version, name, changelog, ...): its one reader.

    Light on purpose (no MONAI, no PyTorch), so that ``mednet bundle list`` stays quick;
    :class:`mednet.bundles.BundleSpec` reads the rest of the bundle.

    Raises:
        FileNotFoundError: not a bundle folder.
        ValueError: the file is not a JSON object.
    """
    meta_file = Path(path) / "configs" / "metadata.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{Path(path)}: not a bundle (no configs/metadata.json)")
    meta = json.loads(meta_file.read_text())
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_file}: expected a JSON object, found {type(meta).__name__}")
    return meta


def weights_record(path: os.PathLike | str) -> dict:
    """How a bundle's weights were trained (``models/reference.json`` of mednet's reference weights), else ``{}``."""
    record = Path(path) / "models" / "reference.json"
    return json.loads(record.read_text()) if record.is_file() else {}
