"""The grading stage as a predictor built once from a classification bundle.

:class:`GradingPredictor` parses the bundle's ``inference.json`` once and takes its
network (one branch per sequence), its preprocessing (orientation, lesion features,
the lesion's slices), its aggregation and its case fusion. A case then goes through
in memory: the images already read and the localisation's label map in, a
:class:`mednet.grading.CaseGrading` out (each sequence's probabilities, the fused
diagnosis). Only the sequences the case has are graded; the fusion decides with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor

from mednet.bundles.spec import BundleSpec
from mednet.errors import transform_errors_unwrapped
from mednet.grading.case import CaseGrading, grade_case
from mednet.grading.ood import fitted_check, penultimate_features
from mednet.inference.device import autocast, choose_device, choose_precision
from mednet.io.cases import present_sequences

__all__ = ["GradingPredictor"]


class GradingPredictor:
    """A classification bundle's inference, built once, applied to one case at a time.

    Args:
        bundle: the bundle.
        device: ``auto``, ``cpu`` or ``cuda``.
        weights: the checkpoint (default the bundle's ``models/model.pt``); an ``ood.json``
            beside it, fitted for these weights (:func:`mednet.grading.fit_feature_ood`; its
            SHA-256 is checked), makes out-of-distribution cases indeterminate (``ood_check``
            says whether it applies).
        precision: the networks' arithmetic, ``auto`` (float16 on a GPU, float32 on the CPU),
            ``float32``, ``bfloat16`` or ``float16`` (see :func:`mednet.inference.choose_precision`).
        overrides: config entries to replace (``aggregation="median"``).

    Raises:
        FileNotFoundError: no weights (the message says how to get them).
    """

    def __init__(self, bundle: BundleSpec, device: str | torch.device = "auto", weights=None, precision: str = "auto",
                 **overrides):  # fmt: skip
        self.bundle = bundle
        self.device = choose_device(device)
        self.precision = choose_precision(self.device, precision)
        parser = bundle.parser(device=self.device, **overrides)
        self.network = parser.get_parsed_content("network_def", instantiate=True)
        self.weights = Path(weights) if weights else bundle.weights
        bundle.load_weights(self.network, self.weights, self.device)
        self.preprocessing = parser.get_parsed_content("preprocessing", instantiate=True)
        self.fusion = parser.get_parsed_content("case_fuser", instantiate=True)
        self.aggregation = str(parser.get_parsed_content("aggregation"))
        self.extra_inputs = [k for k in parser.get_parsed_content("input_keys") if k not in bundle.sequences]
        # the bundle's loader batches ``batch_size`` cases of up to ``n_slices`` slices each: as many slices at once
        self.batch_size = int(parser.get_parsed_content("batch_size")) * int(parser.get_parsed_content("n_slices"))
        self.ood, self.ood_check = fitted_check(self.weights)

    def _run(self, images: Mapping, labels, case_id: str) -> tuple[dict, dict, list[int]]:
        """The case's slices through the branches present.

        Returns:
            Per sequence ``(N, C)`` probabilities, per sequence the ``(D,)`` mean features
            before the branch's last layer, and the slices' ``z``.
        """
        present = present_sequences(images, self.bundle.sequences)
        if not present:
            raise ValueError(f"case {case_id}: none of the grading sequences {list(self.bundle.sequences)}")
        data = {"case_id": case_id, **{s: images[s] for s in present}, self.bundle.roi_key: labels}
        with transform_errors_unwrapped():  # a refused input's own message, not MONAI's "applying transform"
            slices = self.preprocessing(data)
        inputs = {key: torch.stack([torch.as_tensor(s[key]) for s in slices]) for key in [*present, *self.extra_inputs]}
        probabilities: dict[str, list[np.ndarray]] = {s: [] for s in present}
        features: dict[str, list[np.ndarray]] = {s: [] for s in present}
        with autocast(self.device, self.precision):
            for start in range(0, len(slices), self.batch_size):
                batch = {k: v[start : start + self.batch_size].to(self.device) for k, v in inputs.items()}
                outputs, penultimate = penultimate_features(self.network, batch)
                for name, p in outputs["probabilities"].items():
                    probabilities[name].append(p.float().cpu().numpy())
                    features[name].append(penultimate[name].cpu().numpy())
        return ({name: np.concatenate(chunks) for name, chunks in probabilities.items()},
                {name: np.concatenate(chunks).mean(axis=0) for name, chunks in features.items()},
                [int(s["slice_index"]) for s in slices])  # fmt: skip

    def features(self, images: Mapping, labels, case_id: str = "case") -> dict[str, np.ndarray]:
        """Sequence -> the case's ``(D,)`` mean features before each branch's last layer (:mod:`mednet.grading.ood`)."""
        return self._run(images, labels, case_id)[1]

    def __call__(
        self,
        images: Mapping[str, MetaTensor | str],
        labels: MetaTensor | str,
        case_id: str = "case",
        readings: Mapping[str, object] | None = None,
    ) -> CaseGrading:
        """Grade one case around its lesion.

        Args:
            images: sequence -> ``(1, x, y, z)`` image already read (or a path); the
                sequences of the bundle that the case has.
            labels: the ``(1, x, y, z)`` label map on the images' grid (the localisation's).
            case_id: the case's name, for messages.
            readings: reader role -> reading, for DL-MDT.

        Returns:
            The :class:`~mednet.grading.CaseGrading` of the sequences present; with an
            ``ood.json`` beside the weights, a case unlike the training cases is indeterminate.

        Raises:
            ValueError: no sequence of the bundle, or no lesion in ``labels``.
        """
        probabilities, features, slice_index = self._run(images, labels, case_id)
        ood = self.ood.ratios(features) if self.ood is not None else None
        return grade_case(probabilities, self.bundle.classes, self.aggregation, self.fusion, readings,
                          slice_index=slice_index, ood=ood)  # fmt: skip
