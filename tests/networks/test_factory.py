"""build_classifier: every name builds, shapes, and the did-you-mean error."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import DenseNet121, ResNet

from mednet.networks import CLASSIFIERS, SVGG, GoogLeNet, LeNet5, build_classifier


def test_names():
    assert CLASSIFIERS == ("svgg", "lenet5", "googlenet", "densenet121", "resnet18", "resnet34")


@pytest.mark.parametrize(
    ("name", "dims", "shape", "kwargs"),
    [
        ("svgg", 2, (2, 1, 32, 32), {}),
        ("svgg", 3, (2, 1, 16, 16, 16), {"channels": (4, 8, 8)}),
        ("lenet5", 2, (2, 1, 32, 32), {}),
        ("lenet5", 3, (2, 1, 16, 16, 16), {}),
        ("densenet121", 2, (2, 1, 32, 32), {"init_features": 8, "growth_rate": 4}),
        ("resnet18", 2, (2, 1, 32, 32), {}),
        ("resnet18", 3, (2, 1, 16, 16, 16), {}),
    ],
)
def test_forward_shapes(name, dims, shape, kwargs):
    torch.manual_seed(0)
    model = build_classifier(name, dims, 1, 3, **kwargs).eval()
    with torch.no_grad():
        assert model(torch.randn(shape)).shape == (2, 3)


def test_types_and_kwargs():
    assert isinstance(build_classifier("s-VGG", 2, 1, 1, channels=(4,)), SVGG)
    assert isinstance(build_classifier("LeNet-5", 3, 1, 4), LeNet5)
    googlenet = build_classifier("googlenet", 2, 1, 2, head=(1024, 12), init_weights=False)
    assert isinstance(googlenet, GoogLeNet) and googlenet.conv1.conv.in_channels == 1
    assert isinstance(build_classifier("DenseNet121", 3, 2, 2), DenseNet121)
    resnet34 = build_classifier("resnet34", 3, 2, 2)
    assert isinstance(resnet34, ResNet) and resnet34.conv1.in_channels == 2 and resnet34.fc.out_features == 2


def test_unknown_name_suggests_closest():
    with pytest.raises(ValueError) as info:
        build_classifier("densenet12", 2, 1, 2)
    message = str(info.value)
    assert "did you mean 'densenet121'?" in message
    for name in CLASSIFIERS:
        assert name in message
    with pytest.raises(ValueError, match="expected one of") as info:
        build_classifier("transformer", 2, 1, 2)
    assert "did you mean" not in str(info.value)


def test_googlenet_is_2d_only():
    with pytest.raises(ValueError, match="2D"):
        build_classifier("googlenet", 3, 1, 2)
    with pytest.raises(ValueError, match="spatial_dims"):
        build_classifier("svgg", 4, 1, 2)
