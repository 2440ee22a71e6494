"""Load a multi-sequence case onto one reference grid.

The sequences of one examination are often acquired on different grids (another
matrix, field of view or slice position). :func:`load_case` reads every sequence,
takes the first listed one as the reference, and resamples each other sequence (and
the label map) onto the reference grid in world coordinates, once, recording what it
did. A sequence that does not cover the reference field of view is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from monai.data import MetaTensor

from mednet.errors import DatalistError, FieldOfViewError
from mednet.io.grid import Grid, fov_overlap, resample_to_grid
from mednet.io.memory import RESAMPLE_BYTES_PER_VOXEL, check_memory
from mednet.io.read import ImageKind, read_image
from mednet.io.sequences import LABEL_KEY, SEQUENCE_KEYS, normalise_sequence_key

__all__ = ["MIN_FOV_OVERLAP", "LoadedCase", "case_sequences", "load_case", "present_sequences"]

#: A sequence must cover at least this fraction of the reference field of view.
MIN_FOV_OVERLAP = 0.1


@dataclass
class LoadedCase:
    """A case with every sequence on the reference grid.

    Attributes:
        case_id: the case's id.
        reference_key: the sequence whose grid all others were brought onto.
        images: sequence key -> ``(1, x, y, z)`` MetaTensor on the reference grid,
            in the order the sequences were asked for.
        labels: label key -> label map, ``(1, x, y, z)``, on the reference grid.
        resampling: one record per file: key, file, its own grid, whether it was
            resampled (and how), and the fraction of the reference field of view it covers.
        missing: the sequences asked for that the case lacks (with ``allow_missing``).
    """

    case_id: str
    reference_key: str
    images: dict[str, MetaTensor]
    labels: dict[str, MetaTensor] = field(default_factory=dict)
    resampling: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def label(self) -> MetaTensor | None:
        """The first label map (the case's ``label``), or None."""
        return next(iter(self.labels.values()), None)

    @property
    def grid(self) -> Grid:
        """The reference grid."""
        return Grid.of(self.images[self.reference_key])

    @property
    def reference(self) -> MetaTensor:
        """The reference sequence's image (its metadata names the reference file)."""
        return self.images[self.reference_key]

    def stacked(self, keys: Sequence[str] | None = None) -> MetaTensor:
        """Sequences as channels, ``(len(keys), x, y, z)``, in the order of ``keys``.

        A key the case lacks is an all-zero channel (how the localisation networks are
        trained to see a missing sequence).
        """
        keys = list(keys or self.images)
        zeros = torch.zeros_like(self.reference.as_tensor())
        stacked = MetaTensor(torch.cat([self.images[k].as_tensor() if k in self.images else zeros for k in keys]))
        stacked.copy_meta_from(self.reference)
        return stacked


def case_sequences(case: Mapping) -> list[str]:
    """The sequence keys a case entry holds, in the entry's order."""
    return [k for k in case if k in SEQUENCE_KEYS]


def _resolve(path: os.PathLike | str, base_dir: os.PathLike | str | None) -> Path:
    path = Path(path)
    return path if path.is_absolute() or base_dir is None else Path(base_dir) / path


def load_case(
    case: Mapping,
    sequences: Sequence[str] | None = None,
    *,
    base_dir: os.PathLike | str | None = None,
    with_label: bool = True,
    label_keys: Sequence[str] = (LABEL_KEY,),
    allow_missing: bool = False,
    min_overlap: float = MIN_FOV_OVERLAP,
) -> LoadedCase:
    """Read a case's sequences (and label maps) onto the first present sequence's grid.

    Every value is either a path, read and validated by :func:`mednet.io.read_image`
    (each file once), or a ``(1, x, y, z)`` MetaTensor that was already read that way,
    taken as it is. Sequences on another grid are resampled onto the reference grid once,
    in world coordinates (label maps with nearest-neighbour interpolation).

    Args:
        case: a datalist entry: ``case_id``, a path (or image) per sequence key, optionally
            label maps under ``label_keys``.
        sequences: the sequences to load, in order; the first present one is the
            reference. None loads every sequence the entry has, in the entry's order.
        base_dir: folder that relative paths in ``case`` are relative to.
        with_label: also read the label maps the entry has under ``label_keys``.
        label_keys: keys holding label maps (the first becomes ``LoadedCase.label``).
        allow_missing: load the sequences that are there (at least one) instead of
            refusing a case that lacks some.
        min_overlap: smallest fraction of the reference field of view that another
            sequence must cover.

    Returns:
        The :class:`LoadedCase`; ``images`` holds the present sequences in the order asked for.

    Raises:
        DatalistError: the entry is not a mapping, a requested sequence is missing from it
            (or all are, with ``allow_missing``), a value is neither a path nor an image,
            or a key is another spelling of a sequence or label key (``t1ce`` for ``t1c``),
            which would otherwise be ignored without a word.
        FieldOfViewError: a sequence covers less than ``min_overlap`` of the reference.
        InvalidImageError: a file fails validation (see :func:`mednet.io.read_image`), or
            resampling it onto the reference grid would not fit in memory
            (:mod:`mednet.io.memory`).
    """
    if not isinstance(case, Mapping):
        raise DatalistError(
            f"expected a case entry (a mapping of case_id and sequence keys to paths), found {type(case).__name__}"
        )
    case_id = str(case.get("case_id", "?"))
    keys = list(sequences) if sequences is not None else case_sequences(case)
    _check_keys(case, case_id, keys, label_keys)
    present = present_sequences(case, keys)
    missing = [k for k in keys if k not in present]
    if not present or (missing and not allow_missing):
        raise DatalistError(
            f"case {case_id}: missing sequence(s) {', '.join(missing) or '(none listed)'}; "
            f"expected {', '.join(keys) or 'at least one sequence'}"
            + (" (at least one)" if allow_missing else "")
            + f", found {', '.join(case_sequences(case)) or 'none'}"
        )
    todo = [(k, ImageKind.IMAGE) for k in present[1:]]
    if with_label:
        todo += [(k, ImageKind.LABEL) for k in label_keys if _given(case.get(k))]
    read = _read_all(case, [(present[0], ImageKind.IMAGE), *todo], base_dir)
    reference = read[present[0]]
    target = Grid.of(reference)
    loaded = LoadedCase(case_id=case_id, reference_key=present[0], images={present[0]: reference}, missing=missing)
    loaded.resampling.append(_record(present[0], reference, target, resampled=False, overlap=1.0))
    for key, kind in todo:
        image = read[key]
        own = Grid.of(image)
        if own.matches(target):
            image = resample_to_grid(image, reference)  # no interpolation: takes the reference's affine
            loaded.resampling.append(_record(key, image, own, resampled=False, overlap=1.0))
        else:
            overlap = fov_overlap(own, target)
            if overlap < min_overlap:
                raise FieldOfViewError(
                    image.meta["filename_or_obj"],
                    f"field of view does not overlap the reference sequence '{present[0]}' "
                    f"({reference.meta['filename_or_obj']})",
                    expected=f"at least {min_overlap:.0%} of the reference field of view covered",
                    found=f"{overlap:.1%} covered",
                )
            check_memory(
                image.meta["filename_or_obj"],
                RESAMPLE_BYTES_PER_VOXEL * image.shape[0] * target.shape[0] * target.shape[1] * target.shape[2],
                "resample it onto that grid",
                f"the reference grid of {' x '.join(map(str, target.shape))} voxels "
                f"({reference.meta['filename_or_obj']})",
            )
            image = resample_to_grid(image, reference, label=kind is ImageKind.LABEL)
            loaded.resampling.append(
                _record(key, image, own, resampled=True, overlap=overlap, label=kind is ImageKind.LABEL)
            )
        if kind is ImageKind.LABEL:
            loaded.labels[key] = image
        else:
            loaded.images[key] = image
    return loaded


def _given(value: object) -> bool:
    """A path that is not empty, or an image."""
    return value is not None and (not isinstance(value, str | os.PathLike) or bool(str(value)))


def present_sequences(case: Mapping, keys: Sequence[str]) -> list[str]:
    """The keys of ``keys`` that ``case`` gives (a non-empty path or an image), in ``keys``' order.

    The one rule for "is this sequence there?": ``None``, ``""`` and an absent key all mean missing.
    """
    return [k for k in keys if _given(case.get(k))]


def _check_keys(case: Mapping, case_id: str, keys: Sequence[str], label_keys: Sequence[str]) -> None:
    """Refuse a key that spells a sequence or label key another way: it would be ignored without a word."""
    for key in case:
        if not isinstance(key, str) or key in keys or key in label_keys or not _given(case[key]):
            continue
        canonical = normalise_sequence_key(key)
        if canonical is not None and canonical != key:
            raise DatalistError(
                f"case {case_id}: key {key!r} is another spelling of {canonical!r}: expected mednet's key "
                f"{canonical!r} (one of {', '.join(SEQUENCE_KEYS)}, or {LABEL_KEY}), found {key!r}; rename it, "
                "or it would be ignored"
            )


#: Files of one case read at once (decompressing a ``.nii.gz`` releases the GIL).
READ_THREADS = max(1, min(4, os.cpu_count() or 1))


def _read_all(case: Mapping, jobs: Sequence[tuple[str, ImageKind]], base_dir) -> dict[str, MetaTensor]:
    """Every ``(key, kind)`` of ``jobs`` read (:func:`_read`), several files at once.

    Raises:
        The first failing key's error, in ``jobs``' order (the same error a one-by-one read gives).
    """
    if len(jobs) == 1 or READ_THREADS == 1:
        return {key: _read(case, key, base_dir, kind) for key, kind in jobs}
    with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(jobs)), thread_name_prefix="mednet-read") as pool:
        futures = [(key, pool.submit(_read, case, key, base_dir, kind)) for key, kind in jobs]
        return {key: future.result() for key, future in futures}


def _read(case: Mapping, key: str, base_dir: os.PathLike | str | None, kind: ImageKind) -> MetaTensor:
    """A path read and validated by :func:`read_image`, or an image already read that way."""
    value = case[key]
    if isinstance(value, MetaTensor):
        if value.ndim != 4 or value.shape[0] != 1:
            raise DatalistError(
                f"case {case.get('case_id', '?')}: {key}: expected a (1, x, y, z) image already read, "
                f"found shape {tuple(value.shape)}"
            )
        return value
    if not isinstance(value, str | os.PathLike):
        raise DatalistError(
            f"case {case.get('case_id', '?')}: {key}: expected a file path or an image already read, "
            f"found {type(value).__name__} {str(value)[:80]!r}"
        )
    return read_image(_resolve(value, base_dir), kind)


def _record(key: str, image: MetaTensor, own: Grid, resampled: bool, overlap: float, label: bool = False) -> dict:
    record = {
        "key": key,
        "file": str(image.meta.get("filename_or_obj", "")),
        "grid": own.describe(),
        "resampled": resampled,
        "fov_overlap": round(overlap, 4),
    }
    if resampled:
        record["interpolation"] = "nearest" if label else "trilinear"
    return record
