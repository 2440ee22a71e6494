"""Grading-stage networks: the papers' classifiers, MONAI's modern ones, and per-sequence fusion.

- :class:`SVGG`: the small VGG of the acoustic neuroma vs meningioma paper (sigmoid logit).
- :class:`LeNet5`: the improved LeNet-5 of the neuroblastoma paper (softmax logits).
- :class:`GoogLeNet`: Inception v1 in torchvision's layout for glioma grading by transfer
  learning, with :func:`load_pretrained` and :func:`parameter_groups`.
- :class:`MultiSequenceClassifier`: one independent branch per MRI sequence, majority vote;
  :class:`StackedClassifier`: its one-tensor view for MONAI's bundle tools and TorchScript.
- :func:`build_classifier`: any of the above, or MONAI's DenseNet121 / ResNet, by name;
  :func:`build_multisequence`: one of them per sequence (optionally :class:`WithFeatures`).

Every network returns logits; sigmoid / softmax belong to the loss or the caller.
"""

from __future__ import annotations

from mednet.networks.factory import CLASSIFIERS, build_classifier, build_multisequence, optimizer_groups
from mednet.networks.features import WithFeatures
from mednet.networks.googlenet import (
    DEFAULT_HEAD,
    PAPER_HEAD,
    BasicConv2d,
    GoogLeNet,
    Inception,
    PretrainedWeightsError,
    load_pretrained,
    parameter_groups,
)
from mednet.networks.lenet import LeNet5
from mednet.networks.multisequence import MultiSequenceClassifier
from mednet.networks.probabilities import ProbabilityMixin, branch_probabilities
from mednet.networks.stacked import StackedClassifier
from mednet.networks.svgg import SVGG

__all__ = [
    "CLASSIFIERS",
    "DEFAULT_HEAD",
    "PAPER_HEAD",
    "SVGG",
    "BasicConv2d",
    "GoogLeNet",
    "Inception",
    "LeNet5",
    "MultiSequenceClassifier",
    "PretrainedWeightsError",
    "ProbabilityMixin",
    "StackedClassifier",
    "WithFeatures",
    "branch_probabilities",
    "build_classifier",
    "build_multisequence",
    "load_pretrained",
    "optimizer_groups",
    "parameter_groups",
]
