"""Late fusion of per-sequence probabilities: majority vote, mean, weighted average.

Every rule takes one ``(B, C)`` tensor of probabilities per source (a sequence's
classifier, e.g. ``{"t1": ..., "t2": ..., "flair": ...}``) and returns ``(fused,
decided)``: ``(B, C)`` fused scores and the ``(B,)`` int64 decided class.

Shape convention for a binary task: ``C == 1`` holds the probability of the positive
class (class index 1, a sigmoid output); ``decided`` is then 0 or 1. With ``C >= 2``
each column is one class (softmax outputs) and ``decided`` is a column index.

Ties: a majority vote can tie (1 of 2 votes, 2 of 4, or two classes with equally many
votes), and so can a mean of exactly 0.5. :class:`TieRule` settles them: ``"positive"``
resolves to class 1 (paper A's DL-MDT: 2 votes of 4 mean acoustic neuroma), or among
several classes tied for the most votes to the highest index; ``"negative"`` to class 0
or the lowest tied index. Votes are counted as integers so that ties are exact.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from mednet.options import Option

__all__ = ["FusionMethod", "TieRule", "decide", "fuse", "majority_vote", "mean_probability", "weighted_average"]


class FusionMethod(Option):
    """Fusion rules.

    ``vote``, ``mean``, ``weighted``, ``dl_mdt`` (:func:`mednet.fusion.dl_mdt`),
    ``stacking`` (:class:`mednet.fusion.StackingFusion`).
    """

    VOTE = "vote"
    MEAN = "mean"
    WEIGHTED = "weighted"
    DL_MDT = "dl_mdt"
    STACKING = "stacking"


class TieRule(Option):
    """How a tie is settled: ``positive`` (class 1 / highest tied index) or ``negative``."""

    POSITIVE = "positive"
    NEGATIVE = "negative"


def _stack(probabilities: Mapping[str, torch.Tensor | np.ndarray]) -> torch.Tensor:
    """Stack source -> ``(B, C)`` into ``(N, B, C)`` float tensor, with clear errors."""
    if not probabilities:
        raise ValueError("fusion needs at least one source's probabilities, found none")
    tensors = {name: torch.as_tensor(p, dtype=torch.float32) for name, p in probabilities.items()}
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) != 1 or any(len(s) != 2 for s in shapes.values()):
        raise ValueError(f"fusion: every source needs (B, C) probabilities of one shape, found {shapes}")
    stacked = torch.stack(list(tensors.values()))
    if not torch.isfinite(stacked).all() or stacked.min() < 0 or stacked.max() > 1:
        raise ValueError("fusion: probabilities must be finite and within [0, 1]")
    return stacked


def _argmax_with_ties(scores: torch.Tensor, tie: TieRule) -> torch.Tensor:
    """``(B, C)`` -> ``(B,)``: the best class; ties to the highest (positive) or lowest index."""
    best = scores == scores.max(dim=1, keepdim=True).values
    index = torch.arange(scores.shape[1], device=scores.device).expand_as(scores)
    if tie == TieRule.POSITIVE:
        return torch.where(best, index, -1).max(dim=1).values
    return torch.where(best, index, scores.shape[1]).min(dim=1).values


def decide(fused: torch.Tensor, tie: TieRule | str = TieRule.POSITIVE) -> torch.Tensor:
    """The ``(B,)`` int64 class of ``(B, C)`` fused probabilities.

    ``p >= 0.5`` for ``C == 1`` (exactly 0.5 is a tie), else the arg-max class; ties settled by ``tie``.
    """
    tie = TieRule.parse(tie, "tie")
    fused = torch.as_tensor(fused)
    if fused.shape[1] == 1:
        p = fused[:, 0]
        return (p >= 0.5 if tie == TieRule.POSITIVE else p > 0.5).long()
    return _argmax_with_ties(fused, tie)


def majority_vote(
    probabilities: Mapping[str, torch.Tensor | np.ndarray], tie: TieRule | str = TieRule.POSITIVE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each source votes for one class; the class with most votes wins (papers A and B).

    A single-column source votes 1 when ``p >= 0.5`` (paper A's rule), else 0; a softmax
    source votes for its arg-max class.

    Args:
        probabilities: source -> ``(B, C)`` probabilities.
        tie: rule for tied votes (see the module docstring).

    Returns:
        ``(fractions, decided)``: ``(B, C)`` fraction of the votes per class (``C == 1``:
        the fraction of positive votes) and the ``(B,)`` decided class.
    """
    tie = TieRule.parse(tie, "tie")
    stacked = _stack(probabilities)
    n_sources, _, n_classes = stacked.shape
    if n_classes == 1:
        positive = (stacked[..., 0] >= 0.5).sum(dim=0)  # (B,)
        twice = 2 * positive
        decided = twice >= n_sources if tie == TieRule.POSITIVE else twice > n_sources
        return (positive.float() / n_sources)[:, None], decided.long()
    votes = torch.nn.functional.one_hot(stacked.argmax(dim=2), n_classes).sum(dim=0)  # (B, C)
    return votes.float() / n_sources, _argmax_with_ties(votes, tie)


