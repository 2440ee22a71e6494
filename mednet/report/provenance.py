"""Where a result comes from: software, command, bundles and their weights, inputs.

Two halves:

- at predict time, per case (:func:`run_provenance`, :func:`input_checksums`): what ran
  (mednet version and git revision, the command line, PyTorch, MONAI, Python, when, with
  the time zone) and what it read (each input file's SHA-256; a DICOM folder's file list),
  kept in the case record so that a report rebuilt later still says what made each case;
- at report time (:func:`cohort_provenance`): the cohort's bundles (version, SHA-256 of the
  weights the cases were made with, what the weights were trained on, from the bundle's
  ``models/reference.json`` when there is one) and the distinct software and commands its
  cases' records name.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from mednet.checksum import file_sha256

__all__ = ["cohort_provenance", "git_revision", "input_checksums", "run_provenance", "training_source"]


def _folder_sha256(folder: Path) -> tuple[str, int, int]:
    """A folder's (DICOM series') fingerprint: SHA-256 of its sorted file list (relative name and size).

    Cheap (no pixel data read): it changes when a file is added, removed, renamed or changes
    size; a file rewritten in place with the same size is not seen (the record says so).
    """
    digest, count, total = hashlib.sha256(), 0, 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder).as_posix()}\t{size}\n".encode())
        count, total = count + 1, total + size
    return digest.hexdigest(), count, total


def input_checksums(inputs: Mapping[str, os.PathLike | str]) -> dict[str, dict]:
    """Sequence -> fingerprint of its input, for the case record.

    A file: ``{"sha256", "bytes"}`` (its bytes). A folder (a DICOM series):
    ``{"file_list_sha256", "files", "bytes"}`` (its sorted file names and sizes). A path
    that is neither: ``{"error": ...}`` (the record still says it was not checked).
    """
    out: dict[str, dict] = {}
    for key, value in inputs.items():
        path = Path(value)
        if path.is_file():
            out[key] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
        elif path.is_dir():
            digest, count, total = _folder_sha256(path)
            out[key] = {"file_list_sha256": digest, "files": count, "bytes": total}
        else:
            out[key] = {"error": f"{path}: not a file or folder"}
    return out


@functools.lru_cache(maxsize=1)
def git_revision() -> str | None:
    """The git revision of mednet's clone (``git describe --always --dirty``) when it runs from one, else None."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
                              capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def _versions() -> dict[str, str]:
    import monai
    import torch

    import mednet

    return {"mednet": mednet.__version__, "torch": torch.__version__, "monai": monai.__version__,
            "python": platform.python_version()}  # fmt: skip


def now() -> str:
    """The local date and time with its UTC offset, e.g. ``2026-03-02T14:05:09+01:00``."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def run_provenance(argv: Sequence[str] | None = None) -> dict:
    """What is running now: versions, git revision, command line, time with time zone, platform."""
    argv = list(sys.argv if argv is None else argv)
    if argv and (Path(argv[0]).name == "mednet" or Path(argv[0]).as_posix().endswith("mednet/__main__.py")):
        argv[0] = "mednet"
    return {**_versions(), "git": git_revision(), "command": shlex.join(argv), "time": now(),
            "platform": platform.platform()}  # fmt: skip


def training_source(reference: Mapping | None) -> str:
    """What a bundle's weights were trained on, in words, from its ``models/reference.json``.

    The one description of a bundle's weights, used by the report, ``mednet bundle list`` and the demo.
    """
    if not reference:
        return "no training record (models/reference.json): not mednet's reference weights; origin unknown"
    data = reference.get("data") or {}
    parts = data.get("parts") or [data]  # a merged cohort: its parts, each drawn by itself
    synthetic = data.get("synthetic_only") or all(part.get("generator") for part in parts)
    what = "synthetic phantoms only" if synthetic else "data"
    named = {" ".join(str(part[k]) for k in ("generator", "mednet_version") if part.get(k)) for part in parts}
    generators = sorted(named - {""})
    cases = sum(int(part.get("cases") or 0) for part in parts)
    looks = [str(part.get("randomise") or "no") for part in parts if "randomise" in part]
    seeds = [str(part["seed"]) for part in parts if part.get("seed") is not None]
    cohort = ", ".join(filter(None, [
        f"generator {', '.join(generators)}" if generators else "",
        f"{cases} cases" if cases else "",
        f"{' + '.join(looks)} randomisation" if any(look != "no" for look in looks) else "",
        f"seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}" if seeds else "",
    ]))  # fmt: skip
    when = str(reference.get("finished") or "")
    return (f"{what} ({cohort}); {reference.get('epochs', '?')} epochs"
            + (" fine-tuning earlier weights" if reference.get("base") else "")
            + (f", finished {when}" if when else "")
            + (f", mednet {reference['mednet_version']}" if reference.get("mednet_version") else ""))  # fmt: skip


def _distinct(records: Iterable[Mapping], key: str) -> list[str]:
    return sorted({str((r.get("provenance") or {}).get(key)) for r in records if (r.get("provenance") or {}).get(key)})


def cohort_provenance(bundles: Sequence, records: Sequence[Mapping], argv: Sequence[str] | None = None) -> dict:
    """The report's provenance block.

    Args:
        bundles: the disease's :class:`~mednet.bundles.BundleSpec` s (localisation, grading).
        records: the cohort's case records (``weights``, ``provenance``, ``inputs_sha256``).
        argv: the command writing the report (default ``sys.argv``).

    Returns:
        ``{"report": run_provenance(), "predicted_with": {versions, git, commands, times},
        "bundles": [{"name", "version", "weights_sha256": [...], "bundle_weights_sha256",
        "trained_on", "reference_sha256_matches"}], "inputs_checked": n, "cases": n}``.
    """
    rows = []
    for spec in bundles:
        used = sorted({str((r.get("weights") or {}).get(spec.name)) for r in records
                       if (r.get("weights") or {}).get(spec.name)})  # fmt: skip
        reference = dict(spec.reference or {})
        recorded = reference.get("weights_sha256")
        rows.append({"name": spec.name, "version": spec.version, "weights_sha256": used,
                     "trained_on": training_source(reference),
                     "reference_sha256_matches": (None if not recorded or not used
                                                  else all(u == recorded for u in used))})  # fmt: skip
    times = sorted({str((r.get("provenance") or {}).get("time")) for r in records
                    if (r.get("provenance") or {}).get("time")})  # fmt: skip
    return {
        "report": run_provenance(argv),
        "predicted_with": {key: _distinct(records, key) for key in ("mednet", "git", "torch", "monai", "command")}
        | {"first": times[0] if times else None, "last": times[-1] if times else None},
        "bundles": rows,
        "inputs_checked": sum(bool(r.get("inputs_sha256")) for r in records),
        "cases": len(records),
    }
