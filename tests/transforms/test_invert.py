"""InvertLabelsd decides the label map that MONAI Invertd's probabilities decide (and their lesion probabilities), whatever the grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureTyped, Invertd, NormalizeIntensityd, Orientationd

from mednet.localisation import decide_labels
from mednet.transforms import InvertLabelsd, Spacingd


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


@pytest.mark.parametrize("kind", ["ras", "lps", "permuted", "oblique"])
@pytest.mark.parametrize(("classes", "blobs", "threshold"), [(2, 2, None), (4, 5, None), (4, 5, 0.3), (3, 0, None)])
def test_same_labels_and_lesion_probabilities_as_invertd(kind, classes, blobs, threshold):
    shape = (41, 37, 23)
    image = MetaTensor(torch.rand(1, *shape) + 0.1, affine=torch.as_tensor(_affine(kind)))
    preprocessing = Compose([
        Orientationd("image", axcodes="RAS"), Spacingd("image", pixdim=(2.0, 2.0, 3.0), mode="bilinear"),
        NormalizeIntensityd("image", nonzero=True), EnsureTyped("image"),
    ])  # fmt: skip
    data = preprocessing({"image": image})
    data["pred"] = MetaTensor(_probabilities(data["image"], classes, blobs, seed=len(kind) + classes))
    theirs = Invertd("pred", transform=preprocessing, orig_keys="image", nearest_interp=False)(dict(data))["pred"]
    lesions = list(range(1, classes))  # every foreground class a lesion: the threshold decides too
    out = InvertLabelsd("pred", transform=preprocessing, orig_keys="image", lesion_classes=lesions,
                        lesion_threshold=threshold)(dict(data))  # fmt: skip
    ours, probability = out["pred"], out["pred_lesion_probability"]
    assert tuple(ours.shape) == (1, *shape) and torch.allclose(ours.affine.double(), image.affine.double())
    assert ours.dtype == torch.int16 and ours.applied_operations == [] and tuple(probability.shape) == (1, *shape)
    expected, summed = decide_labels(theirs.numpy(), lesions, threshold)
    labels = ours[0].numpy()
    assert np.array_equal(labels, expected), f"{int((labels != expected).sum())} voxels differ"
    foreground = expected > 0
    if blobs:
        assert int(foreground.sum()) > 0  # the comparison is not vacuous
        np.testing.assert_allclose(probability[0].numpy()[foreground], summed[foreground], atol=1e-5)
    else:  # nothing open: background everywhere
        assert not labels.any()
    assert not probability[0].numpy()[~foreground].any()  # lesion probability at the lesion voxels only
