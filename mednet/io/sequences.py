"""Canonical MRI sequence keys and the spellings that map onto them.

Sequences are always named by key, never by position. The canonical keys are:

========  ==============================================================
key       sequence
========  ==============================================================
``t1``    T1-weighted, native (BraTS 2021 ``t1``, BraTS 2023 ``t1n``)
``t1c``   T1-weighted after gadolinium (``t1ce``, ``t1gd``, ``t1post``)
``t2``    T2-weighted, brain protocols (BraTS ``t2``, BraTS 2023 ``t2w``)
``t2w``   T2-weighted, body protocols (neuroblastoma)
``flair`` T2 FLAIR (BraTS 2023 ``t2f``)
``dwi``   diffusion-weighted
``adc``   apparent diffusion coefficient map
========  ==============================================================

``label`` is the key of a case's label map (``seg``, ``mask``, ``labels``).
"""

from __future__ import annotations

import re

__all__ = ["LABEL_KEY", "SEQUENCE_KEYS", "normalise_sequence_key"]

SEQUENCE_KEYS: tuple[str, ...] = ("t1", "t1c", "t2", "t2w", "flair", "dwi", "adc")
LABEL_KEY = "label"

_ALIASES: dict[str, str] = {
    "t1": "t1",
    "t1n": "t1",
    "t1w": "t1",
    "t1native": "t1",
    "t1c": "t1c",
    "t1ce": "t1c",
    "t1gd": "t1c",
    "t1post": "t1c",
    "t1postgad": "t1c",
    "t1postgd": "t1c",
    "t1gad": "t1c",
    "t1postcontrast": "t1c",
    "t1contrast": "t1c",
    "t2": "t2",
    "t2w": "t2w",
    "flair": "flair",
    "t2f": "flair",
    "t2flair": "flair",
    "dwi": "dwi",
    "adc": "adc",
    "seg": LABEL_KEY,
    "segmentation": LABEL_KEY,
    "label": LABEL_KEY,
    "labels": LABEL_KEY,
    "mask": LABEL_KEY,
}


def normalise_sequence_key(name: str) -> str | None:
    """Map a sequence spelling onto its canonical key.

    Case, ``-``, ``_``, ``+`` and spaces are ignored, so ``T1-CE``, ``t1_gd`` and
    ``T1 post-Gd`` all give ``t1c``.

    Args:
        name: a spelling from a file name or a manifest column.

    Returns:
        The canonical key, ``"label"`` for label maps, or None when the spelling is
        not a known sequence.

    Example:
        >>> normalise_sequence_key("T1ce"), normalise_sequence_key("t2f"), normalise_sequence_key("age")
        ('t1c', 'flair', None)
    """
    token = re.sub(r"[\s_\-+.]", "", name.lower())
    return _ALIASES.get(token)
