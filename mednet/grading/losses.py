"""Class imbalance options of the grading stage: weighted or focal losses, or a balanced sampler.

One configuration key, ``imbalance``, chooses among:

- ``"none"``: plain cross-entropy (binary cross-entropy for a single-logit network);
- ``"weights"``: cross-entropy weighted by inverse class frequency in the training partition;
- ``"focal"``: focal loss (``gamma``), which down-weights the easy majority;
- ``"sampler"``: plain loss, but training cases are drawn with probabilities inversely
  proportional to their class's frequency (:func:`balanced_sampler`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.losses import FocalLoss as MonaiFocalLoss
from torch import nn
from torch.utils.data import WeightedRandomSampler

from mednet.options import choose

__all__ = ["IMBALANCE_OPTIONS", "FocalLoss", "balanced_sampler", "class_counts", "make_criterion"]

#: Values of the ``imbalance`` option.
IMBALANCE_OPTIONS = ("none", "weights", "focal", "sampler")


def _option(imbalance: str) -> str:
    return choose(imbalance, IMBALANCE_OPTIONS, "imbalance")


def class_counts(cases: Sequence[dict], classes: Sequence[str], class_key: str = "class") -> list[int]:
    """Cases per class, in ``classes`` order.

    Raises:
        ValueError: a case whose class is not in ``classes``, or a class without any case.
    """
    counts = dict.fromkeys(map(str, classes), 0)
    for case in cases:
        name = str(case.get(class_key))
        if name not in counts:
            raise ValueError(f"{case.get('case_id', '?')}: class {name!r} is not one of {list(counts)}")
        counts[name] += 1
    empty = [name for name, n in counts.items() if n == 0]
    if empty:
        raise ValueError(f"no training case of class(es) {empty}: a classifier cannot learn them")
    return list(counts.values())


def _inverse_frequency(counts: Sequence[int]) -> torch.Tensor:
    c = torch.as_tensor(counts, dtype=torch.float32)
    return c.sum() / (len(c) * c)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017) on logits: ``(1 - p_t)^gamma`` times cross-entropy (MONAI's).

    A classification front to :class:`monai.losses.FocalLoss`: ``(B, C)`` logits with ``(B,)``
    class indices (softmax), or ``(B, 1)`` logits with ``(B, 1)`` 0/1 targets (sigmoid). The
    loss is the mean over the batch of each example's focal loss; ``gamma = 0`` is plain
    cross-entropy.

    Args:
        gamma: the focusing exponent.
        weight: ``(C,)`` class weights multiplying each example's loss by its true class's
            weight (softmax only; the mean stays over examples, not weights).
    """

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None):
        super().__init__()
        self.gamma = float(gamma)
        weight = None if weight is None else torch.as_tensor(weight, dtype=torch.float32)
        # reduction "none": MONAI's "mean" also averages the C - 1 zero entries of the non-target classes
        self.softmax = MonaiFocalLoss(
            gamma=self.gamma, weight=weight, use_softmax=True, to_onehot_y=True, reduction="none"
        )
        self.sigmoid = MonaiFocalLoss(gamma=self.gamma, reduction="mean")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean focal loss over the batch.

        Args:
            logits: ``(B, C)`` or ``(B, 1)``.
            target: ``(B,)`` class indices, or ``(B, 1)`` 0/1 for a single logit.

        Returns:
            A scalar.
        """
        if logits.shape[1] == 1:
            return self.sigmoid(logits, target.to(logits.dtype).reshape(logits.shape))
        return self.softmax(logits, target.long().reshape(-1, 1)).sum(dim=1).mean()


class _WeightedCE(nn.Module):
    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] == 1:
            pos_weight = self.weight[1:2] / self.weight[0:1]
            return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), pos_weight=pos_weight)
        return F.cross_entropy(logits, target.long(), weight=self.weight)


def make_criterion(
    imbalance: str = "none", class_counts: Sequence[int] | None = None, gamma: float = 2.0
) -> nn.Module | None:
    """The per-branch loss for an ``imbalance`` option (None: the network's default loss).

    Args:
        imbalance: one of :data:`IMBALANCE_OPTIONS`.
        class_counts: training cases per class (needed by ``"weights"``).
        gamma: the focal loss exponent.

    Raises:
        ValueError: an unknown option (with the closest one), or ``"weights"`` without counts.
    """
    key = _option(imbalance)
    if key in ("none", "sampler"):
        return None
    if key == "focal":
        return FocalLoss(gamma)
    if not class_counts:
        raise ValueError("imbalance='weights' needs the training class counts")
    return _WeightedCE(_inverse_frequency(class_counts))


def balanced_sampler(
    cases: Sequence[dict], classes: Sequence[str], class_key: str = "class", seed: int = 0
) -> WeightedRandomSampler:
    """Draw training cases with probability inversely proportional to their class's frequency.

    Args:
        cases: the training cases (dicts with ``class_key``), in the dataset's order.
        classes: class names.
        class_key: the case's class field.
        seed: the sampler's generator seed.
    """
    counts = class_counts(cases, classes, class_key)
    weight = _inverse_frequency(counts)
    index = {str(c): i for i, c in enumerate(classes)}
    weights = torch.stack([weight[index[str(case[class_key])]] for case in cases])
    generator = torch.Generator().manual_seed(int(seed))
    return WeightedRandomSampler(weights.double(), num_samples=len(cases), replacement=True, generator=generator)
