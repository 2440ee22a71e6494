"""s-VGG (paper A) and LeNet-5 (paper C): shapes, layer layout, probabilities."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mednet.networks import SVGG, LeNet5


def _leaves(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if not list(m.children())]


@pytest.mark.parametrize(("dims", "shape"), [(2, (2, 1, 32, 32)), (3, (2, 1, 16, 16, 16))])
@pytest.mark.parametrize("out_channels", [1, 3])
def test_svgg_output_shape(dims, shape, out_channels):
    torch.manual_seed(0)
    model = SVGG(dims, 1, out_channels=out_channels, channels=(4, 8, 8), hidden=16)
    assert model(torch.randn(shape)).shape == (2, out_channels)


def test_svgg_any_input_size():
    model = SVGG(2, 2, channels=(4, 8), hidden=8)
    assert model(torch.randn(2, 2, 20, 27)).shape == (2, 1)


def test_svgg_layout_batchnorm_after_conv_dropout_after_pool():
    model = SVGG(2, 1, channels=(8, 16, 32), convs_per_stack=2)
    leaves = _leaves(model.features)
    convs = [i for i, m in enumerate(leaves) if isinstance(m, nn.Conv2d)]
    pools = [i for i, m in enumerate(leaves) if isinstance(m, nn.MaxPool2d)]
    assert len(convs) == 6 and len(pools) == 3
    for i in convs:
        assert leaves[i].kernel_size == (3, 3)
        assert isinstance(leaves[i + 1], nn.BatchNorm2d)
        assert isinstance(leaves[i + 2], nn.ReLU)
    for i in pools:
        assert leaves[i].kernel_size == 2 and leaves[i].stride == 2
        assert isinstance(leaves[i + 1], nn.Dropout) and leaves[i + 1].p == 0.25
    assert isinstance(model.head[-1], nn.Linear) and model.head[-1].out_features == 1


def test_svgg_3d_layers():
    model = SVGG(3, 1, channels=(4,), convs_per_stack=3)
    kinds = [type(m) for m in _leaves(model.features)]
    assert kinds == [nn.Conv3d, nn.BatchNorm3d, nn.ReLU] * 3 + [nn.MaxPool3d, nn.Dropout]


def test_svgg_predict_proba_keeps_mode():
    model = SVGG(2, 1, channels=(4,), hidden=0).train()
    p = model.predict_proba(torch.randn(3, 1, 8, 8))
    assert p.shape == (3, 1) and torch.all((p > 0) & (p < 1))
    assert model.training
    multi = SVGG(2, 1, out_channels=4, channels=(4,), hidden=0).eval()
    assert torch.allclose(multi.predict_proba(torch.randn(3, 1, 8, 8)).sum(1), torch.ones(3))
    assert not multi.training


@pytest.mark.parametrize("kwargs", [{"spatial_dims": 1}, {"channels": ()}, {"dropout": 1.0}, {"convs_per_stack": 0}])
def test_svgg_invalid_arguments(kwargs):
    args = {"spatial_dims": 2, "in_channels": 1} | kwargs
    with pytest.raises(ValueError):
        SVGG(**args)


@pytest.mark.parametrize(("dims", "shape"), [(2, (2, 1, 32, 32)), (3, (2, 1, 16, 16, 16)), (2, (2, 1, 64, 48))])
def test_lenet_output_shape(dims, shape):
    model = LeNet5(dims, 1, 4)
    assert model(torch.randn(shape)).shape == (2, 4)


def test_lenet_layout():
    model = LeNet5(2, 1, 3, dropout=0.3)
    leaves = _leaves(model)
    assert sum(isinstance(m, nn.ReLU) for m in leaves) == 4
    assert not any(isinstance(m, nn.Sigmoid | nn.Tanh | nn.Softmax) for m in leaves)
    assert [m.p for m in leaves if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    assert [m.out_features for m in leaves if isinstance(m, nn.Linear)] == [120, 84, 3]
    assert model.classifier[0].in_features == 16 * 5 * 5
    assert LeNet5(3, 1, 3).classifier[0].in_features == 16 * 5 * 5 * 5


def test_lenet_predict_proba_softmax():
    torch.manual_seed(0)
    model = LeNet5(2, 1, 3).train()
    x = torch.randn(2, 1, 32, 32)
    p = model.predict_proba(x)
    assert torch.allclose(p.sum(1), torch.ones(2))
    model.eval()
    assert torch.allclose(p, torch.softmax(model(x), 1))
    with pytest.raises(ValueError, match="spatial_dims"):
        LeNet5(1, 1, 2)
