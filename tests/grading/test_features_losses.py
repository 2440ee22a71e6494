"""Staging features from a label map, and the class imbalance options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mednet.grading import FEATURE_NAMES, FocalLoss, balanced_sampler, class_counts, lesion_features, make_criterion


def _abdomen() -> np.ndarray:
    labels = np.zeros((30, 30, 20), dtype=np.int16)
    labels[10:20, 10:20, 5:15] = 12  # primary tumour, 1000 voxels
    labels[20:22, 10:20, 5:15] = 7  # aorta touching the tumour's side: 200 voxels
    labels[25:28, 25:28, 5:15] = 7  # aorta farther away: 90 voxels, not touched
    labels[9, 10:20, 5:15] = 3  # kidney touching the tumour
    labels[2:4, 2:4, 2:4] = 13  # metastasis of 8 voxels
    labels[2:4, 25:28, 15:18] = 13  # metastasis of 18 voxels
    labels[28, 2, 2] = 13  # one-voxel speck
    return labels


def test_lesion_features_known_answers():
    labels = _abdomen()
    spacing = (1.0, 1.0, 2.0)  # 2 mm^3 voxels
    values = lesion_features(labels, spacing, primary=12, metastasis=13, vessels=[7],
                             compartments={3: "retroperitoneum", 7: "retroperitoneum"}, contact_mm=1.0)  # fmt: skip
    named = dict(zip(FEATURE_NAMES, values.tolist(), strict=True))
    assert named["metastasis_count"] == pytest.approx(0.3)  # three components, / 10
    assert named["metastasis_log_volume_ml"] == pytest.approx(np.log1p(27 * 2 / 1000), rel=1e-5)
    assert named["primary_log_volume_ml"] == pytest.approx(np.log1p(2.0), rel=1e-5)
    assert named["vessel_contact_fraction"] == pytest.approx(100 / 290, rel=1e-5)  # one aorta layer of 10 x 10
    assert named["primary_compartments"] == pytest.approx(1 / 3)
    floored = lesion_features(labels, spacing, primary=12, metastasis=13, min_lesion_mm3=10.0)
    assert floored[0] == pytest.approx(0.2)  # the speck (2 mm^3) is not counted
    assert floored[3] == 0.0  # no vessels given


def test_lesion_features_without_lesions_and_bad_input():
    empty = lesion_features(np.zeros((5, 5, 5), np.int16), (1, 1, 1), primary=12, metastasis=13, vessels=[7])
    assert empty.tolist() == [0.0] * len(FEATURE_NAMES)
    with pytest.raises(ValueError, match="spacing"):
        lesion_features(np.zeros((5, 5, 5)), (1, 0, 1), primary=1, metastasis=2)
    with pytest.raises(ValueError, match="expected"):
        lesion_features(np.zeros((5, 5)), (1, 1, 1), primary=1, metastasis=2)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.7, 0.7, 3.0), (5.0, 1.0, 0.4)])
def test_near_dilates_only_the_bounding_box_to_the_same_voxels(spacing):
    """The dilation cropped to the mask's box grown by the radius equals the whole volume's, at the borders too."""
    from scipy import ndimage

    from mednet.grading.features import _near

    rng = np.random.default_rng(3)
    spacing = np.asarray(spacing)
    for shape, box in [((40, 35, 20), (slice(12, 20), slice(5, 9), slice(8, 11))),
                       ((30, 30, 12), (slice(0, 4), slice(26, 30), slice(0, 12)))]:  # fmt: skip
        mask = np.zeros(shape, dtype=bool)
        mask[box] = rng.random(mask[box].shape) < 0.4
        radius = np.maximum(np.round(3.0 / spacing).astype(int), 0)
        grid = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
        ball = sum((g / max(r, 1)) ** 2 for g, r in zip(grid, radius, strict=True)) <= 1.0
        whole = ndimage.binary_dilation(mask, structure=ball)
        near = _near(mask, spacing, 3.0)
        assert whole.sum() > mask.sum() and np.array_equal(near, whole)
    assert not _near(np.zeros((5, 5, 5), bool), spacing, 3.0).any()


CASES = [{"case_id": f"c{i}", "class": c} for i, c in enumerate(["HGG"] * 6 + ["LGG"] * 2)]


def test_class_counts_and_clear_errors():
    assert class_counts(CASES, ["LGG", "HGG"]) == [2, 6]
    with pytest.raises(ValueError, match="no training case of class"):
        class_counts(CASES, ["LGG", "HGG", "GBM"])
    with pytest.raises(ValueError, match="'XYZ' is not one of"):
        class_counts([*CASES, {"case_id": "x", "class": "XYZ"}], ["LGG", "HGG"])


def test_weighted_criterion_matches_torch():
    logits, target = torch.randn(8, 2), torch.tensor([0, 1, 1, 1, 1, 1, 1, 0])
    weighted = make_criterion("weights", [2, 6])
    expected = F.cross_entropy(logits, target, weight=torch.tensor([8 / 4, 8 / 12]))
    assert weighted(logits, target) == pytest.approx(expected.item(), rel=1e-6)
    single = torch.randn(8, 1)  # one sigmoid logit: the positive class weighted n_neg / n_pos
    expected = F.binary_cross_entropy_with_logits(single, target[:, None].float(), pos_weight=torch.tensor([2 / 6]))
    assert weighted(single, target[:, None].float()) == pytest.approx(expected.item(), rel=1e-6)
    assert make_criterion("none") is None and make_criterion("sampler") is None
    with pytest.raises(ValueError, match="did you mean 'focal'"):
        make_criterion("focla")
    with pytest.raises(ValueError, match="class counts"):
        make_criterion("weights")


def test_focal_loss_down_weights_easy_examples():
    logits, target = torch.tensor([[4.0, -4.0], [0.2, 0.0]]), torch.tensor([0, 1])
    assert FocalLoss(0.0)(logits, target) == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-6)
    per_example = F.cross_entropy(logits, target, reduction="none")
    p_t = torch.exp(-per_example)
    assert FocalLoss(2.0)(logits, target) == pytest.approx(((1 - p_t) ** 2 * per_example).mean().item(), rel=1e-6)
    single, y = torch.tensor([[3.0], [-0.1]]), torch.tensor([[1.0], [1.0]])
    bce = F.binary_cross_entropy_with_logits(single, y, reduction="none")
    assert FocalLoss(2.0)(single, y) == pytest.approx(((1 - torch.exp(-bce)) ** 2 * bce).mean().item(), rel=1e-6)


def test_focal_loss_three_classes_with_class_weights():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-2.0, 3.0, 0.0], [1.0, 1.0, 1.0]])
    target, weight = torch.tensor([0, 2, 1, 2]), torch.tensor([1.0, 2.0, 0.5])
    ce = F.cross_entropy(logits, target, reduction="none")
    focal = (1 - torch.exp(-ce)) ** 1.5 * ce
    # each example's loss times its class's weight, averaged over the 4 examples (not the 12 logits)
    assert FocalLoss(1.5, weight)(logits, target) == pytest.approx((weight[target] * focal).mean().item(), rel=1e-6)
    assert FocalLoss(0.0)(logits, target) == pytest.approx(ce.mean().item(), rel=1e-6)


def test_balanced_sampler_draws_classes_evenly():
    sampler = balanced_sampler(CASES * 50, ["LGG", "HGG"], seed=1)
    drawn = [CASES[i % len(CASES)]["class"] for i in sampler]
    assert len(drawn) == 400
    assert 0.4 < drawn.count("LGG") / len(drawn) < 0.6  # 25% of the cases, half of the draws
    assert list(balanced_sampler(CASES, ["LGG", "HGG"], seed=1)) == list(
        balanced_sampler(CASES, ["LGG", "HGG"], seed=1)
    )
