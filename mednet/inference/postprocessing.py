"""Scoring a localiser's lesion post-processing settings on validation cases, the network run once per case.

A segmentation bundle's ``lesion_threshold`` and ``min_lesion_mm3`` act after the network:
:func:`score_postprocessing` runs a :class:`~mednet.inference.LocalisationPredictor` once per
case and applies every setting to the same output with the predictor's own ``InvertLabelsd``
and ``Localised`` (the inverse needs the very preprocessing objects that ran), scoring the
lesions against the case's label map; :func:`mednet.localisation.tuning.choose_postprocessing`
then chooses. Used by ``scripts/tune_postprocessing.py`` (shipped weights) and
``scripts/benchmark_localisation.py --tune`` (weights just trained).

Example:
    >>> predictor = LocalisationPredictor(BundleSpec.load("bundles/glioma_mri_segmentation"), "cpu")  # doctest: +SKIP
    >>> trials = score_postprocessing(predictor, validation_cases)  # doctest: +SKIP
    >>> choose_postprocessing(trials)  # doctest: +SKIP
    {'lesion_threshold': 0.6, 'min_lesion_mm3': 50.0}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from monai.data import MetaTensor

from mednet.inference.localiser import LocalisationPredictor
from mednet.io import read_image
from mednet.io.validation import spacing_from_affine
from mednet.localisation.tuning import LESION_THRESHOLDS, MIN_LESION_MM3
from mednet.metrics.localisation import map_labels, score_localisation, summarise_localisation
from mednet.transforms import Localised
from mednet.transforms.invert import InvertLabelsd

__all__ = ["PostprocessingSettings", "score_postprocessing"]


class PostprocessingSettings:
    """A predictor's post-processing with other ``lesion_threshold`` and ``min_lesion_mm3``, on one network output.

    The predictor's ``InvertLabelsd`` and ``Localised`` are given a setting for one call and
    their own settings back after it.

    Attributes:
        carried: the predictor's own ``{"lesion_threshold", "min_lesion_mm3"}`` (its bundle's).
    """

    def __init__(self, predictor: LocalisationPredictor):
        post = predictor.postprocessing
        steps = post.flatten().transforms if hasattr(post, "flatten") else [post]
        self.predictor = predictor
        try:
            self.invert = next(s for s in steps if isinstance(s, InvertLabelsd))
            self.localised = next(s for s in steps if isinstance(s, Localised))
        except StopIteration:
            raise ValueError(f"{predictor.bundle.name}: expected InvertLabelsd and Localised in its postprocessing, "
                             "found " + ", ".join(type(s).__name__ for s in steps)) from None  # fmt: skip
        self.scheme = self.localised.scheme
        self.carried = {"lesion_threshold": self.scheme.lesion_threshold, "min_lesion_mm3": self.scheme.min_lesion_mm3}

    def network_output(self, images: Mapping, case_id: str = "case") -> tuple[dict, torch.Tensor]:
        """The preprocessed case and the network's ``(C, x, y, z)`` probabilities on its grid (float32, CPU)."""
        predictor = self.predictor
        data = predictor.preprocessing({"case_id": case_id, **images})
        with torch.no_grad():
            probabilities = predictor.inferer(data["image"][None].to(predictor.device), predictor.network)[0]
        return data, probabilities.float().cpu()

    def labels(self, data: dict, probabilities: torch.Tensor, threshold: float | None, min_mm3: float) -> np.ndarray:
        """``(x, y, z)`` label map on the input grid, as the bundle gives it with these settings."""
        own = self.invert.lesion_threshold
        self.invert.lesion_threshold = threshold
        self.localised.scheme = dataclasses.replace(self.scheme, lesion_threshold=threshold, min_lesion_mm3=min_mm3)
        try:
            image = data["image"]
            pred = MetaTensor(probabilities, meta=dict(image.meta))
            pred.applied_operations = list(image.applied_operations)
            return self.predictor.postprocessing({**data, "pred": pred})["pred"][0].numpy()
        finally:
            self.invert.lesion_threshold, self.localised.scheme = own, self.scheme


def score_postprocessing(
    predictor: LocalisationPredictor,
    cases: Sequence[Mapping],
    *,
    source_labels: Sequence[int] = (),
    target_labels: Sequence[int] = (),
    min_reference_mm3: float = 0.0,
    thresholds: Sequence[float | None] = LESION_THRESHOLDS,
    floors: Sequence[float] = MIN_LESION_MM3,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Every ``thresholds`` x ``floors`` setting scored on ``cases``, patient level.

    Args:
        predictor: the localiser (its bundle's lesion classes and post-processing).
        cases: datalist entries with absolute paths: ``case_id``, the bundle's sequences (any
            non-empty subset), ``label``.
        source_labels: the label map's values relabelled as the bundle's ``evaluate.json`` does...
        target_labels: ...into these.
        min_reference_mm3: detection floor of the true lesions (the bundle's ``evaluate.json``).
        thresholds: the ``lesion_threshold`` values tried.
        floors: the ``min_lesion_mm3`` values tried.
        progress: called with a line per case.

    Returns:
        One dict per setting: ``lesion_threshold``, ``min_lesion_mm3``, ``sensitivity``,
        ``false_positives_per_scan``, ``dice_lesions`` (means over patients).
    """
    settings = PostprocessingSettings(predictor)
    lesion_classes = dict(settings.scheme.lesion_classes)
    grid = [(t, m) for t in thresholds for m in floors]
    rows: dict[tuple, list[dict]] = {key: [] for key in grid}
    for case in cases:
        images = {k: read_image(case[k]) for k in predictor.bundle.sequences if case.get(k)}
        data, probabilities = settings.network_output(images, str(case["case_id"]))
        reference = read_image(case["label"], kind="label")
        truth = map_labels(np.asarray(reference[0]).astype(np.int64), source_labels, target_labels)
        spacing = tuple(float(s) for s in spacing_from_affine(np.asarray(reference.affine)))
        for key in grid:
            row = {"case_id": case["case_id"], "patient_id": case.get("patient_id", case["case_id"])}
            row.update(score_localisation(settings.labels(data, probabilities, *key), truth, spacing, lesion_classes,
                                          lesion_classes, min_reference_mm3))  # fmt: skip
            rows[key].append(row)
        if progress:
            progress(f"{case['case_id']}: {len(grid)} settings")
    trials = []
    for (threshold, floor), scored in rows.items():
        summary = summarise_localisation(scored, lesion_classes, lesion_classes, n_boot=200)
        trials.append({"lesion_threshold": threshold, "min_lesion_mm3": floor,
                       "sensitivity": summary["detection"]["sensitivity"]["value"],
                       "false_positives_per_scan": summary["detection"]["false_positives_per_scan"]["value"],
                       "dice_lesions": summary["dice_lesions"]["value"]})  # fmt: skip
    return trials
