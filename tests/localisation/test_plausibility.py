"""Plausibility flags: outputs that cannot be right are said, with the numbers."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

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


def _flags_with_the_whole_mask(labels, image, lesions, values):
    """The checks as first written: the filled body mask always, ``np.isin`` for the lesions."""
    from scipy import ndimage

    from mednet.localisation.plausibility import MAX_LESION_FRACTION, OUTSIDE_FRACTION, _tissue

    lesion, body = np.isin(labels, values), ndimage.binary_fill_holes(_tissue(image))
    flags = []
    if body.any() and lesion.sum() > MAX_LESION_FRACTION * body.sum():
        flags.append(f"lesions take {lesion.sum() / body.sum():.0%} of the body volume "
                     f"(more than {MAX_LESION_FRACTION:.0%}: implausible; check the input)")  # fmt: skip
    if len([r for r in lesions if int(r["label"]) in values]) > MAX_LESIONS:
        flags.append(f"{len(lesions)} separate lesions (more than {MAX_LESIONS}: implausible; check the input)")
    if lesion.any() and (lesion & ~body).sum() > OUTSIDE_FRACTION * lesion.sum():
        flags.append(f"{(lesion & ~body).sum() / lesion.sum():.0%} of the lesion voxels lie outside the body "
                     "(background of the reference image): implausible")  # fmt: skip
    return flags


@settings(max_examples=60, deadline=None)
@given(box=st.tuples(*[st.integers(0, 39)] * 4, st.integers(0, 19), st.integers(0, 19)),
       hollow=st.booleans(), dtype=st.sampled_from([np.uint8, np.int8, np.uint16, np.int16, np.int64]),
       value=st.sampled_from([1, 2, 3, -2, 200, 300, -56]))  # fmt: skip
def test_the_flags_are_those_of_the_filled_body_mask(box, hollow, dtype, value):
    """Filling the body's holes only when the unfilled mask cannot decide changes no flag.

    Lesions anywhere (in the air, across the edge, inside a dark hole of the body, all over);
    label maps of several integer types.
    """
    image = _head()
    if hollow:  # a dark cavity inside the body: body once filled, not before
        image[12:28, 12:28, 5:15] = 0.0
    x0, x1, y0, y1, z0, z1 = box
    assume(np.iinfo(dtype).min <= value <= np.iinfo(dtype).max)
    labels = np.zeros(image.shape, dtype=dtype)
    labels[min(x0, x1) : max(x0, x1) + 1, min(y0, y1) : max(y0, y1) + 1, min(z0, z1) : max(z0, z1) + 1] = value
    lesions = [{"label": value}]
    values = [1, 2, -2, 200]  # 200 is not an int8's -56, nor -2 a uint8's 254
    assert plausibility_flags(labels, image, lesions, values) == _flags_with_the_whole_mask(labels, image, lesions, values)


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(["int8", "uint8", "int16", "uint16", "int32", "int64", "float32"]),
    values=st.lists(st.integers(-70_000, 70_000) | st.integers(-3, 20), min_size=0, max_size=14),
    seed=st.integers(0, 2**16),
)
def test_the_lesion_mask_is_np_isin_for_any_map_and_values(dtype, values, seed):
    from mednet.localisation.plausibility import _lesion_mask

    info = np.iinfo(dtype) if dtype != "float32" else None
    low, high = (max(info.min, -5), min(info.max, 25)) if info else (-5, 25)
    labels = np.random.default_rng(seed).integers(low, high + 1, size=(7, 6, 5)).astype(dtype)
    held = [v for v in values if info is None or info.min <= v <= info.max]  # others match nothing
    np.testing.assert_array_equal(_lesion_mask(labels, values), np.isin(labels, held))
