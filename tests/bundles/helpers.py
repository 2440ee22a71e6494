"""Bundle names, tiny settings, and config access for the bundle tests."""

from __future__ import annotations

import json

from mednet.bundles import BUNDLES_DIR as BUNDLES
from mednet.bundles import run_bundle

__all__ = ["BUNDLES", "CLASSIFICATION", "DISEASE", "SEGMENTATION", "TINY", "TINY_GRADING", "config", "run_bundle"]

SEGMENTATION = ("glioma_mri_segmentation", "cpa_mri_segmentation", "neuroblastoma_mri_segmentation")
DISEASE = {
    "glioma_mri_segmentation": "glioma",
    "cpa_mri_segmentation": "cpa",
    "neuroblastoma_mri_segmentation": "neuroblastoma",
}

CLASSIFICATION = {
    "glioma_mri_classification": ("glioma", ["LGG", "HGG"]),
    "cpa_mri_classification": ("cpa", ["MG", "AN"]),
    "neuroblastoma_mri_classification": ("neuroblastoma", ["L1", "L2", "M"]),
}

#: Settings small enough for a classification test: 4 slices of 16 x 16 per case, one epoch.
TINY_GRADING = {"n_slices": 4, "slice_size": [16, 16], "num_workers": 0, "max_epochs": 1, "batch_size": 2}

#: Settings small enough for a test: one epoch on 32 x 32 x 16 patches, no workers.
TINY = {"roi_size": [32, 32, 16], "num_workers": 0, "max_epochs": 1, "val_interval": 1, "num_samples": 1}


def config(bundle: str, name: str) -> dict:
    """A bundle config file as JSON."""
    return json.loads((BUNDLES / bundle / "configs" / f"{name}.json").read_text())
