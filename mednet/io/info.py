"""Describe image files: the first look at a new folder (``mednet info``)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from mednet.errors import InvalidImageError
from mednet.io.field_of_view import field_of_view_bytes, outside_field_of_view
from mednet.io.grid import Grid
from mednet.io.memory import check_memory
from mednet.io.read import is_image_path, load_raw, looks_like_dicom, validate

__all__ = ["describe_image", "expand_image_paths", "format_descriptions"]


def expand_image_paths(paths: list[os.PathLike | str]) -> list[Path]:
    """Files as given; folders replaced by the image files below them, or kept whole if they hold DICOM.

    A folder named like an image file (``scan.nii.gz/``, given or found), a link that leads
    nowhere, and a folder in which no image is found are kept, so that describing them
    says what is wrong.
    """
    out: list[Path] = []
    for given in map(Path, paths):
        if not given.is_dir() or is_image_path(given):
            out.append(given)
            continue
        below = sorted(p for p in given.rglob("*") if not p.name.startswith("."))
        files = [p for p in below if p.is_file()]
        # files named like images, and anything else so named (a folder, a broken link): described as refused
        found = [p for p in below if is_image_path(p) and not (p.is_file() and looks_like_dicom(p))]
        # a folder holding DICOM files is described as one series
        found += sorted({p.parent for p in files if looks_like_dicom(p)})
        out += found or [given]
    return list(dict.fromkeys(out))  # a DICOM folder named *.dcm is found twice


def describe_image(path: os.PathLike | str, kind: str = "image", series_uid: str | None = None) -> dict:
    """Shape, spacing, orientation, dtype and intensity range of one image, with its problems.

    Unlike :func:`mednet.io.read_image`, problems with values or geometry do not
    raise: they are listed under ``problems`` (the same checks, :func:`mednet.io.read.validate`).
    A valid image with zeros beyond its acquired field of view gets a note saying how many
    (:func:`mednet.io.field_of_view.outside_field_of_view`, as the segmentation bundles find them).
    A file that cannot be read at all gives ``error`` instead of the description.

    Returns:
        A JSON-ready dict: ``path``, ``format``, ``shape``, ``spacing_mm``,
        ``orientation``, ``dtype``, ``min``, ``max``, ``notes``, ``problems``
        (or ``path`` and ``error``).
    """
    try:
        raw = load_raw(path, series_uid=series_uid)
    except InvalidImageError as err:
        return {"path": str(path), "error": str(err)}
    grid = Grid(tuple(int(s) for s in raw.array.shape), raw.affine)
    problems = validate(raw, kind)
    values = raw.array.view(np.uint8) if raw.array.dtype == bool else raw.array
    finite = values[np.isfinite(values)] if np.issubdtype(values.dtype, np.floating) else values
    return {
        "path": str(path),
        "format": raw.format,
        "shape": list(grid.shape),
        "spacing_mm": [round(s, 4) if math.isfinite(s) else None for s in grid.spacing],
        "orientation": grid.orientation,
        "dtype": str(raw.dtype),
        "min": _number(finite.min()) if finite.size else None,
        "max": _number(finite.max()) if finite.size else None,
        "notes": [*raw.notes, *([] if problems or kind != "image" else _field_of_view_notes(path, raw.array, grid))],
        "problems": [f"{p.problem}: expected {p.expected}, found {p.found}" for p in problems],
    }


def _field_of_view_notes(path: os.PathLike | str, array: np.ndarray, grid: Grid) -> list[str]:
    """A note when a valid 3D image has zeros beyond its acquired field of view (what inference fills)."""
    if array.ndim != 3:
        return []
    def check() -> None:  # only when a zero region is left to search
        need, voxels = field_of_view_bytes((1, *array.shape), array.dtype.itemsize), " x ".join(map(str, array.shape))
        check_memory(path, need, "find the zeros beyond its field of view", f"{voxels} voxels")

    try:
        mask = outside_field_of_view(array[None], grid.spacing, before_search=check)
    except InvalidImageError as err:  # a note only: the description goes on without it
        return [f"not searched for zeros beyond the field of view: {err.problem}: {err.found}"]
    except (MemoryError, ValueError):  # a note only: the description goes on without it
        return []
    if mask is None:
        return []
    count = int(mask.sum())
    return [f"{count} voxels ({100 * count / mask.size:.1f}%) of zeros beyond the acquired field of view (a "
            "reformat's corners or bands at the edges): where every sequence of a case has them, the "
            "segmentation bundles fill them for the network and label nothing there"]  # fmt: skip


def _number(value: np.generic) -> float | None:
    """A voxel value for JSON: a float, None for a complex or otherwise unprintable one."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _g(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def format_descriptions(descriptions: list[dict]) -> str:
    """A plain-text table of :func:`describe_image` results, problems listed under each file."""
    lines = []
    for d in descriptions:
        lines.append(str(d["path"]))
        if "error" in d:
            lines.append(f"  ERROR {d['error']}")
            continue
        spacing = " x ".join(_g(s) for s in d["spacing_mm"])
        shape = " x ".join(str(s) for s in d["shape"])
        lines.append(
            f"  {d['format']:<9} shape {shape:<15} spacing {spacing} mm  {d['orientation']}  "
            f"{d['dtype']}  range [{_g(d['min'])}, {_g(d['max'])}]"
        )
        lines += [f"  note: {n}" for n in d["notes"]]
        lines += [f"  PROBLEM {p}" for p in d["problems"]]
    return "\n".join(lines)
