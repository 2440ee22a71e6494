"""Build a grading-stage classifier by name: the papers' networks and MONAI's modern ones."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from monai.networks.nets import DenseNet121, resnet18, resnet34
from torch import nn

from mednet.networks.features import WithFeatures
from mednet.networks.googlenet import GoogLeNet, load_pretrained, parameter_groups
from mednet.networks.lenet import LeNet5
from mednet.networks.multisequence import MultiSequenceClassifier
from mednet.networks.svgg import SVGG
from mednet.options import choose

__all__ = ["CLASSIFIERS", "build_classifier", "build_multisequence", "optimizer_groups"]

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
    key = choose(_normalise(name), CLASSIFIERS, f"classifier {name!r}")
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


def build_multisequence(
    sequences: Sequence[str],
    name: str,
    spatial_dims: int,
    in_channels: int,
    num_classes: int,
    *,
    n_features: int = 0,
    embedding: int = 32,
    pretrained: str | os.PathLike | None = None,
    **kwargs: Any,
) -> MultiSequenceClassifier:
    """One independently built classifier per sequence, held in a :class:`MultiSequenceClassifier`.

    Args:
        sequences: sequence names (branch names, and the batch keys of their inputs).
        name: the branch network (see :func:`build_classifier`).
        spatial_dims: 2 or 3.
        in_channels: channels of each sequence's input (3 for ImageNet weights).
        num_classes: logits per branch (1 for a single sigmoid logit).
        n_features: with ``> 0`` each branch is :class:`WithFeatures` (its network built with
            ``num_classes=embedding``) and also takes the batch's ``"features"``.
        embedding: the image network's output width when ``n_features > 0``.
        pretrained: a local state dict in torchvision's GoogLeNet layout, loaded into every
            branch (``googlenet`` only; see :func:`load_pretrained`).
        **kwargs: passed on to each branch's constructor.

    Raises:
        ValueError: no sequence, repeated names, or ``pretrained`` for another network.
    """
    sequences = [str(s) for s in sequences]
    if not sequences or len(set(sequences)) != len(sequences):
        raise ValueError(f"sequences: expected distinct names, found {sequences}")
    if pretrained and _normalise(name) != "googlenet":
        raise ValueError(f"pretrained weights are for googlenet branches, not {name!r}")
    branches = {}
    for sequence in sequences:
        width = embedding if n_features else num_classes
        branch = build_classifier(name, spatial_dims, in_channels, width, **kwargs)
        if pretrained:
            load_pretrained(branch, pretrained)
        branches[sequence] = WithFeatures(branch, embedding, n_features, num_classes) if n_features else branch
    return MultiSequenceClassifier(branches, extra_inputs=("features",) if n_features else ())


def optimizer_groups(network: nn.Module, lr: float, backbone_lr: float | None = None) -> list[dict[str, Any]]:
    """Parameter groups for a classifier: one rate, or pretrained backbones at ``backbone_lr``.

    With ``backbone_lr`` every branch that has a ``head`` (GoogLeNet) gets paper B's two
    groups (:func:`parameter_groups`: backbone at ``backbone_lr``, head at ``lr``); other
    parameters train at ``lr``.

    Args:
        network: a :class:`MultiSequenceClassifier` or a single classifier.
        lr: the learning rate (of the heads, with ``backbone_lr``).
        backbone_lr: the pretrained backbone's rate, or None for one rate everywhere.
    """
    network = getattr(network, "module", network)  # DistributedDataParallel
    if backbone_lr is None:
        return [{"name": "all", "params": list(network.parameters()), "lr": lr}]
    branches = network.branches.values() if isinstance(network, MultiSequenceClassifier) else [network]
    groups: list[dict[str, Any]] = []
    seen: set[int] = set()
    for branch in branches:
        inner = branch.backbone if isinstance(branch, WithFeatures) else branch
        if hasattr(inner, "head"):
            for group in parameter_groups(inner, backbone_lr=backbone_lr, head_lr=lr):
                groups.append(group)
                seen.update(id(p) for p in group["params"])
    rest = [p for p in network.parameters() if id(p) not in seen]
    if rest:
        groups.append({"name": "other", "params": rest, "lr": lr})
    return groups
