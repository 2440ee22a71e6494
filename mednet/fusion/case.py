"""One case's fusion, whichever the rule: what the bundles' writers and ``mednet predict`` call.

:class:`CaseFusion` takes a case's per-sequence class probabilities (already aggregated
over its slices) and, for DL-MDT, the clinicians' readings, and returns a JSON-ready
record: the fused probability per class, the fused class, the rule, its weights and
what was missing. One object, configured once per bundle, so that the bundle's
``grading.json`` and the pipeline's ``<case>.json`` cannot disagree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from mednet.fusion.dlmdt import dl_mdt
from mednet.fusion.readings import merge_readings, read_clinician_csv, reading_votes
from mednet.fusion.rules import FusionMethod, TieRule, decide, fuse
from mednet.fusion.stacking import StackingFusion

__all__ = ["CaseFusion", "datalist_readings"]


class CaseFusion:
    """Fuse one case's sequence probabilities (and readings) with a configured rule.

    Args:
        classes: class names in output order; for a binary task, negative first.
        method: a :class:`~mednet.fusion.FusionMethod` name.
        tie: a :class:`~mednet.fusion.TieRule` name.
        weights: source -> weight, for ``weighted`` and ``dl_mdt`` (DL-MDT: models and
            reader roles; default equal).
        stacking: a fitted :class:`~mednet.fusion.StackingFusion` or the path of its JSON,
            for ``stacking``.
        readers: the reader roles DL-MDT expects (e.g. ``["radiology", "radiotherapy"]``);
            a case without one of them is fused without it, weights renormalised.
        min_confidence: a call whose fused probability for the decided class is below this
            (for DL-MDT: whose weighted vote is, e.g. a 2-of-4 tie) is indeterminate; None never.
        max_ood: a call is indeterminate when any sequence's feature distance to the
            training cases (:class:`mednet.grading.FeatureOOD`, as a ratio to its threshold)
            exceeds this.

    Raises:
        ValueError: unknown method or tie rule, ``dl_mdt`` for more than two classes,
            ``weighted`` without weights.
        FileNotFoundError: ``stacking`` names a file that does not exist.
    """

    def __init__(
        self,
        classes: Sequence[str],
        method: FusionMethod | str = FusionMethod.VOTE,
        tie: TieRule | str = TieRule.POSITIVE,
        weights: Mapping[str, float] | None = None,
        stacking: StackingFusion | os.PathLike | str | None = None,
        readers: Sequence[str] = (),
        min_confidence: float | None = None,
        max_ood: float = 1.0,
    ):
        if min_confidence is not None and not 0.0 <= float(min_confidence) <= 1.0:
            raise ValueError(f"min_confidence: expected a probability in [0, 1] or None, found {min_confidence}")
        self.min_confidence = None if min_confidence is None else float(min_confidence)
        self.max_ood = float(max_ood)
        self.classes = [str(c) for c in classes]
        self.method = FusionMethod.parse(method, "fusion")
        self.tie = TieRule.parse(tie, "tie")
        self.weights = dict(weights) if weights else None
        self.readers = [str(r) for r in readers]
        if self.method == FusionMethod.DL_MDT and len(self.classes) != 2:
            raise ValueError(f"fusion 'dl_mdt' votes between two classes, found classes {self.classes}")
        if self.method == FusionMethod.WEIGHTED and not self.weights:
            raise ValueError("fusion 'weighted' needs weights: source -> weight")
        self.stacking = None
        if self.method == FusionMethod.STACKING:
            if stacking is None:
                raise ValueError("fusion 'stacking' needs a fitted model (stacking: path of its JSON)")
            self.stacking = stacking if isinstance(stacking, StackingFusion) else StackingFusion.load(stacking)
            if self.stacking.classes != self.classes:
                raise ValueError(f"stacking model classes {self.stacking.classes} differ from {self.classes}")

    def _columns(self, branches: Mapping[str, Sequence[float]]) -> dict[str, torch.Tensor]:
        """Map each source to ``(1, C')``: the positive column for a binary task, else every class."""
        out = {}
        for name, p in branches.items():
            row = np.asarray(p, dtype=np.float32).reshape(1, -1)
            if row.shape[1] != len(self.classes):
                raise ValueError(f"branch {name!r}: {row.shape[1]} probabilities for {len(self.classes)} classes")
            out[name] = torch.from_numpy(row[:, 1:] if len(self.classes) == 2 else row)
        return out

    def _as_classes(self, fused: torch.Tensor) -> dict[str, float]:
        values = fused.reshape(-1).tolist()
        if len(self.classes) == 2 and len(values) == 1:
            values = [1.0 - values[0], values[0]]
        return dict(zip(self.classes, map(float, values), strict=True))

    def _fuse(
        self, branches: Mapping[str, Sequence[float]], readings: Mapping[str, object] | None = None
    ) -> dict[str, object]:
        """Fuse one case (the rule alone; :meth:`__call__` adds whether the call is certain enough).

        Args:
            branches: sequence -> its ``C`` class probabilities (summing to 1).
            readings: reader role -> reading (class name, 1/0, or missing); used by DL-MDT.

        Returns:
            ``{"method", "tie", "fused": {class: p}, "fused_class", "weights", "readings",
            "missing", "renormalised", "note"}``. For ``vote`` the fused probabilities are
            the mean of the branches' (a vote has no probability) and ``vote_fraction``
            holds the votes; for ``dl_mdt`` the positive class's fused value is the
            weighted vote ``R`` and ``votes`` each source's vote.
        """
        columns = self._columns(branches)
        record: dict[str, object] = {"method": self.method.value, "tie": self.tie.value, "weights": None,
                                     "readings": dict(readings or {}), "missing": [], "renormalised": False,
                                     "note": ""}  # fmt: skip
        if self.method == FusionMethod.DL_MDT:
            given = dict(readings or {})
            votes = reading_votes({r: given.get(r) for r in [*self.readers, *given]}, self.classes)
            positive = {name: float(p[0, 0]) for name, p in columns.items()}
            result = dl_mdt(positive, votes, self.weights)
            record.update(fused=self._as_classes(torch.tensor([[result.score]])),
                          fused_class=self.classes[int(result.positive)], weights=result.weights,
                          votes=result.votes, missing=result.missing, renormalised=result.renormalised)  # fmt: skip
            if result.missing:
                record["note"] = (f"no vote from {', '.join(result.missing)}: the other sources' weights were "
                                  "renormalised to sum to 1")  # fmt: skip
            return record
        if self.method == FusionMethod.STACKING:
            fused = self.stacking.predict_proba(columns)
            decided = int(decide(fused, self.tie)[0])
            record.update(fused=self._as_classes(fused), fused_class=self.classes[decided],
                          weights=self.stacking.coefficients())  # fmt: skip
            return record
        if self.method == FusionMethod.VOTE:
            fraction, decided = fuse(columns, FusionMethod.VOTE, self.tie)
            mean = fuse(columns, FusionMethod.MEAN, self.tie)[0]
            record.update(fused=self._as_classes(mean), fused_class=self.classes[int(decided[0])],
                          vote_fraction=self._as_classes(fraction))  # fmt: skip
            return record
        fused, decided = fuse(columns, self.method, self.tie, self.weights)
        weights = {name: self.weights[name] for name in columns} if self.weights else None
        record.update(fused=self._as_classes(fused), fused_class=self.classes[int(decided[0])], weights=weights)
        return record


    def __call__(
        self,
        branches: Mapping[str, Sequence[float]],
        readings: Mapping[str, object] | None = None,
        ood: Mapping[str, float] | None = None,
    ) -> dict[str, object]:
        """Fuse one case and say whether the call stands or is indeterminate.

        Args:
            branches: sequence -> its ``C`` class probabilities (summing to 1).
            readings: reader role -> reading (class name, 1/0, or missing); used by DL-MDT.
            ood: sequence -> feature distance ratio (:meth:`mednet.grading.FeatureOOD.ratios`).

        Returns:
            The rule's record (see :meth:`_fuse`: ``fused``, ``fused_class``, ...) with
            ``call`` (the fused class, or ``"indeterminate"``), ``indeterminate``,
            ``confidence`` (the fused probability of the decided class), ``ood`` and
            ``reasons`` (why a call is indeterminate, with the numbers).
        """
        record = self._fuse(branches, readings)
        confidence = float(record["fused"][record["fused_class"]])
        reasons = []
        if self.min_confidence is not None and confidence < self.min_confidence:
            what = "weighted vote" if self.method == FusionMethod.DL_MDT else "fused probability"
            reasons.append(f"{what} for {record['fused_class']} is {confidence:.2f}, below {self.min_confidence:.2f}")
        far = {name: ratio for name, ratio in (ood or {}).items() if ratio > self.max_ood}
        if far:
            detail = ", ".join(f"{name} at {ratio:.1f}x" for name, ratio in far.items())
            reasons.append(f"unlike the training cases: feature distance above the fitted threshold ({detail})")
        record.update(call="indeterminate" if reasons else record["fused_class"], indeterminate=bool(reasons),
                      confidence=round(confidence, 4), ood=dict(ood or {}), reasons=reasons)  # fmt: skip
        return record

def datalist_readings(
    datalist: os.PathLike | str,
    partition: str,
    clinicians_csv: os.PathLike | str | None = None,
    slice_split: bool = False,
) -> dict[str, dict[str, str]]:
    """``case_id -> {role: reading}`` for a partition.

    The cases' ``clinicians`` entries, overridden role by role by a readings CSV when one is
    given. ``slice_split``: as :func:`mednet.io.datalist_cases` (the papers' split, for the
    inflation benchmark only).
    """
    from mednet.io import datalist_cases

    extra = read_clinician_csv(clinicians_csv) if clinicians_csv else {}
    cases = datalist_cases(datalist, partition, slice_split=slice_split)
    return {str(case["case_id"]): merge_readings(case, extra) for case in cases}
