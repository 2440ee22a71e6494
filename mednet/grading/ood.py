"""Does a case look like the cases a grading network was trained on? Feature-space distance per branch.

A classifier gives a probability for any input, also for one unlike anything it has seen
(a brain metastasis given to a glioma grader, a scan with a contrast it never met). A
case's features before each branch's last layer (the mean over its slices) are compared
with those of the training cases: the Mahalanobis distance to their mean, with a
Ledoit-Wolf shrunk covariance (Lee et al., NeurIPS 2018, at the case level), divided by
the ``quantile`` of the training cases' own distances. A ratio above 1 means the case is
farther from the training data than all but ``1 - quantile`` of the training cases were;
:class:`mednet.fusion.CaseFusion` then reports the call as indeterminate.

:func:`fit_feature_ood` fits it on a bundle's training partition (ground-truth lesion
maps); it is stored as ``models/ood.json`` next to the weights.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mednet.io.atomic import write_json_atomic

__all__ = ["FeatureOOD", "fit_feature_ood", "penultimate_features"]


def _last_linear(branch: nn.Module) -> nn.Linear:
    layers = [m for m in branch.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise ValueError(f"{type(branch).__name__}: no Linear layer whose input could serve as the features")
    return layers[-1]


def penultimate_features(network: nn.Module, inputs: Mapping[str, torch.Tensor]) -> tuple[dict, dict]:
    """Run a multi-sequence classifier and keep each branch's input to its last Linear layer.

    Args:
        network: a :class:`mednet.networks.MultiSequenceClassifier` in eval mode.
        inputs: its inputs (sequence -> ``(B, C, H, W)``, plus extra inputs).

    Returns:
        ``(outputs, features)``: the network's output and sequence -> ``(B, D)`` features.
    """
    features: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(module, args, output):
            features[name] = args[0].detach().float()

        return hook

    hooks = [_last_linear(branch).register_forward_hook(keep(name))
             for name, branch in network.branches.items() if name in inputs]  # fmt: skip
    try:
        outputs = network(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return outputs, features


@dataclass
class FeatureOOD:
    """Per-branch Gaussian of the training cases' features.

    Attributes:
        branches: sequence -> ``{"mean": (D,), "precision": (D, D), "threshold": float}``.
        quantile: the training quantile that ``threshold`` is.
        cases: training cases fitted on.
    """

    branches: dict[str, dict]
    quantile: float
    cases: int

    @classmethod
    def fit(cls, features: Mapping[str, np.ndarray], quantile: float = 0.99) -> FeatureOOD:
        """Fit on sequence -> ``(N, D)`` case features (each case's mean over its slices).

        Raises:
            ValueError: fewer than 5 cases, or a quantile outside (0, 1).
        """
        from sklearn.covariance import LedoitWolf

        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile: expected a value in (0, 1), found {quantile}")
        branches, n = {}, 0
        for name, x in features.items():
            x = np.asarray(x, dtype=np.float64)
            if x.ndim != 2 or len(x) < 5:
                raise ValueError(f"{name}: need (N, D) features of at least 5 cases, found shape {x.shape}")
            estimate = LedoitWolf().fit(x)
            mean, precision = estimate.location_, estimate.precision_
            distances = np.sqrt(np.einsum("nd,de,ne->n", x - mean, precision, x - mean))
            branches[name] = {"mean": mean.tolist(), "precision": precision.tolist(),
                              "threshold": float(np.quantile(distances, quantile))}  # fmt: skip
            n = len(x)
        return cls(branches, quantile, n)

    def ratios(self, features: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Sequence -> distance / threshold of one case's ``(D,)`` features (>1: unlike the training cases)."""
        out = {}
        for name, x in features.items():
            if name not in self.branches:
                continue
            fitted = self.branches[name]
            d = np.asarray(x, dtype=np.float64).reshape(-1) - np.asarray(fitted["mean"])
            distance = float(np.sqrt(max(d @ np.asarray(fitted["precision"]) @ d, 0.0)))
            out[name] = round(distance / max(fitted["threshold"], 1e-12), 4)
        return out

    def save(self, path: os.PathLike | str) -> Path:
        """Write as JSON (atomically)."""
        return write_json_atomic(path, {"method": "mahalanobis_ledoit_wolf", "quantile": self.quantile,
                                        "cases": self.cases, "branches": self.branches})  # fmt: skip

    @classmethod
    def load(cls, path: os.PathLike | str) -> FeatureOOD:
        """Read what :meth:`save` wrote."""
        doc = json.loads(Path(path).read_text())
        return cls(doc["branches"], float(doc["quantile"]), int(doc["cases"]))


def fit_feature_ood(
    predictor, cases: Iterable[Mapping], out: os.PathLike | str, quantile: float = 0.99
) -> FeatureOOD:
    """Fit a :class:`FeatureOOD` on cases graded with their ground-truth lesion maps; save it to ``out``.

    Args:
        predictor: a :class:`mednet.inference.GradingPredictor` (its network, preprocessing).
        cases: datalist entries with absolute paths per sequence and ``label`` (the truth).
        out: the JSON to write (usually the bundle's ``models/ood.json``).
        quantile: see :meth:`FeatureOOD.fit`.
    """
    from mednet.io.cases import load_case

    collected: dict[str, list[np.ndarray]] = {}
    for case in cases:
        loaded = load_case(case, list(predictor.bundle.sequences), label_keys=("label",))
        features = predictor.features(loaded.images, loaded.label, str(case.get("case_id", "case")))
        for name, value in features.items():
            collected.setdefault(name, []).append(value)
    ood = FeatureOOD.fit({name: np.stack(values) for name, values in collected.items()}, quantile)
    ood.save(out)
    return ood
