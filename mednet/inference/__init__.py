"""Prediction engine: predictors built once per cohort from the bundles, one case at a time in memory.

:class:`LocalisationPredictor` and :class:`GradingPredictor` take the network, transforms,
inferer and fusion from a bundle's own ``inference.json`` (parsed once), load the weights
once and choose the device once (:func:`choose_device`: the GPU when present, mixed
precision there). :mod:`mednet.pipeline` chains them for a case and a cohort.
"""

from mednet.inference.device import DEVICES, PRECISIONS, autocast, choose_device, choose_precision
from mednet.inference.grader import GradingPredictor
from mednet.inference.localiser import Localisation, LocalisationPredictor

__all__ = [
    "DEVICES", "PRECISIONS", "GradingPredictor", "Localisation", "LocalisationPredictor", "autocast", "choose_device",
    "choose_precision",
]  # fmt: skip
