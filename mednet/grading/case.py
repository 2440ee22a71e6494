"""One case's grading, from its slices' probabilities: the one place where they become a diagnosis.

A grading network scores each selected slice of each sequence; :func:`grade_case`
aggregates each sequence's slices into one probability per class
(:func:`mednet.grading.aggregate`) and fuses the sequences (and any clinicians'
readings) with the bundle's :class:`mednet.fusion.CaseFusion`. The bundles' writer
(:class:`mednet.engines.GradingWriter`) and the prediction engine
(:class:`mednet.inference.GradingPredictor`) both call it. The feature-distance check
(``ood.json``, :mod:`mednet.grading.ood`) runs in both, when the weights have one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from mednet.fusion.case import CaseFusion
from mednet.grading.aggregate import aggregate

__all__ = ["CaseGrading", "class_probabilities", "grade_case"]


@dataclass
class CaseGrading:
    """A case's grading and fusion.

    Attributes:
        sequences: sequence -> class -> probability, aggregated over the case's slices.
        slices: slices graded per sequence.
        aggregation: how slices were aggregated.
        fused: class -> fused probability (for a vote: the mean of the sequences').
        fused_class: the class the fusion rule decides.
        fusion: the rest of the fusion's record (rule, weights, votes, readings, missing
            sources, and ``call``: the fused class or ``"indeterminate"``, with the reasons).
        slice_rows: per slice: ``slice_index`` and sequence -> class probabilities (secondary).
    """

    sequences: dict[str, dict[str, float]]
    slices: int
    aggregation: str
    fused: dict[str, float]
    fused_class: str
    fusion: dict
    slice_rows: list[dict] = field(default_factory=list)

    @property
    def call(self) -> str:
        """What the report shows: the fused class, or ``"indeterminate"`` when the fusion is unsure."""
        return str(self.fusion.get("call", self.fused_class))

    def to_json(self) -> dict:
        """JSON-ready, without the slice rows (written to their own CSV)."""
        record = asdict(self)
        record.pop("slice_rows")
        return record


def class_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """``(N, 1)`` sigmoid probabilities -> ``(N, 2)`` ``[1 - p, p]``; ``(N, C)`` unchanged."""
    p = np.asarray(probabilities, dtype=float)
    return np.concatenate([1 - p, p], axis=1) if p.ndim == 2 and p.shape[1] == 1 else p


def grade_case(
    slice_probabilities: Mapping[str, np.ndarray],
    classes: Sequence[str],
    aggregation: str,
    fusion: CaseFusion,
    readings: Mapping[str, object] | None = None,
    slice_index: Sequence[int] | None = None,
    ood: Mapping[str, float] | None = None,
) -> CaseGrading:
    """Aggregate each sequence's slices and fuse the sequences.

    Args:
        slice_probabilities: sequence -> ``(N, C)`` class probabilities of its ``N`` slices
            (``(N, 1)`` sigmoids are taken as the positive class); only the sequences the
            case has (a missing sequence is simply absent: the others decide).
        classes: the class names, in output order.
        aggregation: see :func:`mednet.grading.aggregate`.
        fusion: the bundle's case fusion.
        readings: reader role -> reading, for DL-MDT.
        slice_index: each slice's ``z`` in the volume, for the slice rows.
        ood: sequence -> feature distance ratio to the training cases (see
            :class:`mednet.grading.FeatureOOD`); the fusion calls a far case indeterminate.

    Returns:
        The :class:`CaseGrading`.

    Raises:
        ValueError: no sequence, or sequences with different slice counts.
    """
    if not slice_probabilities:
        raise ValueError("grade_case: no sequence's probabilities to grade")
    per_slice = {name: class_probabilities(p) for name, p in slice_probabilities.items()}
    counts = {name: len(p) for name, p in per_slice.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"grade_case: the sequences have different slice counts {counts}")
    branches = {name: np.asarray(aggregate(p, aggregation)).reshape(-1) for name, p in per_slice.items()}
    record = fusion(branches, readings, ood)
    n = next(iter(counts.values()))
    index = list(slice_index) if slice_index is not None else list(range(n))
    rows = [{"slice_index": int(index[i]), **{name: p[i].tolist() for name, p in per_slice.items()}} for i in range(n)]
    return CaseGrading(
        sequences={name: dict(zip(classes, map(float, p), strict=True)) for name, p in branches.items()},
        slices=n, aggregation=aggregation, fused=record.pop("fused"), fused_class=record.pop("fused_class"),
        fusion=record, slice_rows=rows,
    )  # fmt: skip
