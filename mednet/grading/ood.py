"""Does a case look like the cases a grading network was trained on? Feature-space distance per branch.

A classifier gives a probability for any input, also for one unlike anything it has seen
(a brain metastasis given to a glioma grader, a scan with a contrast it never met). A
case's features before each branch's last layer (the mean over its slices) are compared
with those of the training cases: the Mahalanobis distance to their mean in their main
principal axes, with a Ledoit-Wolf shrunk covariance (Lee et al., NeurIPS 2018, at the
case level), divided by the ``quantile`` of cross-validated training distances. A ratio
above 1 means the case is farther from the training data than all but about
``1 - quantile`` of new ordinary cases would be; :class:`mednet.fusion.CaseFusion` then
reports the call as indeterminate.

:func:`fit_feature_ood` fits it on a bundle's training partition (ground-truth lesion
maps); it is stored as ``models/ood.json`` next to the weights.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mednet.checksum import file_sha256
from mednet.io.atomic import write_json_atomic

__all__ = ["FeatureOOD", "fit_feature_ood", "fitted_check", "keeping_features", "penultimate_features"]


def _last_linear(branch: nn.Module) -> nn.Linear:
    layers = [m for m in branch.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise ValueError(f"{type(branch).__name__}: no Linear layer whose input could serve as the features")
    return layers[-1]


@contextlib.contextmanager
def keeping_features(network: nn.Module, names: Iterable[str] | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, every forward of ``network`` leaves each branch's input to its last Linear layer.

    Args:
        network: a :class:`mednet.networks.MultiSequenceClassifier`.
        names: the branches to watch (default all).

    Yields:
        A dict, sequence -> ``(B, D)`` features of the latest forward (updated in place).
    """
    features: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(module, args, output):
            features[name] = args[0].detach().float()

        return hook

    wanted = set(network.branches) if names is None else set(names)
    hooks = [_last_linear(branch).register_forward_hook(keep(name))
             for name, branch in network.branches.items() if name in wanted]  # fmt: skip
    try:
        yield features
    finally:
        for hook in hooks:
            hook.remove()


def penultimate_features(network: nn.Module, inputs: Mapping[str, torch.Tensor]) -> tuple[dict, dict]:
    """Run a multi-sequence classifier and keep each branch's input to its last Linear layer.

    Args:
        network: a :class:`mednet.networks.MultiSequenceClassifier` in eval mode.
        inputs: its inputs (sequence -> ``(B, C, H, W)``, plus extra inputs).

    Returns:
        ``(outputs, features)``: the network's output and sequence -> ``(B, D)`` features.
    """
    with keeping_features(network, inputs) as features:
        outputs = network(inputs)
    return outputs, dict(features)


def fitted_check(weights: os.PathLike | str, warn: bool = True) -> tuple[FeatureOOD | None, str]:
    """The feature-distance check fitted for ``weights`` (``ood.json`` beside them), and what it says of itself.

    Args:
        weights: the checkpoint.
        warn: warn when the ``ood.json`` there was fitted for other weights (a bundle's
            writer only records it: the reference recipe tests float32 weights beside a fit
            for the float16 ones it ships).

    Returns:
        ``(check, note)``: the check, or None when there is no ``ood.json`` or it was fitted
        for other weights (its SHA-256 differs: it would judge these weights' features); the
        note says which, for the records.
    """
    fitted = Path(weights).parent / "ood.json"
    if not fitted.is_file():
        return None, "no feature-distance check (no ood.json beside the weights)"
    ood = FeatureOOD.load(fitted)
    if ood.weights_sha256 != file_sha256(weights):
        note = f"{fitted} was fitted for other weights: not applied"
        if warn:
            warnings.warn(note, stacklevel=2)
        return None, note
    return ood, f"feature-distance check fitted on {ood.cases} training cases"


def _gaussian(x: np.ndarray, components: int) -> dict:
    """Mean, principal axes and shrunk precision of ``(N, D)`` features, in ``components`` dimensions."""
    from sklearn.covariance import LedoitWolf
    from sklearn.decomposition import PCA

    pca = PCA(n_components=components).fit(x)
    estimate = LedoitWolf().fit(pca.transform(x))
    return {"mean": pca.mean_.tolist(), "axes": pca.components_.tolist(), "centre": estimate.location_.tolist(),
            "precision": estimate.precision_.tolist()}  # fmt: skip


def _distances(model: Mapping, x: np.ndarray) -> np.ndarray:
    """Mahalanobis distances of ``(N, D)`` features under a :func:`_gaussian`."""
    z = (np.atleast_2d(x) - np.asarray(model["mean"])) @ np.asarray(model["axes"]).T - np.asarray(model["centre"])
    return np.sqrt(np.maximum(np.einsum("nd,de,ne->n", z, np.asarray(model["precision"]), z), 0.0))


