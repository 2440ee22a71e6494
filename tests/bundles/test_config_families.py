"""The three diseases' bundles of one task are one config with different parameters.

Whatever the three segmentation (or classification) bundles share (transforms, network
construction, inferer, handlers, engines) must stay the same in all three: only the
parameters named here may differ, so that a fix made in one bundle cannot silently be
missing from the others.
"""

from __future__ import annotations

import json

import pytest

from tests.bundles.helpers import BUNDLES

DISEASES = ("glioma", "cpa", "neuroblastoma")

#: (task, config) -> the keys whose values are the disease's own.
PARAMETERS = {
    ("segmentation", "inference"): {
        "image_keys", "label_table", "lesion_classes", "pixdim", "roi_size", "min_lesion_mm3", "lesion_threshold",
        "organ_components", "compartments", "thorax_organs", "compartment_priority", "above_organs",
    },
    ("segmentation", "train"): {
        "image_keys", "label_table", "pixdim", "roi_size", "crop_size", "source_labels", "target_labels",
        "class_weights", "crop_ratios", "flip_prob", "lr_anneal",
    },
    ("segmentation", "evaluate"): {"source_labels", "target_labels"},
    ("classification", "inference"): {
        "sequences", "classes", "num_logits", "lesion_values", "metastasis_values", "vessel_values", "compartments",
        "n_features", "fusion", "case_fusion", "readers", "min_confidence",
    },
    ("classification", "train"): {
        "sequences", "classes", "num_logits", "lesion_values", "metastasis_values", "vessel_values", "compartments",
        "n_features", "fusion",
    },
    ("classification", "evaluate"): set(),
}  # fmt: skip

#: Neuroblastoma grades with the lesion table's features too: its transform lists have this one step more.
FEATURES_STEP = "mednet.transforms.LesionFeaturesd"


def _without_features_step(value):
    if isinstance(value, dict):
        return {k: _without_features_step(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_features_step(v) for v in value if not (isinstance(v, dict) and v.get("_target_") == FEATURES_STEP)]
    return value


@pytest.mark.parametrize(("task", "config"), sorted(PARAMETERS))
def test_only_the_diseases_parameters_differ(task, config):
    docs = {d: json.loads((BUNDLES / f"{d}_mri_{task}" / "configs" / f"{config}.json").read_text()) for d in DISEASES}
    if task == "classification":
        docs = {d: _without_features_step(doc) for d, doc in docs.items()}
    keys = set().union(*docs.values())
    differ = {k for k in keys if len({json.dumps(doc.get(k), sort_keys=True) for doc in docs.values()}) > 1}
    assert differ <= PARAMETERS[(task, config)], f"{task} {config}.json: shared keys differ: {sorted(differ - PARAMETERS[(task, config)])}"
    missing = {d: sorted(keys - set(doc)) for d, doc in docs.items() if keys - set(doc)}
    assert not missing, f"{task} {config}.json: keys some bundles lack: {missing}"
