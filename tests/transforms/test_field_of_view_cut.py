"""RandFieldOfViewCut(d): a random oblique plane cuts a training sample's field of view (image 0, label background)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose

from mednet.transforms import RandFieldOfViewCut, RandFieldOfViewCutd, RandSequenceDropoutd

SHAPE = (20, 18, 10)


def _sample(seed: int = 0) -> dict:
    """An image ``(2, *SHAPE)`` with no zero voxel and a label ``(1, *SHAPE)`` all lesion (2)."""
    values = torch.rand(2, *SHAPE, generator=torch.Generator().manual_seed(seed)) + 0.5
    affine = torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0]))
    return {
        "image": MetaTensor(values, affine=affine),
        "label": MetaTensor(torch.full((1, *SHAPE), 2.0), affine=affine),
    }


def test_cuts_a_half_space_of_the_drawn_fraction_in_every_direction():
    cut = RandFieldOfViewCut(prob=1.0, fraction=(0.1, 0.3)).set_random_state(seed=0)
    coords = np.stack(np.meshgrid(*(np.arange(s) for s in SHAPE), indexing="ij"), -1).reshape(-1, 3)
    corners = set()
    for _ in range(60):
        mask = cut(SHAPE)
        assert mask.shape == SHAPE and mask.dtype == bool
        assert 0.1 - 0.01 <= mask.mean() <= 0.3 + 0.01
        # a half-space: every cut voxel lies further along the drawn normal than every kept one
        projection = coords @ cut._normal
        assert projection[mask.reshape(-1)].min() >= projection[~mask.reshape(-1)].max()
        corners.add(tuple(np.sign(cut._normal).astype(int)))
    assert len(corners) >= 6  # normals drawn all round the sphere, not along one axis


def test_cut_voxels_are_zero_in_every_channel_and_background_in_the_label():
    data = _sample()
    out = RandFieldOfViewCutd("image", label_keys="label", prob=1.0).set_random_state(seed=3)(data)
    beyond = out["label"][0] == 0
    assert 0.05 - 0.01 <= float(beyond.float().mean()) <= 0.35 + 0.01
    for channel in range(2):
        assert torch.all(out["image"][channel][beyond] == 0)
        assert torch.equal(out["image"][channel][~beyond], data["image"][channel][~beyond])
    assert torch.all(out["label"][0][~beyond] == 2)
    assert isinstance(out["image"], MetaTensor) and torch.equal(out["image"].affine, data["image"].affine)
    assert torch.all(data["image"] > 0)  # the input is not modified in place


def test_seeded_as_monai_transforms_and_prob_is_the_rate():
    first = [RandFieldOfViewCutd("image", "label", prob=0.5).set_random_state(seed=7)(_sample())["label"] for _ in "ab"]
    assert torch.equal(first[0], first[1])
    cut = RandFieldOfViewCutd("image", "label", prob=0.3).set_random_state(seed=1)
    applied = [bool((cut(_sample())["label"] == 0).any()) for _ in range(200)]
    assert 0.2 < np.mean(applied) < 0.4


def test_prob_zero_changes_nothing_and_draws_nothing():
    """A config that leaves it at 0 trains exactly as before the transform existed."""
    data = _sample()
    idle = RandFieldOfViewCutd("image", "label", prob=0.0).set_random_state(seed=5)
    before = [(r.get_state()[1].copy(), r.get_state()[2]) for r in (idle.R, idle.cut.R)]
    assert idle(data)["image"] is data["image"]
    after = [(r.get_state()[1], r.get_state()[2]) for r in (idle.R, idle.cut.R)]
    assert all(np.array_equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(after, before, strict=True))
    with_cut = Compose([RandSequenceDropoutd("image", prob=0.5), RandFieldOfViewCutd("image", "label", prob=0.0)])
    without = Compose([RandSequenceDropoutd("image", prob=0.5)])
    with_cut.set_random_state(seed=11)
    without.set_random_state(seed=11)
    for _ in range(20):
        assert torch.equal(with_cut(_sample())["image"], without(_sample())["image"])


def test_refuses_bad_settings_and_mismatched_keys():
    with pytest.raises(ValueError, match="prob"):
        RandFieldOfViewCutd("image", prob=1.5)
    with pytest.raises(ValueError, match="fraction"):
        RandFieldOfViewCut(prob=1.0, fraction=(0.0, 0.5))
    with pytest.raises(ValueError, match="fraction"):
        RandFieldOfViewCut(prob=1.0, fraction=(0.4, 0.2))
    data = _sample()
    data["label"] = torch.zeros(1, 4, 4, 4)
    with pytest.raises(ValueError, match="spatial shape"):
        RandFieldOfViewCutd("image", "label", prob=1.0)(data)
