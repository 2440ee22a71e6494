"""Logits to probabilities, one rule for every classifier: sigmoid for one output, softmax otherwise."""

from __future__ import annotations

import torch

__all__ = ["ProbabilityMixin", "branch_probabilities"]


def branch_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Probabilities of a classifier's logits.

    Args:
        logits: ``(B, C)``.

    Returns:
        ``(B, 1)`` sigmoid when ``C == 1`` (probability of the positive class), else
        ``(B, C)`` softmax over the classes.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits: expected shape (B, C), found {list(logits.shape)}")
    return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)


class ProbabilityMixin:
    """``predict_proba`` for an ``nn.Module`` whose ``forward`` returns ``(B, C)`` logits."""

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities (:func:`branch_probabilities`), computed in eval mode; the training mode is restored.

        Args:
            x: ``(B, in_channels, *spatial)``.

        Returns:
            ``(B, 1)`` sigmoid probabilities of the positive class for one output, else
            ``(B, C)`` softmax probabilities.
        """
        was_training = self.training
        self.eval()
        try:
            logits = self(x)
        finally:
            self.train(was_training)
        return branch_probabilities(logits)
