"""s-VGG, the small VGG of the acoustic neuroma vs meningioma paper (SEEDS section A).

Stacks of 3x3 convolutions, each followed by BatchNorm and ReLU, close with 2x2 max
pooling and Dropout(0.25); global average pooling then a fully connected head. The
paper trains one model per sequence (s-VGG-T1 on contrast-enhanced T1, s-VGG-T2 on T2)
with one sigmoid output, binary cross-entropy and learning rate 1e-3 for 100 epochs.

The network returns **logits**: the sigmoid belongs to the loss
(:class:`torch.nn.BCEWithLogitsLoss`, numerically safer than sigmoid + BCE) or to the
caller (:meth:`SVGG.predict_proba`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mednet.networks.probabilities import ProbabilityMixin

__all__ = ["SVGG"]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_GAP = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


def _check_spatial_dims(spatial_dims: int) -> None:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims: expected 2 or 3, found {spatial_dims!r}")


class SVGG(ProbabilityMixin, nn.Module):
    """Small VGG ("s-VGG") for 2D slices or 3D volumes.

    Layout, for each entry ``c`` of ``channels`` (one stack per entry)::

        convs_per_stack x [Conv 3x3 (padding 1) -> BatchNorm -> ReLU] -> MaxPool 2x2 -> Dropout(dropout)

    then global average pooling, flatten and the head::

        Linear(channels[-1], hidden) -> ReLU -> Dropout(dropout) -> Linear(hidden, out_channels)

    (``hidden=0`` leaves a single ``Linear(channels[-1], out_channels)``). Global
    average pooling makes the network accept any input size of at least
    ``2 ** len(channels)`` voxels per side (each pooling halves the size, rounding down).

    With ``out_channels=1`` (the paper's configuration) the single output is the logit
    of the positive class; apply the sigmoid in the loss (``BCEWithLogitsLoss``) or via
    :meth:`predict_proba`. With ``out_channels > 1`` the outputs are class logits for
    ``CrossEntropyLoss``, and :meth:`predict_proba` applies the softmax.

    Args:
        spatial_dims: 2 (slices) or 3 (volumes).
        in_channels: input channels (1 for one MRI sequence).
        out_channels: outputs; 1 for a binary task with a sigmoid.
        channels: feature channels of each convolution stack.
        convs_per_stack: convolutions in each stack.
        hidden: width of the hidden fully connected layer; 0 for none.
        dropout: dropout probability after every pooling layer and in the head.

    Shapes:
        input ``(B, in_channels, *spatial)``, output ``(B, out_channels)`` logits.

    Raises:
        ValueError: invalid ``spatial_dims`` or non-positive sizes.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int = 1,
        channels: Sequence[int] = (32, 64, 128),
        convs_per_stack: int = 2,
        hidden: int = 256,
        dropout: float = 0.25,
    ):
        super().__init__()
        _check_spatial_dims(spatial_dims)
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError(f"channels: expected a non-empty sequence of positive ints, found {channels!r}")
        if in_channels < 1 or out_channels < 1 or convs_per_stack < 1 or hidden < 0:
            raise ValueError(
                "in_channels, out_channels and convs_per_stack must be >= 1 and hidden >= 0, found "
                f"in_channels={in_channels}, out_channels={out_channels}, convs_per_stack={convs_per_stack}, "
                f"hidden={hidden}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), found {dropout}")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        conv, norm, pool = _CONV[spatial_dims], _NORM[spatial_dims], _POOL[spatial_dims]

        stacks: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers: list[nn.Module] = []
            for _ in range(convs_per_stack):
                layers += [conv(previous, width, kernel_size=3, padding=1), norm(width), nn.ReLU(inplace=True)]
                previous = width
            layers += [pool(kernel_size=2, stride=2), nn.Dropout(dropout)]
            stacks.append(nn.Sequential(*layers))
        self.features = nn.Sequential(*stacks)
        self.avgpool = _GAP[spatial_dims](1)
        if hidden:
            self.head = nn.Sequential(
                nn.Linear(previous, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, out_channels)
            )
        else:
            self.head = nn.Sequential(nn.Linear(previous, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch.

        Args:
            x: ``(B, in_channels, *spatial)``.

        Returns:
            ``(B, out_channels)`` logits (no sigmoid / softmax).
        """
        return self.head(torch.flatten(self.avgpool(self.features(x)), 1))
