"""One independent classifier per MRI sequence, and a late fusion of their decisions.

Papers A and B (SEEDS) train one model per sequence (s-VGG-T1 / s-VGG-T2; GoogLeNet on
T1, T2 and FLAIR) and fuse the per-sequence decisions by voting. This module holds the
branches together: no weights are shared between sequences, each branch has its own
loss, and the fused decision is a majority vote (or the mean probability).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from mednet.fusion.rules import FusionMethod, TieRule, fuse
from mednet.networks.probabilities import branch_probabilities
from mednet.options import choose

__all__ = ["FUSIONS", "TIE_RULES", "MultiSequenceClassifier"]

#: Fusion rules a :class:`MultiSequenceClassifier` applies itself (those that need only the
#: branches' probabilities; DL-MDT, weighted and stacking are applied per case by
#: :class:`mednet.fusion.CaseFusion`).
FUSIONS = (FusionMethod.VOTE.value, FusionMethod.MEAN.value)
#: Tie rules understood by :class:`MultiSequenceClassifier`.
TIE_RULES = tuple(t.value for t in TieRule)


class MultiSequenceClassifier(nn.Module):
    """Independent per-sequence classifiers with a late fusion of their outputs.

    Each sequence (e.g. ``"t1"``, ``"t2"``, ``"flair"``) has its own branch, an arbitrary
    classifier mapping ``(B, in_channels, *spatial)`` to ``(B, C)`` logits. The branches
    are held in an :class:`torch.nn.ModuleDict` and must not share any parameter.

    Fusion (until a trained fusion module exists):

    - ``"vote"`` (papers A and B): each branch votes for one class: with a single-logit
      branch (``C == 1``, sigmoid) the vote is 1 when ``p >= 0.5`` (paper A's rule), else
      0; with ``C >= 2`` (softmax) the vote is the arg-max class. ``fused`` holds the
      fraction of votes per class and ``fused_class`` the class with most votes.
    - ``"mean"``: ``fused`` is the mean of the branches' probabilities; ``fused_class`` is
      1 when the mean is ``>= 0.5`` (``C == 1``) or the arg-max class (``C >= 2``).

    Ties (e.g. 1 of 2 votes, 2 of 4, or a mean of exactly 0.5) follow ``tie``:
    ``"positive"`` resolves to class 1 (paper A's DL-MDT, where 2 of 4 votes means
    acoustic neuroma), ``"negative"`` to class 0. With ``C > 2`` classes tied for the most
    votes, ``"positive"`` takes the highest tied class index and ``"negative"`` the lowest.

    Args:
        branches: sequence name -> classifier; at least one.
        fusion: ``"vote"`` or ``"mean"``.
        tie: ``"positive"`` or ``"negative"``.
        extra_inputs: input names passed to every branch after its sequence (e.g.
            ``["features"]`` for :class:`~mednet.networks.WithFeatures` branches that also
            take the lesion table's features).

    Raises:
        ValueError: no branch, an unknown fusion or tie rule, or branches sharing parameters.
    """

    def __init__(
        self,
        branches: Mapping[str, nn.Module],
        fusion: str = "vote",
        tie: str = "positive",
        extra_inputs: Sequence[str] = (),
    ):
        super().__init__()
        if not branches:
            raise ValueError("branches: expected at least one sequence -> classifier entry, found none")
        fusion = choose(fusion, FUSIONS, "fusion")
        tie = choose(tie, TIE_RULES, "tie")
        owner: dict[int, str] = {}
        for name, branch in branches.items():
            for parameter in branch.parameters():
                other = owner.setdefault(id(parameter), name)
                if other != name:
                    raise ValueError(
                        f"branches {other!r} and {name!r} share parameters: each sequence needs its own model"
                    )
        self.branches = nn.ModuleDict(dict(branches))
        self.fusion = fusion
        self.tie = tie
        self.extra_inputs = tuple(extra_inputs)

    @property
    def sequences(self) -> tuple[str, ...]:
        """The sequence names, in branch order."""
        return tuple(self.branches.keys())

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, object]:
        """Run every branch on its sequence and fuse.

        Args:
            inputs: sequence name -> ``(B, in_channels, *spatial)``; keys that are not
                branch names (e.g. ``"label"`` in a batch dict) are ignored.

        Returns:
            ``{"logits": {seq: (B, C)}, "probabilities": {seq: (B, C)}, "fused": (B, C),
            "fused_class": (B,)}``: probabilities are ``(B, 1)`` sigmoids for single-logit
            branches and softmaxes otherwise; ``fused`` are vote fractions (``"vote"``) or
            mean probabilities (``"mean"``) with the branches' width ``C``; ``fused_class``
            is an int64 class index (0/1 for single-logit branches).

        Raises:
            KeyError: a branch's sequence is missing from ``inputs``.
            ValueError: branches disagree on ``C`` or on the batch size.
        """
        missing = [name for name in (*self.branches, *self.extra_inputs) if name not in inputs]
        if missing:
            raise KeyError(f"inputs: missing {missing}; expected {[*self.branches, *self.extra_inputs]}")
        extra = [inputs[name] for name in self.extra_inputs]
        logits = {name: branch(inputs[name], *extra) for name, branch in self.branches.items()}
        shapes = {name: tuple(value.shape) for name, value in logits.items()}
        if len(set(shapes.values())) != 1 or any(len(s) != 2 for s in shapes.values()):
            raise ValueError(f"branches must all return (B, C) logits of one shape, found {shapes}")
        probabilities = {name: branch_probabilities(value) for name, value in logits.items()}
        fused, fused_class = self.fuse(probabilities)
        return {"logits": logits, "probabilities": probabilities, "fused": fused, "fused_class": fused_class}

    def fuse(self, probabilities: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse per-branch probabilities with this model's fusion and tie rules (:mod:`mednet.fusion`).

        Args:
            probabilities: sequence name -> ``(B, C)`` probabilities (``(B, 1)`` sigmoid for binary).

        Returns:
            ``(fused, fused_class)``: ``(B, C)`` vote fractions or mean probabilities, and the
            ``(B,)`` int64 decided class.
        """
        fused, decided = fuse(probabilities, self.fusion, self.tie)
        device = next(iter(probabilities.values())).device
        return fused.to(device), decided.to(device)

    def loss(
        self,
        outputs: Mapping[str, object],
        target: torch.Tensor | Mapping[str, torch.Tensor],
        criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One loss per branch, and their sum for the backward pass.

        Args:
            outputs: what :meth:`forward` returned (its ``"logits"`` are used).
            target: ``(B,)`` class indices shared by all branches, or sequence name -> target.
                For single-logit branches a ``(B,)`` target is reshaped to ``(B, 1)`` and cast
                to the logits' dtype, as ``BCEWithLogitsLoss`` needs.
            criterion: ``loss(logits, target)``; default ``BCEWithLogitsLoss`` for
                single-logit branches, ``CrossEntropyLoss`` otherwise.

        Returns:
            ``(total, {seq: loss})``: the scalar sum and each branch's scalar loss.
        """
        logits: Mapping[str, torch.Tensor] = outputs["logits"]  # type: ignore[assignment]
        losses: dict[str, torch.Tensor] = {}
        for name in self.branches:
            branch_logits = logits[name]
            branch_target = target[name] if isinstance(target, Mapping) else target
            binary = branch_logits.shape[1] == 1
            if binary and branch_target.ndim == 1:
                branch_target = branch_target[:, None].to(branch_logits.dtype)
            loss_fn = criterion or (
                nn.functional.binary_cross_entropy_with_logits if binary else nn.functional.cross_entropy
            )
            losses[name] = loss_fn(branch_logits, branch_target)
        total = torch.stack(list(losses.values())).sum()
        return total, losses
