"""A classifier that sees the lesion image and the lesion table's features together."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["WithFeatures"]


class WithFeatures(nn.Module):
    """An image classifier's output joined with a feature vector, then a small head.

    ``backbone`` maps ``(B, C, *spatial)`` to ``(B, embedding)`` (any classifier built with
    ``num_classes=embedding``); its output, passed through ReLU, is concatenated with the
    ``(B, n_features)`` features, standardised by a BatchNorm (so that a feature of small
    range, such as a metastasis count of 0.1, weighs as much as the image's embedding from
    the first step), and a two-layer head gives ``(B, num_classes)`` logits.
    Used by the neuroblastoma staging bundle, where the image shows the primary tumour
    (L1 vs L2) and the features count distant lesions (M).

    Args:
        backbone: the image network.
        embedding: its output width.
        n_features: features per case (e.g. ``len(mednet.grading.FEATURE_NAMES)``).
        num_classes: output logits.
        hidden: the head's hidden width.
        dropout: dropout before the last layer.
    """

    def __init__(
        self,
        backbone: nn.Module,
        embedding: int,
        n_features: int,
        num_classes: int,
        hidden: int = 32,
        dropout: float = 0.25,
    ):
        super().__init__()
        self.backbone = backbone
        self.n_features = int(n_features)
        self.features_norm = nn.BatchNorm1d(self.n_features)
        self.head = nn.Sequential(
            nn.Linear(embedding + n_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )  # fmt: skip

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """``(B, C, *spatial)``, ``(B, n_features)`` -> ``(B, num_classes)`` logits."""
        features = features.reshape(features.shape[0], -1).to(image.dtype)
        if features.shape[1] != self.n_features:
            raise ValueError(f"features: expected {self.n_features} per case, found {features.shape[1]}")
        embedded = torch.relu(self.backbone(image))
        return self.head(torch.cat([embedded, self.features_norm(features)], dim=1))
