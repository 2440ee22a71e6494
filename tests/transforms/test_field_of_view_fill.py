"""FieldOfViewFill(d): a reformatted scan's zero wedges filled for the network; Localised labels nothing there."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from mednet.errors import InvalidImageError
from mednet.transforms import FieldOfViewFill, FieldOfViewFilld, Localised

SPACING = (1.5, 1.5, 3.0)


def _image(wedge: bool = True, channels: int = 2) -> MetaTensor:
    """``(C, 48, 40, 20)`` textured content; with ``wedge``, zero beyond an oblique plane in every channel."""
    rng = np.random.default_rng(0)
    data = rng.uniform(50, 500, (channels, 48, 40, 20)).astype(np.float32)
    if wedge:
        i, j, _ = np.meshgrid(*(np.arange(n) for n in data.shape[1:]), indexing="ij")
        data[:, i + 0.6 * j > 52] = 0.0  # a plane oblique to the grid cuts a corner off
    return MetaTensor(torch.as_tensor(data), affine=torch.diag(torch.tensor([*SPACING, 1.0], dtype=torch.float64)))


def _wedge(shape=(48, 40, 20)) -> np.ndarray:
    i, j, _ = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return i + 0.6 * j > 52


def test_the_array_transform_fills_the_wedge_with_acquired_values_and_keeps_the_metadata():
    image = _image()
    filled = FieldOfViewFill()(image)
    assert isinstance(filled, MetaTensor) and filled.shape == image.shape
    np.testing.assert_array_equal(filled.affine, image.affine)
    wedge = _wedge()
    assert (filled[:, wedge] >= 50).all()  # acquired values, no zero left
    np.testing.assert_array_equal(filled[:, ~wedge].numpy(), image[:, ~wedge].numpy())
    np.testing.assert_array_equal(FieldOfViewFill().find(image, SPACING), wedge)
    assert FieldOfViewFill(min_fraction=0.5).find(image) is None  # smaller than asked for: left alone
    plain = np.asarray(image)
    np.testing.assert_array_equal(FieldOfViewFill()(plain), filled.numpy())  # numpy in, numpy out
    with pytest.raises(ValueError, match=r"expected a \(C, x, y, z\) image, found shape \(48, 40, 20\)"):
        FieldOfViewFill().find(plain[0])


def test_a_search_that_would_not_fit_in_memory_is_refused_by_file_before_it_starts(monkeypatch):
    image = _image(channels=3)
    image.meta["filename_or_obj"] = "/data/c1_t1.nii.gz"
    monkeypatch.setenv("MEDNET_MAX_IMAGE_GB", "0.02")
    with pytest.raises(InvalidImageError, match=(
        r"^/data/c1_t1\.nii\.gz: too large for the memory available: expected at most 20 MB \(MEDNET_MAX_IMAGE_GB=0\.02\), "
        r"found 3 x 48 x 40 x 20 float32 voxels \(sequences x grid\), which would need 32\.8 MB to find and fill the "
        r"zeros beyond its field of view, 20 MB are available$")):  # fmt: skip
        FieldOfViewFilld("image")({"image": image})
    monkeypatch.setenv("MEDNET_MAX_IMAGE_GB", "0.04")
    assert FieldOfViewFilld("image")({"image": image})["outside_fov"].any()
    # a scan without zeros at its border is never searched, so never refused for it
    monkeypatch.setenv("MEDNET_MAX_IMAGE_GB", "0.0001")
    plain = _image(wedge=False, channels=3)
    assert FieldOfViewFill()(plain) is plain


def test_an_image_without_a_wedge_comes_back_as_it_was():
    image = _image(wedge=False)
    assert FieldOfViewFill()(image) is image
    out = FieldOfViewFilld("image")({"image": image})
    assert out["image"] is image
    assert out["outside_fov"].shape == (1, 48, 40, 20) and out["outside_fov"].dtype == torch.bool
    assert not out["outside_fov"].any()


def test_the_dictionary_transform_records_the_mask_on_the_input_grid():
    out = FieldOfViewFilld("image", mask_key="beyond")({"image": _image(), "case_id": "c1"})
    np.testing.assert_array_equal(out["beyond"][0].numpy(), _wedge())
    assert out["case_id"] == "c1" and (out["image"][:, _wedge()] > 0).all()
    with pytest.raises(ValueError, match="expected one stacked image key"):
        FieldOfViewFilld(["image", "label"])


LABELS = [{"value": 1, "name": "tumour", "colour": [255, 0, 0]}]


def _decided(labels: np.ndarray) -> MetaTensor:
    """Labels as InvertLabelsd leaves them, with its decision settings."""
    meta = {"affine": torch.diag(torch.tensor([*SPACING, 1.0], dtype=torch.float64)),
            "decision": {"lesion_classes": [1], "lesion_threshold": None}}  # fmt: skip
    return MetaTensor(torch.as_tensor(labels[None].astype(np.int16)), meta=meta)


def test_localised_labels_nothing_beyond_the_field_of_view():
    labels = np.zeros((48, 40, 20), dtype=np.int16)
    labels[40:46, 30:36, 8:12] = 1  # a "lesion" inside the wedge (along its edge, as the network found them)
    labels[10:16, 10:16, 8:12] = 1  # a lesion in the acquired part
    probability = MetaTensor(torch.as_tensor((labels > 0)[None].astype(np.float32) * 0.9))
    localise = Localised("pred", LABELS, lesion_classes={1: "tumour"}, outside_key="outside_fov")
    data = {"pred": _decided(labels), "pred_lesion_probability": probability}
    both = localise(dict(data))
    assert len(both["pred_lesions"]) == 2  # no mask in the data: nothing is masked
    mask = torch.as_tensor(_wedge())[None]
    one = localise({**data, "outside_fov": mask})
    assert len(one["pred_lesions"]) == 1
    found = one["pred"][0].numpy()
    assert not found[_wedge()].any() and found[10:16, 10:16, 8:12].all()
    # Invertd's probabilities: background wherever the mask is
    probabilities = np.stack([1.0 - (labels > 0), labels > 0]).astype(np.float32)
    soft = MetaTensor(torch.as_tensor(probabilities), meta={"affine": _decided(labels).affine})
    out = Localised("pred", LABELS, lesion_classes={1: "tumour"}, outside_key="outside_fov")(
        {"pred": soft, "outside_fov": mask}
    )
    assert len(out["pred_lesions"]) == 1 and not out["pred"][0].numpy()[_wedge()].any()
    batched = localise({**data, "outside_fov": mask[None]})  # (1, 1, x, y, z): as a DataLoader batch gives it
    np.testing.assert_array_equal(batched["pred"].numpy(), one["pred"].numpy())
    with pytest.raises(ValueError, match=r"'outside_fov': expected a mask on the label map's grid \(48, 40, 20\)"):
        localise({**data, "outside_fov": torch.zeros(1, 8, 8, 8, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"found shape \(2, 48, 40, 20\)"):
        localise({**data, "outside_fov": torch.cat([mask, mask])})