def weighted_average(
    probabilities: Mapping[str, torch.Tensor | np.ndarray],
    weights: Mapping[str, float],
    tie: TieRule | str = TieRule.POSITIVE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The weighted mean of the sources' probabilities, weights renormalised over the sources given.

    Args:
        probabilities: source -> ``(B, C)`` probabilities.
        weights: source -> non-negative weight; every source needs one (extra names, e.g. of
            a sequence this case lacks, are ignored and the rest renormalised).
        tie: rule for a fused value of exactly 0.5 or equal class scores.

    Returns:
        ``(fused, decided)``: ``(B, C)`` weighted mean probabilities and the ``(B,)`` class.

    Raises:
        ValueError: a source without weight, a negative weight, or weights summing to 0.
    """
    missing = [name for name in probabilities if name not in weights]
    if missing:
        raise ValueError(f"weighted fusion: no weight for {missing}; weights given for {sorted(weights)}")
    w = torch.tensor([float(weights[name]) for name in probabilities])
    if (w < 0).any() or not torch.isfinite(w).all() or w.sum() <= 0:
        raise ValueError(f"weighted fusion: weights must be finite, >= 0 and not all 0, found {dict(weights)}")
    stacked = _stack(probabilities)
    fused = (stacked * (w / w.sum())[:, None, None]).sum(dim=0)
    return fused, decide(fused, tie)


def mean_probability(
    probabilities: Mapping[str, torch.Tensor | np.ndarray], tie: TieRule | str = TieRule.POSITIVE
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean of the sources' probabilities (:func:`weighted_average` with equal weights)."""
    return weighted_average(probabilities, dict.fromkeys(probabilities, 1.0), tie)


def fuse(
    probabilities: Mapping[str, torch.Tensor | np.ndarray],
    method: FusionMethod | str = FusionMethod.VOTE,
    tie: TieRule | str = TieRule.POSITIVE,
    weights: Mapping[str, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fuse with a rule chosen by name: ``vote``, ``mean`` or ``weighted`` (needs ``weights``).

    ``dl_mdt`` (which also takes clinicians' readings, per case) and ``stacking`` (which
    needs a fitted model) have their own entry points: :func:`mednet.fusion.dl_mdt`,
    :class:`mednet.fusion.StackingFusion`.

    Raises:
        ValueError: an unknown method or tie rule (with the closest name), ``weighted``
            without weights, or a method that needs more than probabilities.
    """
    method = FusionMethod.parse(method, "fusion")
    if method == FusionMethod.VOTE:
        return majority_vote(probabilities, tie)
    if method == FusionMethod.MEAN:
        return mean_probability(probabilities, tie)
    if method == FusionMethod.WEIGHTED:
        if weights is None:
            raise ValueError("fusion 'weighted' needs weights: source -> weight")
        return weighted_average(probabilities, weights, tie)
    raise ValueError(
        f"fusion {method.value!r} needs more than the probabilities: use mednet.fusion."
        + ("dl_mdt (with the clinicians' readings)" if method == FusionMethod.DL_MDT else "StackingFusion (fitted)")
    )
