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
        "channels", "organ_components", "compartments", "thorax_organs", "compartment_priority", "above_organs",
    },
    ("segmentation", "train"): {
        "image_keys", "label_table", "pixdim", "roi_size", "crop_size", "source_labels", "target_labels",
        "class_weights", "crop_ratios", "flip_prob", "lr_anneal", "channels",
    },
    ("segmentation", "evaluate"): {"source_labels", "target_labels", "max_lesion_floor_mm3"},
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


#: Files with no parameter of the disease's own: the same bytes in the three bundles of a task.
IDENTICAL = {"segmentation": ("multi_gpu_train.json", "logging.conf"),
             "classification": ("multi_gpu_train.json", "logging.conf", "fit_stacking.json")}  # fmt: skip


@pytest.mark.parametrize(("task", "name"), [(t, n) for t, names in IDENTICAL.items() for n in names])
def test_files_without_parameters_are_the_same_in_every_disease(task, name):
    texts = {d: (BUNDLES / f"{d}_mri_{task}" / "configs" / name).read_bytes() for d in DISEASES}
    assert len(set(texts.values())) == 1, f"{task} {name}: differs between {sorted(texts)}"


def test_a_diseases_two_bundles_must_agree_on_the_reference_sequence():
    """The label map is made on the localisation's first sequence's grid; grading reads it on its own first's."""
    from dataclasses import replace

    from mednet.pipeline.diseases import disease_spec

    spec = disease_spec("glioma")
    assert spec.localisation.sequences[0] == spec.grading.sequences[0] == spec.sequences[0]
    swapped = replace(spec.grading, sequences=tuple(reversed(spec.grading.sequences)))
    with pytest.raises(ValueError, match="the bundles disagree on the reference sequence"):
        replace(spec, grading=swapped)


def _strings(value):
    """Every string in a parsed config, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_label_tables_are_literal_and_handlers_are_named():
    """A label table is data (no ``$`` expression, colours as numbers); no config reaches a handler by position."""
    import re

    configs = sorted(BUNDLES.glob("*/configs/*.json"))
    assert len(configs) >= 24
    for path in configs:
        doc = json.loads(path.read_text())
        table = doc.get("label_table")
        if table is not None:
            assert isinstance(table, list) and table, path
            for row in table:
                assert {"value", "name", "colour"} <= set(row), (path, row)
                assert not any(s.startswith("$") or "::" in s for s in _strings(row)), (path, row)
                assert all(isinstance(c, (int, float)) for c in row["colour"]), (path, row)
        positional = [s for s in _strings(doc) if re.search(r"handlers#\d", s)]
        assert not positional, (path, positional)
