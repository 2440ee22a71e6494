"""Dictionary transforms that cut the grading inputs out of a loaded case."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, RandFlipd

from mednet.grading import extract_slices, lesion_features
from mednet.transforms import ClassIndexd, LesionFeaturesd, LesionSlicesd


def _case(rng) -> dict:
    affine = torch.diag(torch.tensor([1.0, 1.0, 3.0, 1.0]))
    labels = np.zeros((1, 40, 40, 30), dtype=np.int16)
    labels[0, 10:20, 12:22, 8:14] = 1
    labels[0, 14:16, 14:16, 14:18] = 2  # narrower tail: slices 14..17 have less lesion area
    image = lambda: MetaTensor(torch.from_numpy(rng.normal(size=(1, 40, 40, 30)).astype(np.float32)), affine=affine)  # noqa: E731
    return {"case_id": "c1", "patient_id": "p1", "class": "HGG", "t1": image(), "t2": image(),
            "label": MetaTensor(torch.from_numpy(labels), affine=affine)}  # fmt: skip


def test_lesion_slices_one_dict_per_slice(rng):
    case = _case(rng)
    out = LesionSlicesd(["t1", "t2"], "label", [1, 2], n=6, size=(16, 16))(case)
    assert len(out) == 6
    assert [d["slice_rank"] for d in out] == list(range(6))
    assert [d["slice_index"] for d in out] == sorted(d["slice_index"] for d in out)
    expected = extract_slices(case["t1"], case["label"], [1, 2], 6, (16, 16))
    for rank, d in enumerate(out):
        assert d["t1"].shape == (1, 16, 16) and d["t2"].shape == (1, 16, 16)
        assert torch.allclose(d["t1"], torch.from_numpy(expected[rank]))
        assert d["case_id"] == "c1" and d["class"] == "HGG"
        assert "label" not in d
    assert not torch.allclose(out[0]["t1"], out[0]["t2"])  # each sequence its own crop


def test_lesion_slices_keep_the_ranks_of_a_slice_split_and_flatten_in_compose(rng):
    case = {**_case(rng), "slice_ranks": [0, 3]}
    pipeline = Compose([LesionSlicesd(["t1", "t2"], "label", [1, 2], n=6, size=(8, 8)),
                        RandFlipd(["t1", "t2"], prob=1.0, spatial_axis=0)])  # fmt: skip
    out = pipeline(case)
    assert [d["slice_rank"] for d in out] == [0, 3]
    assert all("slice_ranks" not in d for d in out)


def test_lesion_slices_three_channels_and_a_clear_error_without_lesion(rng):
    case = _case(rng)
    out = LesionSlicesd(["t1"], "label", [1], n=2, size=(8, 8), channels_out=3)(case)
    assert out[0]["t1"].shape == (3, 8, 8)
    with pytest.raises(ValueError, match="c1: cannot cut the lesion out of 'label'"):
        LesionSlicesd(["t1"], "label", [5], n=2, size=(8, 8))(case)
    with pytest.raises(KeyError, match="no 'seg' label map"):
        LesionSlicesd(["t1"], "seg", [1], n=2, size=(8, 8))(case)


def test_lesion_slices_fill_a_missing_sequence_with_zeros_and_say_so(rng):
    case = _case(rng)
    del case["t2"]
    out = LesionSlicesd(["t1", "t2"], "label", [1, 2], n=3, size=(8, 8), allow_missing_keys=True, fill_missing=True)(
        {**case, "sequences_used": ["t1"]}
    )
    assert len(out) == 3 and "sequences_used" not in out[0]  # a list of varying length would not collate
    assert all(d["t1_present"] and not d["t2_present"] for d in out)
    assert all(d["t2"].shape == d["t1"].shape and not d["t2"].any() and d["t1"].any() for d in out)
    plain = LesionSlicesd(["t1", "t2"], "label", [1, 2], n=3, size=(8, 8), allow_missing_keys=True)(case)
    assert "t2" not in plain[0] and "t2_present" not in plain[0]  # without filling, as before
    assert all(torch.equal(a["t1"], b["t1"]) for a, b in zip(out, plain, strict=True))
    del case["t1"]
    with pytest.raises(KeyError, match="c1: none of the sequences"):
        LesionSlicesd(["t1", "t2"], "label", [1], n=2, size=(8, 8), allow_missing_keys=True, fill_missing=True)(case)


def test_class_index_with_did_you_mean():
    t = ClassIndexd("class", ["LGG", "HGG"])({"class": "HGG"})
    assert t["target"].item() == 1 and t["target"].dtype == torch.long
    with pytest.raises(ValueError, match="did you mean 'HGG'"):
        ClassIndexd("class", ["LGG", "HGG"])({"case_id": "x", "class": "HG"})
    assert "target" not in ClassIndexd("class", ["LGG", "HGG"], allow_missing_keys=True)({"case_id": "x"})


def test_lesion_features_transform_takes_the_spacing_from_the_affine(rng):
    case = _case(rng)
    out = LesionFeaturesd("label", primary=1, metastasis=2)(case)
    expected = lesion_features(case["label"].numpy(), (1.0, 1.0, 3.0), primary=1, metastasis=2)
    assert torch.allclose(out["features"], torch.from_numpy(expected))
    with pytest.raises(ValueError, match="no affine"):
        LesionFeaturesd("label", primary=1, metastasis=2)({"label": np.zeros((4, 4, 4))})
