"""A single-tensor view of a multi-sequence classifier, for MONAI's bundle tools and TorchScript.

A :class:`~mednet.networks.MultiSequenceClassifier` takes a dict of sequences and returns a
dict (per-branch logits and probabilities): right for training and for the
bundle's writer, but MONAI's ``verify_net_in_out`` and ``ckpt_export`` (and any tool that
feeds a network one tensor, such as MONAI Label or a TorchScript runtime) need one tensor in
and one tensor out. :class:`StackedClassifier` is that view over the same branch modules:
the sequences stacked on the channel axis in branch order, the branches' probabilities
concatenated in the same order. It holds the branches under the same names, so a bundle's
``models/model.pt`` loads into it unchanged, and it is scriptable with ``torch.jit.script``.

Fusion is not part of it: vote and mean fusion of its output columns are one line each, and
the other rules (DL-MDT with readers, weighted, stacking) need data beyond the images; the
bundle applies them in :class:`mednet.fusion.CaseFusion`.
"""

# no `from __future__ import annotations` here: TorchScript reads the Final[...] annotations
from typing import Final, Optional

import torch
from torch import nn

from mednet.networks.multisequence import MultiSequenceClassifier
from mednet.networks.probabilities import branch_probabilities

__all__ = ["StackedClassifier"]


class StackedClassifier(nn.Module):
    """One tensor in, per-sequence probabilities out, over a :class:`MultiSequenceClassifier`'s branches.

    Args:
        classifier: the multi-sequence classifier (its branches are shared, not copied).
        in_channels: channels of each sequence's input (1, or 3 for ImageNet-style branches).

    Input: ``image`` ``(B, S * in_channels, *spatial)``, the ``S`` sequences in branch order
    (``classifier.sequences``), and ``features`` ``(B, n_features)`` when the branches take
    the lesion table's features (:class:`~mednet.networks.WithFeatures`), else nothing.

    Output: ``(B, S * C)``: for each sequence in branch order its ``C`` probabilities
    (sigmoid of a single logit, ``C == 1``; softmax over ``C >= 2`` classes).
    """

    with_features: Final[bool]
    in_channels: Final[int]
    n_sequences: Final[int]

    def __init__(self, classifier: MultiSequenceClassifier, in_channels: int):
        super().__init__()
        if not isinstance(classifier, MultiSequenceClassifier):
            raise TypeError(f"classifier: expected a MultiSequenceClassifier, found {type(classifier).__name__}")
        if int(in_channels) < 1:
            raise ValueError(f"in_channels: expected >= 1, found {in_channels}")
        self.branches = classifier.branches  # same modules and parameter names: checkpoints load unchanged
        self.with_features = bool(classifier.extra_inputs)
        self.in_channels = int(in_channels)
        self.n_sequences = len(self.branches)

    def forward(self, image: torch.Tensor, features: Optional[torch.Tensor] = None) -> torch.Tensor:  # noqa: UP045 (TorchScript)
        """``(B, S * in_channels, *spatial)`` [, ``(B, n_features)``] -> ``(B, S * C)`` probabilities."""
        if not torch.jit.is_scripting() and features is not None and not isinstance(features, torch.Tensor):
            features = torch.as_tensor(features, dtype=image.dtype, device=image.device)  # e.g. a list from the CLI
        expected = self.n_sequences * self.in_channels
        if image.shape[1] != expected:
            raise ValueError(
                f"image: expected {expected} channels ({self.n_sequences} sequences x {self.in_channels}), "
                f"found {image.shape[1]}"
            )
        outputs: list[torch.Tensor] = []
        start = 0
        for branch in self.branches.values():
            x = image[:, start : start + self.in_channels]
            start += self.in_channels
            if self.with_features:
                if features is None:
                    raise ValueError("features: these branches take the lesion table's features, none given")
                logits = branch(x, features)
            else:
                logits = branch(x)
            outputs.append(branch_probabilities(logits))
        return torch.cat(outputs, dim=1)
