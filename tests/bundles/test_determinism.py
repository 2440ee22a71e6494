"""The same training command twice gives the same weights and validation metrics on CPU; another seed does not.

Trained with the configs' own ``num_workers`` (2: DataLoader worker processes and CacheDataset
threads), their random augmentation (sequence dropout included) and ``mednet.bundles.train_bundle``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mednet.bundles import train_bundle

pytestmark = pytest.mark.bundle

#: Small enough for seconds per run: native-like voxels (few sliding windows), a small patch, a narrow network.
SEGMENTATION = {"roi_size": [32, 32, 16], "pixdim": [4.0, 4.0, 3.0], "num_samples": 1, "val_interval": 1,
                "sequence_dropout": 0.5, "network_def#channels": [4, 8, 16, 32, 64]}  # fmt: skip
GRADING = {"n_slices": 4, "slice_size": [16, 16], "batch_size": 2, "network_kwargs": {"channels": [4, 8], "hidden": 8}}


def _train(bundle: str, datalist: Path, work: Path, seed: int, settings: dict) -> tuple[dict, dict]:
    """Two epochs; the saved state dict and every TensorBoard scalar (train loss, validation metrics) by tag."""
    train_bundle(bundle, datalist, work, epochs=2, seed=seed, **settings)
    return _train_scalars(work)


def _train_scalars(work: Path) -> tuple[dict, dict]:
    """A run's ``model.pt`` and its TensorBoard scalars by tag (the steps of every part of the run, in order)."""
    state = torch.load(work / "models" / "model.pt", map_location="cpu", weights_only=True)
    scalars = {}
    for events in sorted((work / "train_log").glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            values = [(s.step, "nan" if math.isnan(s.value) else s.value) for s in accumulator.Scalars(tag)]
            scalars.setdefault(tag, []).extend(values)
    return state, scalars


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("bundle", "cohorts", "settings"),
    [("cpa_mri_segmentation", "tiny_cohorts", SEGMENTATION),
     ("cpa_mri_classification", "grading_cohorts", GRADING)],
)  # fmt: skip
def test_same_seed_same_weights_and_metrics_other_seed_other_weights(bundle, cohorts, settings, request, tmp_path):
    datalist = request.getfixturevalue(cohorts)[bundle]
    first, first_scalars = _train(bundle, datalist, tmp_path / "first", 1, settings)
    again, again_scalars = _train(bundle, datalist, tmp_path / "again", 1, settings)
    other, _ = _train(bundle, datalist, tmp_path / "other", 2, settings)

    assert _same_weights(first, again)
    validation = {tag for tag in first_scalars if tag.startswith("val_")}
    assert validation and "train_loss" in first_scalars
    assert {tag: first_scalars[tag] for tag in validation | {"train_loss"}} == {
        tag: again_scalars[tag] for tag in validation | {"train_loss"}
    }
    assert {len(v) for tag, v in first_scalars.items() if tag in validation} == {2}  # both epochs validated
    assert first.keys() == other.keys() and not _same_weights(first, other)
    record = tmp_path / "first" / "models" / "model_branches.json"  # classification: each branch's best epoch
    if record.is_file():
        assert record.read_text() == (tmp_path / "again" / "models" / "model_branches.json").read_text()


def test_train_bundle_wants_a_number_of_epochs(tmp_path):
    with pytest.raises(ValueError, match=r"epochs: expected a whole number >= 1, found 0"):
        train_bundle("cpa_mri_segmentation", tmp_path / "datalist.json", tmp_path / "work", epochs=0)
    with pytest.raises(ValueError, match=r"epochs: expected a whole number >= 1, found 2.5"):
        train_bundle("cpa_mri_segmentation", tmp_path / "datalist.json", tmp_path / "work", epochs=2.5)
    with pytest.raises(ValueError, match=r"max_epochs=3: give the run's length as epochs= instead"):
        train_bundle("cpa_mri_segmentation", tmp_path / "datalist.json", tmp_path / "work", epochs=2, max_epochs=3)
    assert not (tmp_path / "work").exists()


class StoppedError(Exception):
    """The run stopped after an epoch, as a killed process would."""


@pytest.mark.parametrize(
    ("bundle", "cohorts", "settings"),
    [("cpa_mri_segmentation", "tiny_cohorts", SEGMENTATION),
     ("cpa_mri_classification", "grading_cohorts", {**GRADING, "num_workers": 0})],
)  # fmt: skip
def test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(bundle, cohorts, settings, request,
                                                                           tmp_path, monkeypatch):  # fmt: skip
    from mednet.engines import Resume

    datalist = request.getfixturevalue(cohorts)[bundle]
    settings = {**settings, "val_interval": 1}
    train_bundle(bundle, datalist, tmp_path / "whole", epochs=3, seed=1, **settings)

    save = Resume.save

    def save_then_stop(self, engine):
        save(self, engine)
        if engine.state.epoch == 2:
            raise StoppedError

    with monkeypatch.context() as patch:
        patch.setattr(Resume, "save", save_then_stop)
        with pytest.raises(RuntimeError) as raised:  # MONAI's config parser wraps what the run raised
            train_bundle(bundle, datalist, tmp_path / "parts", epochs=3, seed=1, **settings)
    causes = [raised.value]
    while causes[-1].__cause__ is not None:
        causes.append(causes[-1].__cause__)
    assert isinstance(causes[-1], StoppedError)
    state = tmp_path / "parts" / "models" / "resume.pt"
    assert torch.load(state, map_location="cpu", weights_only=True)["epoch"] == 2
    seconds = train_bundle(bundle, datalist, tmp_path / "parts", epochs=3, seed=1, **settings)

    assert not state.exists()  # the run finished
    timing = json.loads((tmp_path / "parts" / "models" / "training_time.json").read_text())
    assert timing["resumed_at_epochs"] == [2] and timing["epochs"] == 3 and seconds == timing["seconds"] > 0
    whole = torch.load(tmp_path / "whole" / "models" / "model.pt", map_location="cpu", weights_only=True)
    parts = torch.load(tmp_path / "parts" / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert _same_weights(whole, parts)
    _, whole_scalars = _train_scalars(tmp_path / "whole")
    _, parts_scalars = _train_scalars(tmp_path / "parts")
    last = {tag: values[-1] for tag, values in whole_scalars.items() if tag.startswith("val_")}
    assert last and last == {tag: parts_scalars[tag][-1] for tag in last}  # the third epoch's validation
    record = tmp_path / "whole" / "models" / "model_branches.json"
    if record.is_file():
        assert record.read_text() == (tmp_path / "parts" / "models" / "model_branches.json").read_text()
    # a run with other settings is not resumed: it starts afresh
    train_bundle(bundle, datalist, tmp_path / "parts", epochs=1, seed=1, **settings)
    assert json.loads((tmp_path / "parts" / "models" / "training_time.json").read_text())["resumed_at_epochs"] == []
