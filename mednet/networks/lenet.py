"""The improved LeNet-5 of the neuroblastoma paper's lesion stage (SEEDS section C).

LeNet-5 with ReLU instead of the original scaled tanh, dropout in the fully connected
part and a softmax output. The network returns **logits**; the softmax is applied by
:meth:`LeNet5.predict_proba` or by the caller (``CrossEntropyLoss`` takes logits).
"""

from __future__ import annotations

import torch
from torch import nn

from mednet.networks.probabilities import ProbabilityMixin

__all__ = ["LeNet5"]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_ADAPTIVE = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}

#: Side of the feature maps entering the fully connected layers (LeNet-5's 5x5 S4 maps).
POOLED_SIZE = 5


class LeNet5(ProbabilityMixin, nn.Module):
    """LeNet-5 with ReLU activations and dropout, for 2D slices or 3D volumes.

    Layout (LeNet-5's C1 S2 C3 S4 C5 F6 OUTPUT)::

        C1 Conv 5x5 (in_channels -> 6) -> ReLU -> S2 MaxPool 2x2
        C3 Conv 5x5 (6 -> 16)          -> ReLU -> S4 MaxPool 2x2
        adaptive average pooling to 5 per side (so any input of at least 16 per side works)
        flatten -> C5 Linear(16 * 5**spatial_dims, 120) -> ReLU -> Dropout
                -> F6 Linear(120, 84) -> ReLU -> Dropout
                -> OUTPUT Linear(84, out_channels)

    On the classic 32x32 input the S4 maps are already 5x5, so the adaptive pooling is
    the identity and C5 is exactly LeNet-5's 5x5 convolution to 120 maps.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: classes (e.g. lesion stages).
        dropout: dropout probability after C5 and F6.

    Shapes:
        input ``(B, in_channels, *spatial)`` with every spatial side >= 16, output
        ``(B, out_channels)`` logits.

    Raises:
        ValueError: invalid ``spatial_dims``, sizes or dropout.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, dropout: float = 0.5):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims: expected 2 or 3, found {spatial_dims!r}")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"in_channels and out_channels must be >= 1, found {in_channels}, {out_channels}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), found {dropout}")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        conv, pool = _CONV[spatial_dims], _POOL[spatial_dims]
        self.features = nn.Sequential(
            conv(in_channels, 6, kernel_size=5),
            nn.ReLU(inplace=True),
            pool(kernel_size=2, stride=2),
            conv(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            pool(kernel_size=2, stride=2),
        )
        self.avgpool = _ADAPTIVE[spatial_dims](POOLED_SIZE)
        self.classifier = nn.Sequential(
            nn.Linear(16 * POOLED_SIZE**spatial_dims, 120),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(84, out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch.

        Args:
            x: ``(B, in_channels, *spatial)``.

        Returns:
            ``(B, out_channels)`` logits (no softmax).
        """
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
