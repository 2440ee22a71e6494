"""Find cases in a folder or a CSV manifest and write them as a split datalist.

Folder discovery recognises, in one folder or one folder per case (searched
recursively):

- BraTS 2021 names: ``<case>_t1``, ``_t1ce``, ``_t2``, ``_flair``, ``_seg``;
- BraTS 2023 names: ``<case>-t1n``, ``-t1c``, ``-t2w``, ``-t2f``, ``-seg``; the
  trailing ``-NNN`` of a BraTS 2023 case id is the time point, so
  ``BraTS-GLI-00001-000`` and ``-001`` are one patient;
- other ``<case>_<sequence>`` / ``<case>-<sequence>`` names, with any spelling that
  :func:`~mednet.io.sequences.normalise_sequence_key` knows;
- a bare ``<sequence>`` file name inside a case folder (the folder names the case).

A ``HGG`` or ``LGG`` folder above a case (the BraTS 2019 layout) gives its class.

A manifest is a CSV with a ``case_id`` column and any of: ``patient_id``, one
column per sequence (path to the file or DICOM folder, relative to the CSV),
``label``, ``class``, clinician readings (``radiology``, ``radiotherapy`` or
``clinician_<role>``) and ``split`` (a partition given by the user, kept as is).
Other columns are kept under ``extra``.

Everything not used is reported, with the reason.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import logging
import os
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mednet import __version__
from mednet.errors import DatalistError
from mednet.io.atomic import write_json_atomic
from mednet.io.read import IMAGE_SUFFIXES, is_image_path, looks_like_dicom
from mednet.io.sequences import LABEL_KEY, SEQUENCE_KEYS, normalise_sequence_key
from mednet.io.splits import DEFAULT_RATIOS, PARTITIONS, check_no_leakage, split_cases, summarise

__all__ = [
    "Discovery",
    "build_datalist",
    "datalist_cases",
    "discover_cases",
    "load_datalist",
    "read_manifest",
    "save_datalist",
]

_BRATS2023 = re.compile(r"(?P<case>.+)-(?P<seq>t1n|t1c|t2w|t2f|seg)", re.IGNORECASE)
_BRATS2023_KEYS = {"t1n": "t1", "t1c": "t1c", "t2w": "t2", "t2f": "flair", "seg": LABEL_KEY}
_BRATS2021 = re.compile(r"(?P<case>.+)_(?P<seq>t1|t1ce|t2|flair|seg)", re.IGNORECASE)
_BRATS2021_KEYS = {"t1": "t1", "t1ce": "t1c", "t2": "t2", "flair": "flair", "seg": LABEL_KEY}
_BRATS2023_TIMEPOINT = re.compile(r"(?P<patient>BraTS-[A-Za-z]+-\d+)-\d+")
_GRADE_FOLDERS = {"hgg": "HGG", "lgg": "LGG"}

_CASE_COLUMNS = ("case_id", "case", "id", "scan_id")
_PATIENT_COLUMNS = ("patient_id", "patient", "subject_id", "subject")
_CLASS_COLUMNS = ("class", "grade", "diagnosis", "stage")
_SPLIT_COLUMNS = ("split", "partition")
_READER_COLUMNS = ("radiology", "radiotherapy")
_READER_PREFIXES = ("clinician_", "reader_")
_SPLIT_NAMES = {
    "training": "training",
    "train": "training",
    "validation": "validation",
    "val": "validation",
    "valid": "validation",
    "testing": "testing",
    "test": "testing",
}


@dataclass
class Discovery:
    """Cases found in a folder or manifest, and what was left out.

    Attributes:
        cases: datalist entries: ``case_id``, ``patient_id``, a path per sequence key,
            optionally ``label``, ``class``, ``clinicians``, ``split``, ``extra``.
        skipped: ``{"path", "reason"}`` for every file, folder or row not used.
        notes: remarks about the whole source (naming schemes seen, ignored columns).
        source: ``{"kind": "folder" | "manifest", "path": ...}``.
    """

    cases: list[dict]
    skipped: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: dict = field(default_factory=dict)

    def report(self) -> str:
        """A human-readable account: cases per sequence set, and every skip with its reason."""
        lines = [f"found {len(self.cases)} case(s) in {self.source.get('path')}"]
        combos = Counter(
            "+".join(k for k in SEQUENCE_KEYS if k in c) + (" +label" if c.get(LABEL_KEY) else "") for c in self.cases
        )
        lines += [f"  {n} with {combo}" for combo, n in sorted(combos.items())]
        classes = Counter(str(c["class"]) for c in self.cases if c.get("class"))
        if classes:
            lines.append("  classes: " + ", ".join(f"{k} {v}" for k, v in sorted(classes.items())))
        patients = len({c["patient_id"] for c in self.cases})
        if patients != len(self.cases):
            lines.append(f"  {patients} patient(s)")
        lines += [f"note: {n}" for n in self.notes]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}:")
            lines += [f"  {s['path']}: {s['reason']}" for s in self.skipped]
        return "\n".join(lines)


def _stem(name: str) -> str:
    lower = name.lower()
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _parse_name(path: Path) -> tuple[str, str, str] | None:
    """``(case_id, key, scheme)`` from an image file name, or None when no scheme fits."""
    stem = _stem(path.name)
    for pattern, keys, scheme in (
        (_BRATS2023, _BRATS2023_KEYS, "BraTS 2023"),
        (_BRATS2021, _BRATS2021_KEYS, "BraTS 2021"),
    ):
        match = pattern.fullmatch(stem)
        if match:
            return match["case"], keys[match["seq"].lower()], scheme
    separators = [m.start() for m in re.finditer(r"[_\-]", stem)]
    # try the last two tokens first, so that "t1_post" wins over "post"
    for cut in sorted(separators[-2:]):
        key = normalise_sequence_key(stem[cut + 1 :])
        if key and cut > 0:
            return stem[:cut], key, "<case>_<sequence>"
    key = normalise_sequence_key(stem)
    if key:
        return path.parent.name, key, "case folder"
    return None


def _patient_id(case_id: str) -> str:
    match = _BRATS2023_TIMEPOINT.fullmatch(case_id)
    return match["patient"] if match else case_id


def _grade_from_path(path: Path, root: Path) -> str | None:
    for part in path.relative_to(root).parts[:-1]:
        if part.lower() in _GRADE_FOLDERS:
            return _GRADE_FOLDERS[part.lower()]
    return None


def _finish(cases: dict[str, dict], skipped: list[dict], require: Sequence[str]) -> list[dict]:
    """Drop cases that have no image or miss a required sequence, saying why."""
    kept = []
    for case_id, case in sorted(cases.items()):
        present = [k for k in SEQUENCE_KEYS if case.get(k)]
        missing = [k for k in require if not case.get(k)]
        if not present:
            skipped.append({"path": case_id, "reason": "no image sequence (only a label map?)"})
        elif missing:
            skipped.append(
                {
                    "path": case_id,
                    "reason": f"missing required sequence(s) {', '.join(missing)}; has {', '.join(present)}",
                }
            )
        else:
            kept.append(case)
    return kept


def discover_cases(root: os.PathLike | str, require: Sequence[str] = ()) -> Discovery:
    """Find cases in a folder by their file names (see the module docstring).

    Args:
        root: the folder to search, recursively. Hidden files are ignored.
        require: sequence keys every case must have; cases without them are skipped.

    Returns:
        The :class:`Discovery`, paths absolute.

    Raises:
        DatalistError: ``root`` is not a folder.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise DatalistError(f"{root}: expected a folder of images, found {'a file' if root.exists() else 'nothing'}")
    found: dict[str, dict] = {}
    sources: dict[tuple[str, str], Path] = {}
    conflicts: dict[str, list[str]] = defaultdict(list)
    schemes: Counter = Counter()
    skipped: list[dict] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        dicom = [f for f in files if not f.startswith(".") and looks_like_dicom(Path(folder) / f)]
        if dicom:
            skipped.append(
                {
                    "path": folder,
                    "reason": f"DICOM folder ({len(dicom)} files): list it in a manifest "
                    "(--manifest) as the path of its sequence",
                }
            )
        for name in sorted(set(files) - set(dicom)):
            path = Path(folder) / name
            if name.startswith("."):
                continue
            if not is_image_path(path):
                skipped.append({"path": str(path), "reason": "not an image file"})
                continue
            parsed = _parse_name(path)
            if parsed is None:
                skipped.append(
                    {
                        "path": str(path),
                        "reason": "name matches no naming scheme "
                        "(<case>_<sequence>, BraTS 2021/2023, <sequence> in a case folder)",
                    }
                )
                continue
            case_id, key, scheme = parsed
            schemes[scheme] += 1
            case = found.setdefault(case_id, {"case_id": case_id, "patient_id": _patient_id(case_id)})
            if key in case:
                conflicts[case_id].append(f"two files for {key}: {sources[case_id, key]} and {path}")
                continue
            case[key] = str(path)
            sources[case_id, key] = path
            grade = _grade_from_path(path, root)
            if grade:
                case["class"] = grade
    for case_id, problems in conflicts.items():
        found.pop(case_id)
        skipped.append({"path": case_id, "reason": "ambiguous case: " + "; ".join(problems)})
    notes = ["naming: " + ", ".join(f"{scheme} ({n} files)" for scheme, n in schemes.most_common())] if schemes else []
    cases = [_ordered(c) for c in _finish(found, skipped, require)]
    return Discovery(cases=cases, skipped=skipped, notes=notes, source={"kind": "folder", "path": str(root)})


