"""One independent classifier per MRI sequence, held together in one module.

Papers A and B (SEEDS) train one model per sequence (s-VGG-T1 / s-VGG-T2; GoogLeNet on
T1, T2 and FLAIR) and fuse the per-sequence decisions. This module holds the branches
together: no weights are shared between sequences and each branch has its own loss. It
returns each branch's logits and probabilities, nothing else: the case's fusion (vote,
mean, DL-MDT, ...) is one call of :class:`mednet.fusion.CaseFusion` after the slices are
aggregated (:func:`mednet.grading.grade_case`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from mednet.networks.probabilities import branch_probabilities

__all__ = ["MultiSequenceClassifier"]


class MultiSequenceClassifier(nn.Module):
    """Independent per-sequence classifiers.

    Each sequence (e.g. ``"t1"``, ``"t2"``, ``"flair"``) has its own branch, an arbitrary
    classifier mapping ``(B, in_channels, *spatial)`` to ``(B, C)`` logits. The branches
    are held in an :class:`torch.nn.ModuleDict` and must not share any parameter.

    Args:
        branches: sequence name -> classifier; at least one.
        extra_inputs: input names passed to every branch after its sequence (e.g.
            ``["features"]`` for :class:`~mednet.networks.WithFeatures` branches that also
            take the lesion table's features).

    Raises:
        ValueError: no branch, or branches sharing parameters.
    """

    def __init__(self, branches: Mapping[str, nn.Module], extra_inputs: Sequence[str] = ()):
        super().__init__()
        if not branches:
            raise ValueError("branches: expected at least one sequence -> classifier entry, found none")
        owner: dict[int, str] = {}
        for name, branch in branches.items():
            for parameter in branch.parameters():
                other = owner.setdefault(id(parameter), name)
                if other != name:
                    raise ValueError(
                        f"branches {other!r} and {name!r} share parameters: each sequence needs its own model"
                    )
        self.branches = nn.ModuleDict(dict(branches))
        self.extra_inputs = tuple(extra_inputs)

    @property
    def sequences(self) -> tuple[str, ...]:
        """The sequence names, in branch order."""
        return tuple(self.branches.keys())

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
        """Run each branch whose sequence is in ``inputs``.

        Args:
            inputs: sequence name -> ``(B, in_channels, *spatial)``, for one or more of the
                branches (a case lacking a sequence is graded by the others); keys that are
                not branch names (e.g. ``"label"`` in a batch dict) are ignored.

        Returns:
            ``{"logits": {seq: (B, C)}, "probabilities": {seq: (B, C)}}`` for the sequences
            given: ``(B, 1)`` sigmoids for single-logit branches, softmaxes otherwise.

        Raises:
            KeyError: none of the branches' sequences, or an extra input, is in ``inputs``.
            ValueError: branches disagree on ``C`` or on the batch size.
        """
        present = [name for name in self.branches if name in inputs]
        missing = [name for name in self.extra_inputs if name not in inputs]
        if not present or missing:
            raise KeyError(f"inputs: expected one or more of {list(self.branches)} and {list(self.extra_inputs)}; "
                           f"found {sorted(map(str, inputs))}")  # fmt: skip
        extra = [inputs[name] for name in self.extra_inputs]
        logits = {name: self.branches[name](inputs[name], *extra) for name in present}
        shapes = {name: tuple(value.shape) for name, value in logits.items()}
        if len(set(shapes.values())) != 1 or any(len(s) != 2 for s in shapes.values()):
            raise ValueError(f"branches must all return (B, C) logits of one shape, found {shapes}")
        return {"logits": logits, "probabilities": {name: branch_probabilities(v) for name, v in logits.items()}}

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
