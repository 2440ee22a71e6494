"""How much memory one image may take, and refusing one that would not fit.

A header can claim any size: a corrupt or hostile file may announce a volume of
100000 x 100000 x 100000 voxels in a few hundred bytes, and a legitimate whole-body
scan resampled onto a fine reference grid can still exceed a laptop's memory. mednet
estimates what decoding (from the header, before reading a voxel) and resampling
would need and refuses, with an :class:`~mednet.errors.InvalidImageError` giving the
estimate, what would not fit, instead of dying with ``MemoryError`` or being killed
by the system halfway through a cohort.

The budget is :data:`MEMORY_FRACTION` of the memory available now (``MemAvailable``
in ``/proc/meminfo``; the free physical pages elsewhere), or the number of gigabytes in
the environment variable :data:`MAX_IMAGE_GB_ENV` (``MEDNET_MAX_IMAGE_GB``) when it
is set.

Example:
    >>> import os
    >>> os.environ["MEDNET_MAX_IMAGE_GB"] = "2"
    >>> memory_budget()
    (2000000000, 'MEDNET_MAX_IMAGE_GB=2')
    >>> check_memory("scan.nii", 7.4e12, "decode", "30000 x 30000 x 30000 int16 voxels")
    Traceback (most recent call last):
    ...
    mednet.errors.InvalidImageError: scan.nii: too large for the memory available: expected at most 2 GB \
(MEDNET_MAX_IMAGE_GB=2), found 30000 x 30000 x 30000 int16 voxels, which would need 7.4 TB to decode, 2 GB are available
    >>> del os.environ["MEDNET_MAX_IMAGE_GB"]
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from mednet.errors import InvalidImageError, SettingError

__all__ = [
    "MAX_IMAGE_GB_ENV",
    "MEMORY_FRACTION",
    "RESAMPLE_BYTES_PER_VOXEL",
    "available_memory",
    "check_memory",
    "decode_bytes",
    "format_bytes",
    "memory_budget",
]

#: The share of the memory available now that one image (decoded, or resampled) may take:
#: the rest is left for the network, the other sequences and the rest of the machine.
MEMORY_FRACTION = 0.5

#: Environment variable that sets the budget in gigabytes (10^9 bytes) instead.
MAX_IMAGE_GB_ENV = "MEDNET_MAX_IMAGE_GB"

#: Peak memory of resampling one channel onto a grid, per voxel of that grid: MONAI's
#: ``ResampleToMatch`` builds a float64 coordinate grid beside the float32 output (about
#: 69 bytes per voxel measured on a 128^3 grid).
RESAMPLE_BYTES_PER_VOXEL = 72

# Decoding keeps the file's array and its float32 copy (the MetaTensor) side by side.
_FLOAT32_COPY_BYTES = 4


def available_memory() -> int:
    """Bytes of memory available now: ``MemAvailable`` from ``/proc/meminfo``, else free physical pages."""
    try:
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return 2**63 - 1  # the system does not say: do not refuse on a guess


def memory_budget() -> tuple[int, str]:
    """The bytes one image may take, and where that number comes from (for messages).

    Returns:
        ``(bytes, source)``: ``MEDNET_MAX_IMAGE_GB`` when set, else :data:`MEMORY_FRACTION`
        of :func:`available_memory`.

    Raises:
        SettingError: ``MEDNET_MAX_IMAGE_GB`` is set to something other than a positive number.
    """
    setting = os.environ.get(MAX_IMAGE_GB_ENV, "").strip()
    if setting:
        try:
            gigabytes = float(setting)
        except ValueError:
            gigabytes = math.nan
        if not (math.isfinite(gigabytes) and gigabytes > 0):
            raise SettingError(
                f"{MAX_IMAGE_GB_ENV}: expected a positive number of gigabytes (e.g. 8 or 0.5), found {setting!r}"
            )
        return int(gigabytes * 1e9), f"{MAX_IMAGE_GB_ENV}={setting}"
    available = available_memory()
    return int(available * MEMORY_FRACTION), (
        f"{MEMORY_FRACTION:.0%} of the {format_bytes(available)} of memory available; set {MAX_IMAGE_GB_ENV} to change"
    )


def format_bytes(n: float) -> str:
    """A byte count in decimal units, e.g. ``7.4 TB``, ``12.1 GB``, ``850 kB``."""
    for unit, size in (("EB", 1e18), ("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def decode_bytes(shape: Sequence[int], dtype: np.dtype | str) -> int:
    """Memory needed to decode a volume: its voxels in the file's dtype plus their float32 copy."""
    voxels = math.prod(int(s) for s in shape)
    return voxels * (np.dtype(dtype).itemsize + _FLOAT32_COPY_BYTES)


def check_memory(path: os.PathLike | str, need: float, action: str, found: str) -> None:
    """Refuse an image whose ``action`` (``"decode"``, ``"resample ..."``) would need more than the budget.

    Args:
        path: the file at fault, named in the message.
        need: estimated bytes.
        action: what would need them, completing "would need N to ...".
        found: what the image is, e.g. ``"30000 x 30000 x 30000 int16 voxels"``.

    Raises:
        InvalidImageError: ``need`` exceeds :func:`memory_budget`.
        SettingError: ``MEDNET_MAX_IMAGE_GB`` is not a positive number.
    """
    budget, source = memory_budget()
    if need <= budget:
        return
    need_text, budget_text = format_bytes(need), format_bytes(budget)
    if need_text == budget_text:  # rounded alike: say it in bytes
        need_text, budget_text = f"{int(need):,} bytes", f"{budget:,} bytes"
    raise InvalidImageError(
        path,
        "too large for the memory available",
        expected=f"at most {budget_text} ({source})",
        found=f"{found}, which would need {need_text} to {action}, {budget_text} are available",
    )
