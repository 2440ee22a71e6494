"""InvertLabelsd decides the label map that MONAI Invertd's probabilities decide (and their lesion probabilities), whatever the grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import (
    CenterSpatialCropd,
    Compose,
    EnsureTyped,
    Invertd,
    NormalizeIntensityd,
    Orientationd,
    SpatialPadd,
)

from mednet.localisation import decide_labels
from mednet.transforms import InvertLabelsd, Localised, Spacingd


def _affine(kind: str) -> np.ndarray:
    """Input grids: as stored by scanners and converters (flipped, permuted, oblique, anisotropic)."""
    if kind == "ras":
        return np.diag([0.9, 0.9, 1.1, 1.0])
    if kind == "lps":
        return np.diag([-0.9, -0.9, 1.1, 1.0])
    if kind == "permuted":
        return np.array([[0, 0, 1.2, 0], [-0.9, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])
    angle = np.deg2rad(17)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    oblique = np.eye(4)
    oblique[:3, :3] = rotation @ np.diag([0.8, 1.0, 1.3])
    oblique[:3, 3] = [-20.0, 7.5, 3.0]
    return oblique


def _probabilities(image: MetaTensor, classes: int, blobs: int, seed: int) -> torch.Tensor:
    """Softmax of smooth blobs on the preprocessed grid: what a network gives, up to shape."""
    rng = np.random.default_rng(seed)
    shape = image.shape[1:]
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1).astype(np.float32)
    logits = np.zeros((classes, *shape), dtype=np.float32)
    logits[0] = 2.0
    for _ in range(blobs):
        c = rng.integers(1, classes)
        centre, radius = rng.uniform(0, shape), rng.uniform(1.5, 4.0)
        logits[c] += 6.0 * np.exp(-((grid - centre) ** 2).sum(-1) / (2 * radius**2))
    return torch.softmax(torch.as_tensor(logits), dim=0)


def _compare(preprocessing, image: MetaTensor, classes: int, blobs: int, lesions: list[int], threshold, seed: int,
             filled: bool = False):  # fmt: skip
    """InvertLabelsd against Invertd then the same decision: labels equal, lesion probabilities close.

    ``filled``: the voxels a crop's inverse pads are background for InvertLabelsd, zeros
    for Invertd; interpolation is linear, so Invertd's probabilities with what they lack
    of a sum of 1 added to the background are the reference.
    """
    data = preprocessing({"image": image})
    data["pred"] = MetaTensor(_probabilities(data["image"], classes, blobs, seed=seed))
    theirs = Invertd("pred", transform=preprocessing, orig_keys="image", nearest_interp=False)(dict(data))["pred"]
    if filled:
        missing = 1.0 - theirs.sum(0)
        assert float(missing.max()) > 0.5  # some voxels came from the padding
        theirs[0] += torch.where(missing > 1e-4, missing, 0.0)
    out = InvertLabelsd("pred", transform=preprocessing, orig_keys="image", lesion_classes=lesions,
                        lesion_threshold=threshold)(dict(data))  # fmt: skip
    ours, probability = out["pred"], out["pred_lesion_probability"]
    shape = tuple(image.shape[1:])
    assert tuple(ours.shape) == (1, *shape) and torch.allclose(ours.affine.double(), image.affine.double())
    assert ours.dtype == torch.int16 and ours.applied_operations == [] and tuple(probability.shape) == (1, *shape)
    expected, summed = decide_labels(theirs.numpy(), lesions, threshold)
    labels = ours[0].numpy()
    assert np.array_equal(labels, expected), f"{int((labels != expected).sum())} voxels differ"
    lesion = np.isin(expected, lesions)
    if blobs:
        assert int((expected > 0).sum()) > 0 and lesion.any()  # the comparison is not vacuous
        np.testing.assert_allclose(probability[0].numpy()[lesion], summed[lesion], atol=1e-5)
    else:  # nothing open: background everywhere
        assert not labels.any()
    assert not probability[0].numpy()[~lesion].any()  # the lesion probability at the lesion voxels only
    return labels


def _preprocessing(*extra, padding_mode: str = "border") -> Compose:
    return Compose([
        Orientationd("image", axcodes="RAS"),
        Spacingd("image", pixdim=(2.0, 2.0, 3.0), mode="bilinear", padding_mode=padding_mode), *extra,
        NormalizeIntensityd("image", nonzero=True), EnsureTyped("image"),
    ])  # fmt: skip


@pytest.mark.parametrize("kind", ["ras", "lps", "permuted", "oblique"])
@pytest.mark.parametrize(
    ("classes", "blobs", "lesions", "threshold"),
    [(2, 2, [1], None), (4, 5, [1, 2, 3], None), (4, 5, [1, 2, 3], 0.3), (6, 12, [4, 5], 0.3), (3, 0, [1, 2], None),
     (2, 3, [1], 0.7), (6, 12, [4, 5], 0.6)],  # above 0.5: lesions trimmed where the arg-max would keep them
)
def test_same_labels_and_lesion_probabilities_as_invertd(kind, classes, blobs, lesions, threshold):
    image = MetaTensor(torch.rand(1, 41, 37, 23) + 0.1, affine=torch.as_tensor(_affine(kind)))
    _compare(_preprocessing(), image, classes, blobs, lesions, threshold, seed=len(kind) + classes)


@pytest.mark.parametrize("kind", ["lps", "oblique"])
def test_crops_and_pads_after_the_resampling(kind):
    """A crop's inverse pads (background), a pad's inverse crops."""
    image = MetaTensor(torch.rand(1, 41, 37, 23) + 0.1, affine=torch.as_tensor(_affine(kind)))
    preprocessing = _preprocessing(CenterSpatialCropd("image", (16, 14, 6)), SpatialPadd("image", (20, 20, 8)))
    _compare(preprocessing, image, 4, 6, [3], 0.4, seed=5, filled=True)


@pytest.mark.parametrize("kind", ["ras", "oblique"])
def test_zero_padding_outside_the_grid(kind):
    """Sample points beyond the network's grid meet zeros there, as Invertd's do: decided from what is sampled."""
    image = MetaTensor(torch.rand(1, 41, 37, 23) + 0.1, affine=torch.as_tensor(_affine(kind)))
    _compare(_preprocessing(padding_mode="zeros"), image, 4, 9, [2, 3], 0.3, seed=8)


def test_without_resampling_the_labels_are_decided_on_the_input_grid():
    image = MetaTensor(torch.rand(1, 21, 17, 9) + 0.1, affine=torch.as_tensor(_affine("lps")))
    preprocessing = Compose([Orientationd("image", axcodes="RAS"), EnsureTyped("image")])
    _compare(preprocessing, image, 3, 4, [2], 0.3, seed=2)


def test_localised_refuses_labels_decided_otherwise():
    image = MetaTensor(torch.rand(1, 21, 17, 9) + 0.1, affine=torch.as_tensor(_affine("ras")))
    preprocessing = _preprocessing()
    data = preprocessing({"image": image})
    data["pred"] = MetaTensor(_probabilities(data["image"], 3, 4, seed=1))
    decided = InvertLabelsd("pred", transform=preprocessing, orig_keys="image", lesion_classes=[2],
                            lesion_threshold=0.3)(data)  # fmt: skip
    labels = [{"value": 1, "name": "organ"}, {"value": 2, "name": "lesion"}]
    with pytest.raises(ValueError, match="decided with"):
        Localised("pred", labels=labels, lesion_classes={2: "lesion"}, lesion_threshold=0.5)(dict(decided))
    out = Localised("pred", labels=labels, lesion_classes={2: "lesion"}, lesion_threshold=0.3)(dict(decided))
    assert out["pred"].shape == (1, 21, 17, 9) and "decision" not in out["pred"].meta
    assert "pred_lesion_probability" not in out


def test_a_resampling_other_than_linear_is_refused_by_name():
    """The convex-combination argument holds for linear interpolation: nearest-neighbour Spacingd goes to Invertd."""
    image = MetaTensor(torch.rand(1, 21, 17, 9) + 0.1, affine=torch.as_tensor(_affine("ras")))
    preprocessing = Compose([Orientationd("image", axcodes="RAS"),
                             Spacingd("image", pixdim=(2.0, 2.0, 3.0), mode="nearest"), EnsureTyped("image")])  # fmt: skip
    data = preprocessing({"image": image})
    data["pred"] = MetaTensor(_probabilities(data["image"], 3, 2, seed=1))
    with pytest.raises(ValueError, match="expected Spacingd's mode bilinear, found 'nearest'"):
        InvertLabelsd("pred", transform=preprocessing, orig_keys="image", lesion_classes=[2])(data)
