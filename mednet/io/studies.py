"""MONAI Label studies: one multi-channel NIfTI per case, the sequences in a bundle's channel order.

MONAI Label hands a bundle one image per study. mednet's localisation bundles read several
co-registered sequences; for MONAI Label they read them from one stacked file
(:class:`mednet.transforms.LoadSequencesd`), which this module writes from a datalist.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from mednet.io.cases import load_case
from mednet.io.write import write_image

__all__ = ["write_stacked_case", "write_studies"]


def write_stacked_case(
    case: Mapping,
    sequences: Sequence[str],
    out: os.PathLike | str,
    *,
    base_dir: os.PathLike | str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write one case's sequences as a 4D NIfTI ``(x, y, z, len(sequences))`` on the first sequence's grid.

    Args:
        case: a datalist entry (``case_id`` and one path per sequence key).
        sequences: the sequence keys in channel order (a bundle's ``image_keys``).
        out: the ``.nii.gz`` to write.
        base_dir: folder that relative paths in ``case`` are relative to.
        overwrite: replace an existing file.

    Returns:
        The path written. Its sform and qform are the first sequence's; the other
        sequences are resampled onto that grid where they are on another one.

    Raises:
        DatalistError, FieldOfViewError, InvalidImageError: as :func:`mednet.io.load_case`.
    """
    loaded = load_case(case, sequences, base_dir=base_dir, with_label=False)
    return write_image(loaded.stacked(sequences), out, loaded.reference, overwrite=overwrite)


def write_studies(
    cases: Iterable[Mapping],
    sequences: Sequence[str],
    out_dir: os.PathLike | str,
    *,
    base_dir: os.PathLike | str | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``out_dir/<case_id>.nii.gz`` for every case (see :func:`write_stacked_case`); returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        write_stacked_case(
            case, sequences, out_dir / f"{case['case_id']}.nii.gz", base_dir=base_dir, overwrite=overwrite
        )
        for case in cases
    ]
