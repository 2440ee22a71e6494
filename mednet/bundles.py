"""Find mednet's MONAI bundles and run their configs in-process.

The bundles live in the repository's ``bundles/`` folder, one folder per bundle
(``configs/``, ``docs/``, ``models/``). :func:`run_bundle` is what
``python -m monai.bundle run`` does, called from Python: the named configs are merged
in order, the bundle's ``metadata.json`` and ``logging.conf`` are used, and keyword
arguments override config entries (``roi_size=[64, 64, 32]``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BUNDLES_DIR", "bundle_path", "list_bundles", "run_bundle", "write_benchmark_section"]

#: The repository's bundle folder (beside the ``mednet`` package in a clone).
BUNDLES_DIR = Path(__file__).resolve().parents[1] / "bundles"


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
