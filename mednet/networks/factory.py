"""Build a grading-stage classifier by name: the papers' networks and MONAI's modern ones."""

from __future__ import annotations

import difflib
from typing import Any

from monai.networks.nets import DenseNet121, resnet18, resnet34
from torch import nn

from mednet.networks.googlenet import GoogLeNet
from mednet.networks.lenet import LeNet5
from mednet.networks.svgg import SVGG

__all__ = ["CLASSIFIERS", "build_classifier"]

#: Names understood by :func:`build_classifier`.
CLASSIFIERS = ("svgg", "lenet5", "googlenet", "densenet121", "resnet18", "resnet34")


def _normalise(name: str) -> str:
    return str(name).strip().lower().replace("-", "").replace("_", "").replace(" ", "")


def build_classifier(name: str, spatial_dims: int, in_channels: int, num_classes: int, **kwargs: Any) -> nn.Module:
    """A classifier mapping ``(B, in_channels, *spatial)`` to ``(B, num_classes)`` logits.

    Names (case, ``-`` and ``_`` are ignored, so ``"s-VGG"`` and ``"LeNet-5"`` work):

    - ``"svgg"``: :class:`~mednet.networks.SVGG` (paper A), 2D or 3D;
    - ``"lenet5"``: :class:`~mednet.networks.LeNet5` (paper C), 2D or 3D;
    - ``"googlenet"``: :class:`~mednet.networks.GoogLeNet` (paper B), 2D only;
    - ``"densenet121"``: :class:`monai.networks.nets.DenseNet121`, 2D or 3D;
    - ``"resnet18"`` / ``"resnet34"``: :func:`monai.networks.nets.resnet18` / ``resnet34``, 2D or 3D.

    Args:
        name: one of :data:`CLASSIFIERS`.
        spatial_dims: 2 or 3.
        in_channels: input channels.
        num_classes: outputs (1 for a single sigmoid logit).
        **kwargs: passed on to the network's constructor.

    Returns:
        The untrained network (no weights are downloaded).

    Raises:
        ValueError: an unknown name (the message lists the valid ones and the closest
            match), or ``spatial_dims`` the network does not support.
    """
    key = _normalise(name)
    if key not in CLASSIFIERS:
        close = difflib.get_close_matches(key, CLASSIFIERS, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown classifier {name!r}; valid names: {', '.join(CLASSIFIERS)}.{hint}")
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims: expected 2 or 3, found {spatial_dims!r}")
    if key == "svgg":
        return SVGG(spatial_dims, in_channels, out_channels=num_classes, **kwargs)
    if key == "lenet5":
        return LeNet5(spatial_dims, in_channels, out_channels=num_classes, **kwargs)
    if key == "googlenet":
        if spatial_dims != 2:
            raise ValueError(f"googlenet is a 2D network: expected spatial_dims=2, found {spatial_dims}")
        return GoogLeNet(num_classes=num_classes, in_channels=in_channels, **kwargs)
    if key == "densenet121":
        return DenseNet121(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=num_classes, **kwargs)
    factory = resnet18 if key == "resnet18" else resnet34
    return factory(spatial_dims=spatial_dims, n_input_channels=in_channels, num_classes=num_classes, **kwargs)
