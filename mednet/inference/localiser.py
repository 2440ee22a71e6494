"""The localisation stage as a predictor built once from a segmentation bundle.

:class:`LocalisationPredictor` parses the bundle's ``inference.json`` once with MONAI's
``ConfigParser`` and takes from it the network, the preprocessing, the inferer and the
postprocessing: the very objects ``python -m monai.bundle run`` uses, so both give the
same label map by construction. The weights are loaded once (``weights_only=True``) and
the device is chosen once. A case then goes through it in memory: the images already
read by :func:`mednet.io.load_case` (or paths, read the same way by the bundle's
``LoadSequencesd``) in, a :class:`Localisation` out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor

from mednet.bundles.spec import BundleSpec
from mednet.errors import transform_errors_unwrapped
from mednet.inference.device import autocast, choose_device, choose_precision
from mednet.io.cases import present_sequences
from mednet.transforms import Localised

__all__ = ["Localisation", "LocalisationPredictor"]


@dataclass
class Localisation:
    """What the localisation stage found in one case.

    Attributes:
        labels: ``(1, x, y, z)`` int16 MetaTensor, the cleaned organ and lesion map on the
            reference sequence's grid (its affine and metadata).
        lesions: the lesion table, one dict per lesion (see :func:`mednet.localisation.find_lesions`).
        label_table: ``[{"value", "name", "colour"}, ...]`` without background.
        sequences_used: the sequences the network saw (a missing one was a zero channel).
        reference: the sequence whose grid the map is on.
        outside_field_of_view: voxels found beyond the scan's acquired field of view
            (:class:`mednet.transforms.FieldOfViewFilld`): filled for the network, background
            in the map; 0 when the bundle's preprocessing does not look for them.
    """

    labels: MetaTensor
    lesions: list[dict]
    label_table: list[dict]
    sequences_used: list[str]
    reference: str
    outside_field_of_view: int = 0

    @property
    def array(self) -> np.ndarray:
        """``(x, y, z)`` label values."""
        return self.labels[0].detach().cpu().numpy()


class LocalisationPredictor:
    """A segmentation bundle's inference, built once, applied to one case at a time.

    Args:
        bundle: the bundle.
        device: ``auto``, ``cpu`` or ``cuda`` (see :func:`mednet.inference.choose_device`).
        weights: the checkpoint (default the bundle's ``models/model.pt``).
        precision: the networks' arithmetic, ``auto`` (float16 on a GPU, float32 on the CPU),
            ``float32``, ``bfloat16`` or ``float16`` (see :func:`mednet.inference.choose_precision`).
        overrides: config entries to replace (``sw_overlap=0.25``).

    Raises:
        FileNotFoundError: no weights (the message says how to get them).
        ValueError: a device that is not there; a checkpoint that is not a plain state dict.

    Example:
        >>> localise = LocalisationPredictor(BundleSpec.load("bundles/glioma_mri_segmentation"))  # doctest: +SKIP
        >>> found = localise({"case_id": "c1", "t1": "c1_t1.nii.gz", ...})  # doctest: +SKIP
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
        self.inferer = parser.get_parsed_content("inferer", instantiate=True)
        self.postprocessing = parser.get_parsed_content("postprocessing", instantiate=True)
        steps = (self.postprocessing.flatten().transforms if hasattr(self.postprocessing, "flatten")
                 else [self.postprocessing])  # fmt: skip
        #: the data key of the voxels beyond the field of view, as the bundle's Localised reads it
        self.outside_key = next((t.outside_key for t in steps if isinstance(t, Localised)), None)
        self.label_table = [dict(row) for row in bundle.label_table]

    def __call__(self, case: Mapping) -> Localisation:
        """Localise one case.

        Args:
            case: ``case_id`` and, per sequence of the bundle, a path or a ``(1, x, y, z)``
                MetaTensor already read by :mod:`mednet.io`; at least one sequence.

        Returns:
            The :class:`Localisation`, on the first present sequence's grid.
        """
        keys = present_sequences(case, self.bundle.sequences)
        with transform_errors_unwrapped():  # a refused input's own message, not MONAI's "applying transform"
            data = self.preprocessing({"case_id": case.get("case_id", "case"), **{k: case[k] for k in keys}})
        image = data["image"]
        with autocast(self.device, self.precision):
            pred = self.inferer(image[None].to(self.device), self.network)[0]
        data["pred"] = MetaTensor(pred.float().cpu(), meta=dict(image.meta))  # the input's metadata, as decollate gives
        data["pred"].applied_operations = list(image.applied_operations)
        data = self.postprocessing(data)
        outside = data.get(self.outside_key) if self.outside_key else None
        return Localisation(
            labels=data["pred"], lesions=list(data["pred_lesions"]), label_table=self.label_table,
            sequences_used=list(data["sequences_used"]), reference=data["sequences_used"][0],
            outside_field_of_view=int(outside.sum()) if outside is not None else 0,
        )  # fmt: skip
