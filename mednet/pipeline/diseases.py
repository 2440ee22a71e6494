"""The three diseases as configurations of one pipeline: which bundles, which sequences.

A disease names its localisation (segmentation) bundle and its grading (classification)
bundle; the sequences a case needs are read from the bundles' own ``inference.json``
(``image_keys`` of the first, ``sequences`` of the second), so that the pipeline and the
bundles cannot disagree.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from mednet.bundles import bundle_path
from mednet.options import choose

__all__ = ["DISEASES", "DiseaseSpec", "disease_spec"]

#: disease -> (localisation bundle, grading bundle)
DISEASES = {
    "glioma": ("glioma_mri_segmentation", "glioma_mri_classification"),
    "cpa": ("cpa_mri_segmentation", "cpa_mri_classification"),
    "neuroblastoma": ("neuroblastoma_mri_segmentation", "neuroblastoma_mri_classification"),
}


@dataclass(frozen=True)
class DiseaseSpec:
    """What the pipeline runs for one disease.

    Attributes:
        name: the disease.
        localisation: the segmentation bundle's folder.
        grading: the classification bundle's folder.
        required: the sequences every case needs (localisation's inputs, then grading's).
        classes: the grading classes.
        versions: bundle name -> its ``metadata.json`` version.
        sequences: the grading branches (the sequences with a probability of their own).
        roi_key: the grading bundle's region-of-interest key (the label map it crops around).
        lesion_values: the label values graded (and outlined in the overview, with
            ``metastasis_values``).
        metastasis_values: the label values of distant lesions (neuroblastoma), else empty.
    """

    name: str
    localisation: Path
    grading: Path
    required: tuple[str, ...]
    classes: tuple[str, ...]
    versions: dict[str, str]
    sequences: tuple[str, ...]
    roi_key: str
    lesion_values: tuple[int, ...]
    metastasis_values: tuple[int, ...] = ()

    def weights(self, bundle: Path) -> Path:
        """The bundle's ``models/model.pt``."""
        return bundle / "models" / "model.pt"

    def check_weights(self) -> None:
        """Raise a FileNotFoundError saying how to train any bundle that has no weights."""
        for bundle in (self.localisation, self.grading):
            path = self.weights(bundle)
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: bundle {bundle.name} has no trained weights. Train it with\n"
                    f"  python -m monai.bundle run --config_file {bundle}/configs/train.json "
                    f"--bundle_root {bundle} --datalist <datalist.json>\n"
                    "or run `mednet demo`, which trains every bundle briefly on synthetic data "
                    "(or point --bundles at a folder of trained bundles)."
                )


def _config(bundle: Path, name: str) -> dict:
    return json.loads((bundle / "configs" / f"{name}.json").read_text())


def disease_spec(disease: str, bundles: os.PathLike | str | None = None) -> DiseaseSpec:
    """The :class:`DiseaseSpec` of ``disease`` with bundles from ``bundles`` (default: mednet's).

    Raises:
        ValueError: an unknown disease (with the closest name).
        FileNotFoundError: a bundle folder that is not there.
    """
    name = choose(disease, DISEASES, "disease")
    localisation, grading = (bundle_path(b, bundles) for b in DISEASES[name])
    image_keys = _config(localisation, "inference")["image_keys"]
    grading_config = _config(grading, "inference")
    required = tuple(dict.fromkeys([*image_keys, *grading_config["sequences"]]))
    versions = {b.name: json.loads((b / "configs" / "metadata.json").read_text())["version"]
                for b in (localisation, grading)}  # fmt: skip
    return DiseaseSpec(
        name,
        localisation,
        grading,
        required,
        tuple(grading_config["classes"]),
        versions,
        tuple(grading_config["sequences"]),
        grading_config["roi_key"],
        tuple(grading_config["lesion_values"]),
        tuple(grading_config.get("metastasis_values", ())),
    )
