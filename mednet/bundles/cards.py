"""Model cards: the benchmark sections that scripts write into a bundle's ``docs/README.md``."""

from __future__ import annotations

import os
from pathlib import Path

from mednet.bundles.locate import bundle_path
from mednet.io.atomic import write_text_atomic

__all__ = ["write_benchmark_section"]


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
    write_text_atomic(readme, f"{head}{start}\n{text}\n{end}{tail}")
    return readme
