"""RandSequenceDropout(d): a random proper subset of the sequences (channels) set to 0, seeded as MONAI's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset, MetaTensor
from monai.transforms import Compose, NormalizeIntensity, NormalizeIntensityd

from mednet.transforms import RandSequenceDropout, RandSequenceDropoutd


def _image(channels: int = 4, seed: int = 0) -> MetaTensor:
    """``(C, 6, 5, 4)`` with no zero voxel, so that a zeroed channel is all zero only if dropped."""
    values = torch.rand(channels, 6, 5, 4, generator=torch.Generator().manual_seed(seed)) + 0.5
    affine = torch.diag(torch.tensor([2.0, 3.0, 4.0, 1.0]))
    return MetaTensor(values, affine=affine, meta={"filename_or_obj": "case_0001"})


def _kept(out: torch.Tensor | np.ndarray) -> np.ndarray:
    """Channels left non-zero, ``(C,)`` booleans."""
    return np.asarray(torch.as_tensor(out).flatten(1).abs().sum(1) > 0)


def test_never_drops_every_channel_and_draws_every_subset_size():
    image = _image(4)
    dropout = RandSequenceDropout(prob=1.0).set_random_state(seed=0)
    kept_counts, subsets = [], set()
    for _ in range(300):
        out = dropout(image)
        kept = _kept(out)
        assert 1 <= kept.sum() <= 3  # a proper, non-empty subset kept
        assert np.array_equal(kept, dropout.kept)
        for c in np.flatnonzero(kept):
            assert torch.equal(out[c], image[c])  # kept channels untouched
        kept_counts.append(int(kept.sum()))
        subsets.add(tuple(kept))
    # how many to keep is uniform over 1..3, then which: all 4 + 6 + 4 = 14 proper subsets occur
    assert set(kept_counts) == {1, 2, 3} and len(subsets) == 14
    assert all(abs(kept_counts.count(k) / 300 - 1 / 3) < 0.1 for k in (1, 2, 3))


def test_two_channels_drop_exactly_one():
    dropout = RandSequenceDropout(prob=1.0).set_random_state(seed=3)
    dropped = [int(np.flatnonzero(~_kept(dropout(_image(2))))[0]) for _ in range(50)]
    assert set(dropped) == {0, 1}


def test_prob_zero_is_the_identity_and_prob_is_the_rate():
    image = _image(3)
    assert RandSequenceDropout(prob=0.0)(image) is image
    dropout = RandSequenceDropout(prob=0.3).set_random_state(seed=1)
    applied = [not _kept(dropout(image)).all() for _ in range(400)]
    assert 0.22 < np.mean(applied) < 0.38


def test_one_channel_is_left_alone():
    image = _image(1)
    assert torch.equal(RandSequenceDropout(prob=1.0)(image), image)


def test_seeded_reproducibility():
    image = _image(4)
    first = RandSequenceDropout(prob=0.5).set_random_state(seed=7)
    second = RandSequenceDropout(prob=0.5).set_random_state(seed=7)
    other = RandSequenceDropout(prob=0.5).set_random_state(seed=8)
    a = [_kept(first(image)) for _ in range(20)]
    assert all(np.array_equal(x, _kept(second(image))) for x in a)
    assert not all(np.array_equal(x, _kept(other(image))) for x in a)


def test_shape_type_and_metadata_kept_and_input_not_modified():
    image = _image(4)
    before = image.clone()
    out = RandSequenceDropout(prob=1.0).set_random_state(seed=0)(image)
    assert isinstance(out, MetaTensor) and out.shape == image.shape and out.dtype == image.dtype
    assert torch.equal(out.affine, image.affine) and out.meta["filename_or_obj"] == "case_0001"
    assert torch.equal(image, before)
    array = image.numpy().copy()
    out = RandSequenceDropout(prob=1.0).set_random_state(seed=0)(array)
    assert isinstance(out, np.ndarray) and out.shape == array.shape and 1 <= _kept(out).sum() <= 3


def test_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"RandSequenceDropout: prob: expected a probability in \[0, 1\], found 1.5"):
        RandSequenceDropout(prob=1.5)
    with pytest.raises(ValueError, match=r"RandSequenceDropoutd: prob: .* found -0.1"):
        RandSequenceDropoutd("image", prob=-0.1)
    with pytest.raises(ValueError, match=r"img: expected a channel-first image \(C, \*spatial\), found \(5,\)"):
        RandSequenceDropout(prob=1.0)(torch.ones(5))
    dropout = RandSequenceDropout(prob=1.0)
    dropout.randomize(4)
    with pytest.raises(ValueError, match="img has 3 channels, the last draw was for 4"):
        dropout(_image(3), randomize=False)


def test_dictionary_drops_the_same_channels_in_every_key_and_keeps_other_keys():
    data = {"image": _image(4, seed=0), "other": _image(4, seed=1), "label": torch.ones(1, 6, 5, 4)}
    transform = RandSequenceDropoutd(["image", "other"], prob=1.0).set_random_state(seed=2)
    for _ in range(20):
        out = transform(data)
        assert np.array_equal(_kept(out["image"]), _kept(out["other"])) and not _kept(out["image"]).all()
        assert out["label"] is data["label"]
        assert isinstance(out["image"], MetaTensor) and torch.equal(out["image"].affine, data["image"].affine)
    assert RandSequenceDropoutd("image", prob=0.0)(data)["image"] is data["image"]
    with pytest.raises(ValueError, match=r"keys: expected the same number of channels, found \{'image': 4, 'x': 3\}"):
        RandSequenceDropoutd(["image", "x"], prob=1.0)({"image": _image(4), "x": _image(3)})
    with pytest.raises(KeyError, match="missing"):
        RandSequenceDropoutd("missing", prob=1.0)(data)
    assert RandSequenceDropoutd("missing", prob=1.0, allow_missing_keys=True)(data)["image"] is data["image"]


def test_dictionary_is_seeded_by_monai_dataloader():
    """A MONAI DataLoader seeds its dataset's transforms from torch's seed: same seed, same draws."""
    cases = [{"image": _image(3, seed=i)} for i in range(12)]

    def draws(seed: int, workers: int) -> list:
        torch.manual_seed(seed)
        dataset = Dataset(cases, Compose([RandSequenceDropoutd("image", prob=0.5)]))
        loader = DataLoader(dataset, batch_size=1, num_workers=workers)
        return [tuple(_kept(batch["image"][0])) for batch in loader]

    assert draws(0, 0) == draws(0, 0)
    assert draws(0, 0) != draws(1, 0)
    assert draws(5, 2) == draws(5, 2)


def test_normalize_intensity_leaves_an_all_zero_channel_all_zero():
    """Inference gives a missing sequence as a zero channel: per-channel non-zero normalisation keeps it 0, no NaN."""
    image = _image(3)
    image[1] = 0
    image[2, :2] = 0  # a partly empty channel: only its non-zero voxels are normalised
    out = NormalizeIntensity(nonzero=True, channel_wise=True)(image.clone())
    assert torch.isfinite(out).all()
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    assert (out[2, :2] == 0).all()
    for c in (0, 2):
        values = out[c][image[c] != 0]
        assert abs(float(values.mean())) < 1e-5 and abs(float(values.std(unbiased=False)) - 1) < 1e-4
    out = NormalizeIntensityd("image", nonzero=True, channel_wise=True)({"image": torch.zeros(2, 4, 4, 4)})["image"]
    assert torch.equal(out, torch.zeros(2, 4, 4, 4))