def _ordered(case: dict) -> dict:
    """Entry keys in a stable, readable order: ids, sequences, label, then the rest."""
    head = ["case_id", "patient_id", *SEQUENCE_KEYS, LABEL_KEY]
    return {k: case[k] for k in head if k in case} | {k: v for k, v in case.items() if k not in head}


def _pick(columns: Sequence[str], names: Sequence[str]) -> str | None:
    return next((c for c in columns if c.strip().lower() in names), None)


def read_manifest(path: os.PathLike | str, require: Sequence[str] = ()) -> Discovery:
    """Read cases from a CSV manifest (see the module docstring for its columns).

    Args:
        path: the CSV file; relative paths in it are relative to its folder.
        require: sequence keys every case must have; cases without them are skipped.

    Returns:
        The :class:`Discovery`, paths absolute.

    Raises:
        DatalistError: the file is missing or has no case id column.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise DatalistError(f"{path}: manifest not found")
    with open(path, newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    case_col = _pick(columns, _CASE_COLUMNS)
    if case_col is None:
        raise DatalistError(
            f"{path}: expected a case id column (one of {', '.join(_CASE_COLUMNS)}), "
            f"found columns {', '.join(columns) or '(none)'}"
        )
    patient_col = _pick(columns, _PATIENT_COLUMNS)
    class_col = _pick(columns, _CLASS_COLUMNS)
    split_col = _pick(columns, _SPLIT_COLUMNS)
    keyed = {c: normalise_sequence_key(c) for c in columns}
    image_cols = {c: k for c, k in keyed.items() if k in SEQUENCE_KEYS or k == LABEL_KEY}
    reader_cols = {c: _reader_role(c) for c in columns if _reader_role(c)}
    used = {case_col, patient_col, class_col, split_col, *image_cols, *reader_cols}
    extra_cols = [c for c in columns if c not in used]
    notes = [f"extra columns kept under 'extra': {', '.join(extra_cols)}"] if extra_cols else []
    twice = [k for k, n in Counter(image_cols.values()).items() if n > 1]
    if twice:
        raise DatalistError(
            f"{path}: several columns map to the same sequence {', '.join(twice)}: "
            + ", ".join(f"{c} -> {k}" for c, k in image_cols.items() if k in twice)
        )
    found: dict[str, dict] = {}
    skipped: list[dict] = []
    for line, row in enumerate(rows, start=2):
        case_id = (row.get(case_col) or "").strip()
        where = f"{path.name}:{line}"
        if not case_id:
            skipped.append({"path": where, "reason": "empty case id"})
            continue
        if case_id in found:
            skipped.append({"path": where, "reason": f"case id {case_id} repeated (first row kept)"})
            continue
        case = (
            {"case_id": case_id, "patient_id": (row.get(patient_col) or "").strip() or case_id}
            if patient_col
            else {"case_id": case_id, "patient_id": case_id}
        )
        missing_files = []
        for column, key in image_cols.items():
            value = (row.get(column) or "").strip()
            if not value:
                continue
            file = Path(value) if Path(value).is_absolute() else path.parent / value
            if not file.exists():
                missing_files.append(f"{key} file not found: {file}")
            case[key] = str(file)
        if missing_files:
            skipped.append({"path": where, "reason": f"case {case_id}: " + "; ".join(missing_files)})
            continue
        if class_col and (row.get(class_col) or "").strip():
            case["class"] = row[class_col].strip()
        readings = {role: row[c].strip() for c, role in reader_cols.items() if (row.get(c) or "").strip()}
        if readings:
            case["clinicians"] = readings
        if split_col and (row.get(split_col) or "").strip():
            value = row[split_col].strip().lower()
            if value not in _SPLIT_NAMES:
                skipped.append(
                    {
                        "path": where,
                        "reason": f"case {case_id}: unknown split {row[split_col]!r} "
                        f"(expected one of {', '.join(_SPLIT_NAMES)})",
                    }
                )
                continue
            case["split"] = _SPLIT_NAMES[value]
        extra = {c: row[c] for c in extra_cols if row.get(c) not in (None, "")}
        if extra:
            case["extra"] = extra
        found[case_id] = case
    cases = [_ordered(c) for c in _finish(found, skipped, require)]
    # _finish sorts by case id; keep the manifest's order instead
    order = {case_id: i for i, case_id in enumerate(found)}
    cases.sort(key=lambda c: order[c["case_id"]])
    return Discovery(cases=cases, skipped=skipped, notes=notes, source={"kind": "manifest", "path": str(path)})


def _reader_role(column: str) -> str | None:
    name = column.strip().lower()
    if name in _READER_COLUMNS:
        return name
    for prefix in _READER_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix) :]
    return None


def build_datalist(
    discovery: Discovery,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    *,
    seed: int = 0,
    stratify: bool = True,
    folds: int | None = None,
) -> dict:
    """Split discovered cases by patient into a datalist.

    When every case carries a ``split`` (from a manifest column), that split is
    kept and only checked for patient leakage; otherwise :func:`split_cases` makes one.

    Returns:
        A JSON-ready dict: ``training``, ``validation``, ``testing`` lists of case
        entries, plus ``split`` (how it was made, counts), ``source``, ``skipped``,
        ``notes``, ``sequences``, ``classes``, ``created`` and ``mednet_version``.

    Raises:
        DatalistError: no cases, a partial user split, or a split that leaks patients.
    """
    cases = discovery.cases
    if not cases:
        raise DatalistError(f"{discovery.source.get('path')}: no usable case found\n{discovery.report()}")
    given = [c for c in cases if c.get("split")]
    if given and len(given) != len(cases):
        raise DatalistError(
            f"split column: expected a split for every case or none, found {len(given)} of {len(cases)}"
        )
    if given:
        partitions = {name: [dict(c) for c in cases if c["split"] == name] for name in PARTITIONS}
        check_no_leakage(partitions)
        split = {"unit": "patient", "method": "given in the manifest", "counts": summarise(partitions)}
    else:
        partitions, split = split_cases(cases, ratios, seed=seed, stratify=stratify, folds=folds)
    for members in partitions.values():
        for case in members:
            case.pop("split", None)
    return {
        "mednet_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": discovery.source,
        "sequences": [k for k in SEQUENCE_KEYS if any(k in c for c in cases)],
        "classes": sorted({str(c["class"]) for c in cases if c.get("class")}),
        "split": split,
        "notes": discovery.notes,
        "skipped": discovery.skipped,
        **partitions,
    }


def _path_keys(case: Mapping) -> list[str]:
    """The keys of ``case`` holding a path (a missing sequence given as ``None`` or ``""`` is left as it is)."""
    return [k for k in case if (k in SEQUENCE_KEYS or k == LABEL_KEY) and case[k] not in (None, "")]


def save_datalist(datalist: Mapping, out: os.PathLike | str) -> Path:
    """Write a datalist as JSON, image paths relative to its folder where they lie below it.

    The file is written to a temporary name and renamed, so it is never half-written.
    """
    out = Path(out).resolve()
    base = out.parent
    doc = dict(datalist)
    for name in PARTITIONS:
        entries = []
        for case in datalist.get(name, []):
            entry = dict(case)
            for key in _path_keys(case):
                path = Path(case[key])
                if path.is_absolute() and path.is_relative_to(base):
                    entry[key] = path.relative_to(base).as_posix()
            entries.append(entry)
        doc[name] = entries
    return write_json_atomic(out, doc, indent=2, parents=True)


def load_datalist(path: os.PathLike | str, *, slice_split: bool = False) -> dict:
    """Read a datalist, resolve its relative paths, and check it for patient leakage.

    Args:
        path: the datalist JSON.
        slice_split: accept a patient in several partitions (a slice-level split, see
            :func:`mednet.io.slice_split_datalist`), with a loud :class:`SliceSplitWarning`.
            Only for reproducing papers that split slices: their test figures are inflated.

    Raises:
        DatalistError: missing or malformed file.
        PatientLeakageError: a patient in two partitions (without ``slice_split``).
    """
    path = Path(path).resolve()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise DatalistError(f"{path}: datalist not found") from err
    except json.JSONDecodeError as err:
        raise DatalistError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(doc, dict) or not any(isinstance(doc.get(n), list) for n in PARTITIONS):
        raise DatalistError(f"{path}: expected a JSON object with {', '.join(PARTITIONS)} lists")
    for name in PARTITIONS:
        entries = doc.get(name, [])
        if not isinstance(entries, list):
            raise DatalistError(f"{path}: {name}: expected a list of case entries, found {type(entries).__name__}")
        for i, case in enumerate(entries):
            if not isinstance(case, dict):
                raise DatalistError(f"{path}: {name}[{i}]: expected a case entry (a mapping of case_id and sequence "
                                    f"keys to paths), found {type(case).__name__} {str(case)[:60]!r}")  # fmt: skip
        doc[name] = [dict(c) for c in entries]
        for case in doc[name]:
            if "case_id" not in case:
                raise DatalistError(f"{path}: an entry of {name} has no case_id: {case}")
            for key in _path_keys(case):
                if isinstance(case[key], str) and not Path(case[key]).is_absolute():  # other values: refused by case
                    case[key] = str(path.parent / case[key])
    if slice_split:
        warn_slice_split(path)
    else:
        check_no_leakage({n: doc[n] for n in PARTITIONS})
    return doc


class SliceSplitWarning(UserWarning):
    """A slice-level split is in use: slices of one patient in training and test."""


def warn_slice_split(path: os.PathLike | str) -> None:
    """Warn, as loudly as Python can, that ``path`` is used with a slice-level split."""
    message = (
        f"SLICE-LEVEL SPLIT ({path}): slices of the same patient are in training and in test. "
        "Test figures from this split are inflated and must not be reported as a model's performance; "
        "use it only to reproduce papers that split this way. The patient-level split is the default."
    )
    logging.getLogger("mednet").warning("!" * 20 + " " + message + " " + "!" * 20)
    warnings.warn(message, SliceSplitWarning, stacklevel=3)


def datalist_cases(
    path: os.PathLike | str,
    partition: str,
    keys: Sequence[str] | None = None,
    *,
    any_of: Sequence[str] = (),
    slice_split: bool = False,
    nonempty: bool = False,
) -> list[dict]:
    """One partition of a datalist file, paths absolute: for bundle configs.

    Args:
        path: the datalist JSON.
        partition: ``training``, ``validation`` or ``test``.
        keys: when given, each case is reduced to ``case_id`` and these keys (what a
            dataset loads), and a case without one of them is an error naming it. A
            case's ``slice_ranks`` (slice-level splits) is kept too.
        any_of: keys of which a case needs at least one, kept when present: the sequences
            of a bundle that works with any non-empty subset of them (inference); a case
            without any is an error naming it.
        slice_split: accept a slice-level split, warning loudly (see :func:`load_datalist`).
        nonempty: an empty partition is an error naming it and the partitions that have
            cases (a bundle's inference or training would otherwise end having done nothing).

    Example (in a bundle config):
        ``"train_data": "$mednet.io.datalist_cases(@datalist, 'training', @image_keys + ['label'])"``;
        ``"data": "$mednet.io.datalist_cases(@datalist, @partition, [], any_of=@image_keys, nonempty=True)"``

    Raises:
        DatalistError: unknown partition, an empty one when ``nonempty``, or a case lacks one
            of ``keys`` or every one of ``any_of``.
    """
    if partition not in PARTITIONS:
        raise DatalistError(f"partition: expected one of {', '.join(PARTITIONS)}, found {partition!r}")
    datalist = load_datalist(path, slice_split=slice_split)
    cases = datalist[partition]
    if nonempty and not cases:
        others = [f"{name} ({len(datalist[name])})" for name in PARTITIONS if datalist.get(name)]
        raise DatalistError(
            f"{path}: partition {partition!r}: expected at least one case, found none"
            f" (partitions with cases: {', '.join(others) or 'none'})"
        )
    if keys is None and not any_of:
        return cases
    keys, any_of = list(keys or ()), list(any_of)

    def lacks(case: Mapping) -> list[str]:
        absent = [k for k in keys if k not in case]
        if any_of and not any(case.get(k) not in (None, "") for k in any_of):
            absent.append(" or ".join([", ".join(any_of[:-1]), any_of[-1]] if len(any_of) > 1 else any_of))
        return absent

    missing = [f"{c['case_id']} (no {', '.join(absent)})" for c in cases if (absent := lacks(c))]
    if missing:
        raise DatalistError(
            f"{path}: {partition}: {len(missing)} case(s) lack a required key: {'; '.join(missing[:5])}"
        )
    kept = [*keys, *any_of, "slice_ranks"]
    return [{"case_id": c["case_id"], **{k: c[k] for k in kept if k in c and c[k] not in (None, "")}} for c in cases]
