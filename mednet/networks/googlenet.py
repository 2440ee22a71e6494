"""GoogLeNet (Inception v1) for glioma grading by transfer learning (SEEDS section B).

Written from scratch (torchvision is not a dependency) in torchvision's module layout,
so that a state dict saved from ``torchvision.models.googlenet`` loads by key: the
attribute names (``conv1.conv``, ``conv1.bn``, ``conv2``, ``conv3``, ``inception3a`` ...
``inception5b``, each Inception with ``branch1`` ... ``branch4``), ``BasicConv2d``
(convolution without bias + BatchNorm with ``eps=0.001``) and torchvision's quirk that
the "5x5" branch (``branch3``) uses a 3x3 kernel all match. The auxiliary classifiers
are left out (``aux1.*`` / ``aux2.*`` keys are ignored when loading).

The ImageNet classifier (``fc``) is replaced by configurable fully connected layers
(:attr:`GoogLeNet.head`)::

    avgpool -> flatten -> Dropout(0.5) -> Linear(1024, 128) -> ReLU -> Dropout(0.5) -> Linear(128, num_classes)

for the default ``head=(1024, 128)``. The paper prints the widths 1024, 12, 2, so the
paper-faithful configuration is ``GoogLeNet(num_classes=2, head=PAPER_HEAD)``
(``PAPER_HEAD = (1024, 12)``); ``(1024, 128)`` is the width given in an issue on the
paper and the default here.

The paper's training: the pretrained part at learning rate 1e-4, the new head at 1e-3
(:func:`parameter_groups`), batch size 128, 100 epochs, one model per sequence.

Typical use (the weights file is a local copy of torchvision's ``googlenet`` state
dict; mednet downloads nothing)::

    model = GoogLeNet(num_classes=2, head=PAPER_HEAD, transform_input=True)
    load_pretrained(model, "googlenet-1378be20.pth")
    optimizer = torch.optim.Adam(parameter_groups(model, backbone_lr=1e-4, head_lr=1e-3))
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mednet.errors import MednetError

__all__ = [
    "DEFAULT_HEAD",
    "PAPER_HEAD",
    "BasicConv2d",
    "GoogLeNet",
    "Inception",
    "PretrainedWeightsError",
    "load_pretrained",
    "parameter_groups",
]

#: Width of the backbone's pooled features, the first width of every head.
FEATURES = 1024
#: Default head widths: Linear(1024, 128) -> Linear(128, num_classes).
DEFAULT_HEAD = (FEATURES, 128)
#: The paper's head widths: Linear(1024, 12) -> Linear(12, 2).
PAPER_HEAD = (FEATURES, 12)

#: Key prefixes of a torchvision state dict that are not part of the backbone.
_SKIPPED_PREFIXES = ("fc.", "aux1.", "aux2.")


class PretrainedWeightsError(MednetError, ValueError):
    """A pretrained state dict that does not fit the model's backbone."""