@dataclass
class FeatureOOD:
    """Per-branch Gaussian of the training cases' features, with an out-of-sample threshold.

    Each branch's ``(N, D)`` case features are projected on their ``components`` principal
    axes (a few dozen training cases cannot estimate a covariance in the network's 64
    dimensions) and modelled by a Ledoit-Wolf shrunk Gaussian. The threshold is the
    ``quantile`` of **cross-validated** distances (each case's distance under a Gaussian
    fitted without it, 5 folds): a case's own distance under a fit that saw it is biased
    low, and a threshold from those would call far more than ``1 - quantile`` of new
    ordinary cases unfamiliar.

    Attributes:
        branches: sequence -> ``{"mean", "axes", "centre", "precision", "threshold"}``.
        quantile: the quantile that ``threshold`` is.
        cases: training cases fitted on.
        weights_sha256: the checkpoint whose features these are (a fit for other weights
            must not be applied).
    """

    branches: dict[str, dict]
    quantile: float
    cases: int
    weights_sha256: str = ""

    @classmethod
    def fit(
        cls, features: Mapping[str, np.ndarray], quantile: float = 0.99, components: int = 8, weights_sha256: str = ""
    ) -> FeatureOOD:
        """Fit on sequence -> ``(N, D)`` case features (each case's mean over its slices).

        Raises:
            ValueError: fewer than 10 cases, or a quantile outside (0, 1).
        """
        from sklearn.model_selection import KFold

        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile: expected a value in (0, 1), found {quantile}")
        branches, n = {}, 0
        for name, x in features.items():
            x = np.asarray(x, dtype=np.float64)
            if x.ndim != 2 or len(x) < 10:
                raise ValueError(f"{name}: need (N, D) features of at least 10 cases, found shape {x.shape}")
            k = max(1, min(components, x.shape[1], len(x) // 5))
            held_out = np.concatenate([_distances(_gaussian(x[fit], k), x[test])
                                       for fit, test in KFold(5, shuffle=True, random_state=0).split(x)])  # fmt: skip
            branches[name] = {**_gaussian(x, k), "threshold": float(np.quantile(held_out, quantile))}
            n = len(x)
        return cls(branches, quantile, n, weights_sha256)

    def ratios(self, features: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Sequence -> distance / threshold of one case's ``(D,)`` features (>1: unlike the training cases)."""
        return {name: round(float(_distances(self.branches[name], np.asarray(x, dtype=np.float64))[0])
                            / max(self.branches[name]["threshold"], 1e-12), 4)
                for name, x in features.items() if name in self.branches}  # fmt: skip

    def save(self, path: os.PathLike | str) -> Path:
        """Write as JSON (atomically)."""
        return write_json_atomic(path, {"method": "pca_ledoit_wolf_mahalanobis_cv_threshold",
                                        "quantile": self.quantile, "cases": self.cases,
                                        "weights_sha256": self.weights_sha256, "branches": self.branches})  # fmt: skip

    @classmethod
    def load(cls, path: os.PathLike | str) -> FeatureOOD:
        """Read what :meth:`save` wrote."""
        doc = json.loads(Path(path).read_text())
        return cls(doc["branches"], float(doc["quantile"]), int(doc["cases"]), doc.get("weights_sha256", ""))


def fit_feature_ood(
    predictor, cases: Iterable[Mapping], out: os.PathLike | str, quantile: float = 0.99
) -> FeatureOOD:
    """Fit a :class:`FeatureOOD` on cases graded with their ground-truth lesion maps; save it to ``out``.

    Args:
        predictor: a :class:`mednet.inference.GradingPredictor` (its network, preprocessing, and
            ``weights``, whose SHA-256 the fit records).
        cases: datalist entries with absolute paths per sequence and ``label`` (the truth).
        out: the JSON to write (usually ``ood.json`` beside the weights).
        quantile: see :meth:`FeatureOOD.fit`.
    """
    from mednet.io.cases import load_case

    collected: dict[str, list[np.ndarray]] = {}
    for case in cases:
        loaded = load_case(case, list(predictor.bundle.sequences), label_keys=("label",))
        features = predictor.features(loaded.images, loaded.label, str(case.get("case_id", "case")))
        for name, value in features.items():
            collected.setdefault(name, []).append(value)
    ood = FeatureOOD.fit({name: np.stack(values) for name, values in collected.items()}, quantile,
                         weights_sha256=file_sha256(predictor.weights))  # fmt: skip
    ood.save(out)
    return ood
