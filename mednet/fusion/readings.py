"""Clinicians' readings: from a case's ``clinicians`` entry or a CSV, as DL-MDT votes.

A datalist case may carry ``"clinicians": {"radiology": "AN", "radiotherapy": "MG"}``
(``mednet datalist --manifest`` reads the manifest's ``radiology``, ``radiotherapy`` or
``clinician_<role>`` columns into it). ``mednet predict --clinicians readings.csv`` gives
them per case instead, one row per reading::

    case_id,role,reading
    CPA_0001,radiology,AN
    CPA_0001,radiotherapy,MG

A reading names a class (any case), or is ``1``/``0`` (positive/negative); an empty cell
is a missing reading.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from mednet.options import choose

__all__ = ["merge_readings", "read_clinician_csv", "reading_votes"]

_CASE_COLUMNS = ("case_id", "case", "id")
_ROLE_COLUMNS = ("role", "reader", "reader_role", "clinician")
_READING_COLUMNS = ("reading", "diagnosis", "class", "vote")


def reading_votes(readings: Mapping[str, object] | None, classes: Sequence[str]) -> dict[str, int | None]:
    """Readings as DL-MDT votes: 1 for the positive class ``classes[1]``, 0 for ``classes[0]``.

    Args:
        readings: role -> class name (any case), ``1``/``0``/``True``/``False``, or
            None/"" when missing.
        classes: the two class names, negative first (e.g. ``["MG", "AN"]``).

    Returns:
        role -> 1, 0 or None.

    Raises:
        ValueError: a reading that names no class (with the closest class name), or
            ``classes`` that are not two names.
    """
    if len(classes) != 2:
        raise ValueError(f"clinicians' readings vote between two classes, found classes {list(classes)}")
    names = [str(c) for c in classes]
    out: dict[str, int | None] = {}
    for role, value in (readings or {}).items():
        if value is None or (isinstance(value, str) and not value.strip()):
            out[str(role)] = None
        elif isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            out[str(role)] = int(value)
        elif str(value).strip() in ("0", "1"):
            out[str(role)] = int(str(value).strip())
        else:
            name = choose(str(value), names, f"clinician reading {role!r}")
            out[str(role)] = names.index(name)
    return out


def _column(header: Sequence[str], options: Sequence[str], what: str, path: Path) -> str:
    lowered = {h.strip().lower(): h for h in header}
    for option in options:
        if option in lowered:
            return lowered[option]
    raise ValueError(f"{path}: no {what} column; expected one of {list(options)}, found {list(header)}")


def read_clinician_csv(path: os.PathLike | str) -> dict[str, dict[str, str]]:
    """``case_id -> {role: reading}`` from a CSV with columns case id, role, reading.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a missing column, or one case with two readings for one role.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: clinicians' readings CSV not found")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
        header = list(rows[0].keys()) if rows else []
    if not rows:
        return {}
    case_col = _column(header, _CASE_COLUMNS, "case id", path)
    role_col = _column(header, _ROLE_COLUMNS, "reader role", path)
    reading_col = _column(header, _READING_COLUMNS, "reading", path)
    out: dict[str, dict[str, str]] = {}
    for line, row in enumerate(rows, start=2):
        case, role = (row.get(case_col) or "").strip(), (row.get(role_col) or "").strip()
        if not case or not role:
            raise ValueError(f"{path}, line {line}: a reading needs a case id and a role, found {row}")
        readings = out.setdefault(case, {})
        if role in readings:
            raise ValueError(f"{path}, line {line}: case {case!r} has a second {role!r} reading")
        readings[role] = (row.get(reading_col) or "").strip()
    return out


def merge_readings(
    case: Mapping, extra: Mapping[str, Mapping[str, str]] | None = None, key: str = "clinicians"
) -> dict[str, str]:
    """A case's readings: its own ``clinicians`` entry, overridden role by role by ``extra[case_id]``."""
    readings = dict(case.get(key) or {})
    readings.update((extra or {}).get(str(case.get("case_id")), {}))
    return readings