class BasicConv2d(nn.Module):
    """Convolution (no bias) -> BatchNorm (eps 0.001) -> ReLU, as torchvision's ``BasicConv2d``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        **kwargs: passed to :class:`torch.nn.Conv2d` (``kernel_size``, ``stride``, ``padding``).
    """

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` -> ``(B, out_channels, H', W')``."""
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """Inception module in torchvision's layout.

    Branches, concatenated along channels:

    - ``branch1``: 1x1 conv to ``ch1x1``;
    - ``branch2``: 1x1 conv to ``ch3x3red`` then 3x3 conv to ``ch3x3``;
    - ``branch3``: 1x1 conv to ``ch5x5red`` then a **3x3** conv to ``ch5x5`` (torchvision's
      known deviation from the paper's 5x5, kept so its weights load);
    - ``branch4``: 3x3 max pooling (stride 1) then 1x1 conv to ``pool_proj``.

    Shapes:
        ``(B, in_channels, H, W)`` -> ``(B, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)``.
    """

    def __init__(
        self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int
    ):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1), BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1)
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1), BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1)
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``."""
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNet(nn.Module):
    """Inception v1 backbone in torchvision's layout with a replaceable fully connected head.

    Args:
        num_classes: outputs of the head (2 in the paper: LGG, HGG, with a softmax).
        in_channels: input channels. 3 matches ImageNet weights; with 1, :func:`load_pretrained`
            sums the first convolution's RGB weights (a grey image ``g`` then gives the
            same response as the RGB image ``(g, g, g)``).
        head: widths of the fully connected head; ``head[0]`` must be 1024 (the backbone's
            feature width), each later width adds ``Linear -> ReLU -> Dropout``, and a final
            ``Linear(head[-1], num_classes)`` follows. Default :data:`DEFAULT_HEAD`
            ``(1024, 128)``; the paper's is :data:`PAPER_HEAD` ``(1024, 12)``; ``(1024,)``
            gives torchvision's single ``Linear(1024, num_classes)``.
        dropout: dropout probability before every linear layer of the head.
        transform_input: as torchvision: re-map an input normalised with the ImageNet
            mean/std to the ``[-1, 1]`` scaling the ported ImageNet weights expect
            (torchvision turns it on with its pretrained weights). Needs ``in_channels == 3``.
        init_weights: truncated-normal (std 0.01) initialisation of convolutions and linear
            layers as torchvision does; off leaves PyTorch's default initialisation.

    Shapes:
        input ``(B, in_channels, H, W)`` (224x224 in the paper; any size from 15x15, torchvision's minimum, works thanks
        to the adaptive average pooling), output ``(B, num_classes)`` logits.

    Raises:
        ValueError: invalid sizes, ``head[0] != 1024``, or ``transform_input`` without 3 channels.
    """

    def __init__(
        self,
        num_classes: int = 2,
        in_channels: int = 3,
        head: Sequence[int] = DEFAULT_HEAD,
        dropout: float = 0.5,
        transform_input: bool = False,
        init_weights: bool = True,
    ):
        super().__init__()
        head = tuple(int(w) for w in head)
        if not head or head[0] != FEATURES or min(head) < 1:
            raise ValueError(
                f"head: expected positive widths starting with the backbone's {FEATURES} features, e.g. "
                f"{DEFAULT_HEAD} or the paper's {PAPER_HEAD}; found {head!r}"
            )
        if num_classes < 1 or in_channels < 1:
            raise ValueError(f"num_classes and in_channels must be >= 1, found {num_classes}, {in_channels}")
        if transform_input and in_channels != 3:
            raise ValueError(
                f"transform_input re-maps RGB ImageNet normalisation: needs in_channels=3, found {in_channels}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), found {dropout}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.transform_input = transform_input
        self.head_widths = head

        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))

        layers: list[nn.Module] = []
        for width_in, width_out in itertools.pairwise(head):
            layers += [nn.Dropout(dropout), nn.Linear(width_in, width_out), nn.ReLU(inplace=True)]
        layers += [nn.Dropout(dropout), nn.Linear(head[-1], num_classes)]
        self.head = nn.Sequential(*layers)

        if init_weights:
            for module in self.modules():
                if isinstance(module, nn.Conv2d | nn.Linear):
                    nn.init.trunc_normal_(module.weight, mean=0.0, std=0.01, a=-2, b=2)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
                elif isinstance(module, nn.BatchNorm2d):
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        if not self.transform_input:
            return x
        x_ch0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
        x_ch1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
        x_ch2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
        return torch.cat((x_ch0, x_ch1, x_ch2), 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features before the head.

        Args:
            x: ``(B, in_channels, H, W)``.

        Returns:
            ``(B, 1024)`` globally average-pooled features.
        """
        x = self._transform_input(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        x = self.inception4b(x)
        x = self.inception4c(x)
        x = self.inception4d(x)
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch.

        Args:
            x: ``(B, in_channels, H, W)``.

        Returns:
            ``(B, num_classes)`` logits (apply the softmax, or the sigmoid for one output, outside).
        """
        return self.head(self.features(x))


def _head_prefix(model: nn.Module) -> str:
    if not isinstance(getattr(model, "head", None), nn.Module):
        raise TypeError(f"{type(model).__name__} has no `head` submodule to tell the head from the backbone")
    return "head."


def _as_state_dict(obj: Any, path: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PretrainedWeightsError(
            f"{path}: expected a state dict (a mapping of names to tensors), found {type(obj)}"
        )
    state = {str(k): v for k, v in obj.items()}
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _listing(keys: Sequence[str], limit: int = 20) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_pretrained(model: GoogLeNet, path: os.PathLike | str) -> int:
    """Load a local torchvision-layout GoogLeNet state dict into ``model``'s backbone.

    The file is read with ``torch.load(path, map_location="cpu", weights_only=True)``.
    It may be a plain state dict, a ``{"state_dict": ...}`` checkpoint, or carry a
    ``module.`` prefix (``DataParallel``). Keys of the ImageNet classifier (``fc.*``) and
    the auxiliary classifiers (``aux1.*``, ``aux2.*``) are skipped; the head keeps its
    initialisation. BatchNorm's ``num_batches_tracked`` counters may be absent from the
    file (older ported weights lack them). When the model has 1 input channel and the
    file's ``conv1.conv.weight`` has 3, the RGB weights are summed over the channel axis.

    Args:
        model: the model to fill, in place.
        path: the state-dict file.

    Returns:
        The number of tensors (parameters and buffers) loaded.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        PretrainedWeightsError: the file is not a state dict, backbone keys are missing or
            unexpected (both listed), or shapes do not match.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: pretrained weights file not found")
    head = _head_prefix(model)
    state = _as_state_dict(torch.load(path, map_location="cpu", weights_only=True), path)
    state = {k: v for k, v in state.items() if not k.startswith(_SKIPPED_PREFIXES)}

    own = {k: v for k, v in model.state_dict().items() if not k.startswith(head)}
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = [f"{path}: does not fit the {type(model).__name__} backbone (torchvision googlenet key layout)"]
        if missing:
            parts.append(f"missing backbone keys ({len(missing)}): {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
        raise PretrainedWeightsError("; ".join(parts))

    first = "conv1.conv.weight"
    if first in state and state[first].ndim == 4 and state[first].shape[1] == 3 and own[first].shape[1] == 1:
        state[first] = state[first].sum(dim=1, keepdim=True)
    mismatched = [
        f"{k}: file {tuple(v.shape)}, model {tuple(own[k].shape)}" for k, v in state.items() if v.shape != own[k].shape
    ]
    if mismatched:
        raise PretrainedWeightsError(f"{path}: shape mismatch ({len(mismatched)}): " + "; ".join(mismatched[:10]))

    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:  # cannot happen after the checks above
        raise PretrainedWeightsError(f"{path}: unexpected keys {_listing(result.unexpected_keys)}")
    return len(state)


def parameter_groups(model: nn.Module, backbone_lr: float = 1e-4, head_lr: float = 1e-3) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the pretrained backbone and the new head at their own rates.

    Works for any model with a ``head`` submodule; every other parameter is backbone.

    Args:
        model: e.g. a :class:`GoogLeNet`.
        backbone_lr: learning rate of the backbone (1e-4 in the paper).
        head_lr: learning rate of the head (1e-3 in the paper).

    Returns:
        ``[{"name": "backbone", "params": [...], "lr": backbone_lr},
        {"name": "head", "params": [...], "lr": head_lr}]``, ready for any
        ``torch.optim`` optimizer.

    Raises:
        TypeError: the model has no ``head`` submodule.
    """
    head = _head_prefix(model)
    backbone_params, head_params = [], []
    for name, parameter in model.named_parameters():
        (head_params if name.startswith(head) else backbone_params).append(parameter)
    return [
        {"name": "backbone", "params": backbone_params, "lr": backbone_lr},
        {"name": "head", "params": head_params, "lr": head_lr},
    ]
