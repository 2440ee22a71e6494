"""Plausibility flags: outputs that cannot be right are said, with the numbers."""

from __future__ import annotations

import numpy as np

from mednet.localisation.plausibility import MAX_LESIONS, body_mask, plausibility_flags


def _head(shape=(40, 40, 20)) -> np.ndarray:
    x, y, z = np.indices(shape)
    image = np.where(((x - 20) / 15) ** 2 + ((y - 20) / 15) ** 2 + ((z - 10) / 8) ** 2 < 1, 500.0, 0.0)
    return image + np.random.default_rng(0).normal(0, 5, shape).clip(0)  # background noise, not zero


def test_a_plausible_case_has_no_flag():
    image, labels = _head(), np.zeros((40, 40, 20), int)
    labels[18:22, 18:22, 8:12] = 1
    assert plausibility_flags(labels, image, [{"label": 1}], [1]) == []


def test_too_large_too_many_and_outside_the_body():
    image = _head()
    body = body_mask(image)
    assert 0.2 < body.mean() < 0.5
    everything = np.ones((40, 40, 20), int)
    flags = plausibility_flags(everything, image, [{"label": 1}], [1])
    assert any(f.startswith("lesions take") and "of the body volume" in f for f in flags)
    assert any("lie outside the body" in f for f in flags)
    many = plausibility_flags(np.zeros((40, 40, 20), int), image, [{"label": 1}] * (MAX_LESIONS + 1), [1])
    assert many == [f"{MAX_LESIONS + 1} separate lesions (more than {MAX_LESIONS}: implausible; check the input)"]
    outside = np.zeros((40, 40, 20), int)
    outside[0:3, 0:3, 0:3] = 1  # a corner of the field of view, in the air
    assert plausibility_flags(outside, image, [{"label": 1}], [1]) == [
        "100% of the lesion voxels lie outside the body (background of the reference image): implausible"
    ]


def test_skull_stripped_background_is_exactly_zero_and_dark_fluid_is_body():
    image = _head()
    stripped = np.where(image > 100, image, 0.0)
    stripped[18:22, 18:22, 8:12] = 0.0  # dark ventricles inside the brain
    assert (body_mask(stripped) == (image > 100)).all()


def test_a_zscored_skull_stripped_brain_is_all_body():
    """Half a z-scored brain is negative: it is body all the same (no false 'outside the body' flag)."""
    image = _head()
    brain = image > 100
    zscored = np.where(brain, (image - image[brain].mean()) / image[brain].std(), 0.0)
    zscored[brain] += np.random.default_rng(1).normal(0, 1, brain.sum())
    body = body_mask(zscored)
    assert not (body & ~brain).any() and (body & brain).sum() > 0.9 * brain.sum()
    labels = np.zeros(image.shape, int)
    labels[8:12, 18:22, 8:12] = 1  # a lesion near the edge of the brain
    assert plausibility_flags(labels, zscored, [{"label": 1}], [1]) == []
