"""GoogLeNet (paper B): torchvision key layout, pretrained loading, head, parameter groups."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mednet.networks import (
    DEFAULT_HEAD,
    PAPER_HEAD,
    GoogLeNet,
    PretrainedWeightsError,
    load_pretrained,
    parameter_groups,
)

# Exact keys and shapes of torchvision.models.googlenet's state dict.
TORCHVISION_KEYS = {
    "conv1.conv.weight": (64, 3, 7, 7),
    "conv1.bn.weight": (64,),
    "conv1.bn.running_var": (64,),
    "conv2.conv.weight": (64, 64, 1, 1),
    "conv3.conv.weight": (192, 64, 3, 3),
    "inception3a.branch1.conv.weight": (64, 192, 1, 1),
    "inception3a.branch2.0.conv.weight": (96, 192, 1, 1),
    "inception3a.branch2.1.conv.weight": (128, 96, 3, 3),
    "inception3a.branch3.1.conv.weight": (32, 16, 3, 3),
    "inception3a.branch4.1.conv.weight": (32, 192, 1, 1),
    "inception4e.branch3.1.conv.weight": (128, 32, 3, 3),
    "inception5b.branch1.conv.weight": (384, 832, 1, 1),
    "inception5b.branch4.1.conv.weight": (128, 832, 1, 1),
    "inception5b.branch4.1.bn.bias": (128,),
}
#: torchvision documents 6,624,904 parameters for googlenet, of which fc has 1024 * 1000 + 1000.
TORCHVISION_BACKBONE_PARAMETERS = 6_624_904 - 1_025_000


def _backbone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head.")}


@pytest.fixture(scope="module")
def torchvision_like_state() -> dict[str, torch.Tensor]:
    """A fake torchvision state dict: a random backbone plus the fc and aux keys torchvision has."""
    torch.manual_seed(1)
    donor = GoogLeNet(init_weights=False)
    with torch.no_grad():
        for name, buffer in donor.named_buffers():
            if "running" in name:
                buffer.uniform_(0.5, 1.5)
    state = _backbone_state(donor)
    state["fc.weight"] = torch.randn(1000, 1024)
    state["fc.bias"] = torch.randn(1000)
    state["aux1.conv.conv.weight"] = torch.randn(128, 512, 1, 1)
    state["aux1.fc1.weight"] = torch.randn(1024, 2048)
    state["aux2.fc2.bias"] = torch.randn(1000)
    return state


def test_torchvision_key_names_and_shapes():
    model = GoogLeNet(init_weights=False)
    state = model.state_dict()
    for key, shape in TORCHVISION_KEYS.items():
        assert key in state, key
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith(("fc.", "aux")) for k in state)
    assert sum(not k.startswith("head.") for k in state) == 342
    backbone = sum(v.numel() for k, v in model.named_parameters() if not k.startswith("head."))
    assert backbone == TORCHVISION_BACKBONE_PARAMETERS


def test_basic_conv_and_inception_layout():
    model = GoogLeNet(init_weights=False)
    assert model.conv1.conv.bias is None and model.conv1.bn.eps == 0.001
    assert model.inception3a.branch3[1].conv.kernel_size == (3, 3)  # torchvision quirk, not 5x5
    assert isinstance(model.inception3a.branch4[0], nn.MaxPool2d)


def test_head_widths():
    linears = [m for m in GoogLeNet(num_classes=2, init_weights=False).head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(1024, 128), (128, 2)]
    assert DEFAULT_HEAD == (1024, 128) and PAPER_HEAD == (1024, 12)
    kinds = [type(m) for m in GoogLeNet(num_classes=2, head=PAPER_HEAD, init_weights=False).head]
    assert kinds == [nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    paper = [m for m in GoogLeNet(num_classes=2, head=PAPER_HEAD, init_weights=False).head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in paper] == [(1024, 12), (12, 2)]
    with pytest.raises(ValueError, match="1024"):
        GoogLeNet(head=(512, 128))
    with pytest.raises(ValueError, match="in_channels=3"):
        GoogLeNet(in_channels=1, transform_input=True)


def test_forward_224():
    model = GoogLeNet(num_classes=3, transform_input=True).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 3)


def test_load_pretrained_roundtrip(torchvision_like_state, tmp_path):
    path = tmp_path / "googlenet.pth"
    torch.save(torchvision_like_state, path)
    model = GoogLeNet(num_classes=2)
    head_before = {k: v.clone() for k, v in model.head.state_dict().items()}
    n = load_pretrained(model, path)
    state = model.state_dict()
    expected = {k for k in torchvision_like_state if not k.startswith(("fc.", "aux"))}
    assert n == len(expected)
    for key in expected:
        assert torch.equal(state[key], torchvision_like_state[key]), key
    for key, value in model.head.state_dict().items():  # the head is not touched by fc.*
        assert torch.equal(value, head_before[key])


def test_load_pretrained_without_batch_counters(torchvision_like_state, tmp_path):
    path = tmp_path / "old.pth"
    torch.save({k: v for k, v in torchvision_like_state.items() if not k.endswith("num_batches_tracked")}, path)
    assert load_pretrained(GoogLeNet(init_weights=False), path) == 342 - 57  # 57 BatchNorm layers


def test_load_pretrained_wrong_key(torchvision_like_state, tmp_path):
    state = dict(torchvision_like_state)
    state["inception3a.branch5.conv.weight"] = state.pop("inception3a.branch1.conv.weight")
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(PretrainedWeightsError) as info:
        load_pretrained(GoogLeNet(init_weights=False), path)
    message = str(info.value)
    assert "missing backbone keys (1): inception3a.branch1.conv.weight" in message
    assert "unexpected keys (1): inception3a.branch5.conv.weight" in message
    assert isinstance(info.value, ValueError)


def test_load_pretrained_shape_mismatch_and_missing_file(torchvision_like_state, tmp_path):
    path = tmp_path / "rgb.pth"
    torch.save(torchvision_like_state, path)
    with pytest.raises(
        PretrainedWeightsError, match=r"conv1\.conv\.weight: file \(64, 3, 7, 7\), model \(64, 2, 7, 7\)"
    ):
        load_pretrained(GoogLeNet(in_channels=2, init_weights=False), path)
    with pytest.raises(FileNotFoundError):
        load_pretrained(GoogLeNet(init_weights=False), tmp_path / "absent.pth")


def test_load_pretrained_one_channel_sums_rgb(torchvision_like_state, tmp_path):
    path = tmp_path / "rgb.pth"
    torch.save(torchvision_like_state, path)
    grey = GoogLeNet(in_channels=1, num_classes=2, init_weights=False)
    load_pretrained(grey, path)
    rgb_weight = torchvision_like_state["conv1.conv.weight"]
    assert grey.conv1.conv.weight.shape == (64, 1, 7, 7)
    assert torch.allclose(grey.conv1.conv.weight, rgb_weight.sum(dim=1, keepdim=True))
    # a grey image g gives the same first-layer response as the RGB image (g, g, g)
    g = torch.randn(1, 1, 32, 32)
    rgb = GoogLeNet(num_classes=2, init_weights=False)
    load_pretrained(rgb, path)
    assert torch.allclose(grey.conv1.conv(g), rgb.conv1.conv(g.expand(1, 3, 32, 32)), atol=1e-5)


def test_load_pretrained_wrapped_checkpoint(torchvision_like_state, tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in torchvision_like_state.items()}, "epoch": 3}, path)
    assert load_pretrained(GoogLeNet(init_weights=False), path) == 342


def test_parameter_groups():
    model = GoogLeNet(num_classes=2)
    groups = parameter_groups(model, backbone_lr=1e-4, head_lr=1e-3)
    assert [(g["name"], g["lr"]) for g in groups] == [("backbone", 1e-4), ("head", 1e-3)]
    head_ids = {id(p) for p in model.head.parameters()}
    assert {id(p) for p in groups[1]["params"]} == head_ids
    assert not head_ids & {id(p) for p in groups[0]["params"]}
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(model.parameters()))
    optimizer = torch.optim.SGD(groups, lr=0.5)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-4, 1e-3]
    with pytest.raises(TypeError, match="head"):
        parameter_groups(nn.Linear(2, 2))
