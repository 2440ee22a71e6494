"""initialised: fine-tuning from a checkpoint, a new input sequence starting at zero."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import UNet

from mednet.engines import initialised


def _unet(channels: int) -> UNet:
    torch.manual_seed(channels)
    return UNet(3, channels, 3, channels=(4, 8), strides=(2,), num_res_units=1, norm="instance")


def test_a_new_sequence_starts_at_zero_and_the_rest_is_the_checkpoint(tmp_path):
    old = _unet(2).eval()
    path = tmp_path / "model.pt"
    torch.save({k: v.half() for k, v in old.state_dict().items()}, path)  # float16, as shipped
    new = initialised(_unet(3), path, ["t2w", "t1c", "t1"], ["t2w", "t1c"]).eval()
    x = torch.randn(1, 2, 16, 16, 8)
    with torch.no_grad():
        reference = initialised(_unet(2), path, ["t2w", "t1c"]).eval()(x)
        assert torch.allclose(new(torch.cat([x, torch.zeros(1, 1, 16, 16, 8)], 1)), reference, atol=1e-6)
    before = old.state_dict()
    widened = [name for name, value in new.named_parameters() if value.shape != before[name].shape]
    assert widened and all(not dict(new.named_parameters())[n][:, 2].any() for n in widened)  # zero filters at first
    new(torch.cat([x, torch.randn(1, 1, 16, 16, 8)], 1)).square().mean().backward()
    assert all(dict(new.named_parameters())[n].grad[:, 2].abs().sum() > 0 for n in widened)  # that training moves
    built = _unet(2)
    as_built = {k: v.clone() for k, v in built.state_dict().items()}
    kept = initialised(built, "", ["t2w", "t1c"]).state_dict()  # no checkpoint: from scratch, as built
    assert all(torch.equal(kept[k], as_built[k]) for k in as_built)


def test_checkpoints_that_do_not_fit_are_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(_unet(2).state_dict(), path)
    with pytest.raises(ValueError, match=r"begin with the checkpoint's sequences \['t2w', 't1c'\]"):
        initialised(_unet(3), path, ["t1", "t2w", "t1c"], ["t2w", "t1c"])
    with pytest.raises(ValueError, match="expected a network of 5 output classes, found one of 3"):
        initialised(UNet(3, 2, 5, channels=(4, 8), strides=(2,), num_res_units=1), path, ["t2w", "t1c"])
    torch.save({**_unet(2).state_dict(), "extra": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        initialised(_unet(2), path, ["t2w", "t1c"])


def _wide_unet(channels: tuple[int, ...], sequences: int = 2, seed: int = 0, units: int = 2, classes: int = 4,
               norm="instance") -> UNet:  # fmt: skip
    torch.manual_seed(seed)
    return UNet(3, sequences, classes, channels=channels, strides=(2,) * (len(channels) - 1), num_res_units=units,
                norm=norm)  # fmt: skip


@pytest.mark.parametrize(("sequences", "units"), [(2, 2), (3, 2), (2, 1), (3, 0)])
def test_a_wider_unet_starts_from_exactly_the_checkpoints_outputs_and_its_new_channels_learn(tmp_path, sequences,
                                                                                             units):  # fmt: skip
    """Each level wider (x1.5, as network_def#channels sets it), a new sequence too: the same outputs at first.

    With ``num_res_units`` 0 the last layer is a transposed convolution reading the top skip connection.
    """
    old = _wide_unet((4, 8, 16, 32), seed=1, units=units).eval()
    path = tmp_path / "model.pt"
    torch.save(old.state_dict(), path)
    keys = ["t2w", "t1c", "t1"][:sequences]
    built = _wide_unet((6, 12, 24, 48), sequences, seed=2, units=units)
    fresh = {k: v.clone() for k, v in built.state_dict().items()}
    new = initialised(built, path, keys, ["t2w", "t1c"]).eval()
    x = torch.randn(1, 2, 32, 32, 16)
    extra = torch.randn(1, sequences - 2, 32, 32, 16)
    with torch.no_grad():
        # the checkpoint's channels read nothing new at first, the new sequence included
        assert torch.allclose(new(torch.cat([x, extra], 1)), old(x), atol=1e-5)
    state = new.state_dict()
    first = "model.0.conv.unit0.conv.weight" if units else "model.0.conv.weight"
    assert torch.equal(state[first][6:], fresh[first][6:])  # new filters: as built
    assert torch.equal(state[first][:4, :2], old.state_dict()[first]) and not state[first][:4, 2:].any()
    deeper = "model.1.submodule.0.conv.unit0.conv.weight" if units else "model.1.submodule.0.conv.weight"
    assert not state[deeper][:8, 4:].any() and torch.equal(state[deeper][:8, :4], old.state_dict()[deeper])
    new.train()
    new(torch.cat([x, extra], 1)).square().mean().backward()
    grads = dict(new.named_parameters())
    assert grads[deeper].grad[:8, 4:].abs().sum() > 0  # the zero weights from new channels move


def test_a_narrower_unet_other_classes_a_mixing_norm_or_another_kernel_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(_wide_unet((6, 12, 24)).state_dict(), path)
    with pytest.raises(ValueError, match=r"model.0.conv.unit0.conv.weight: expected shape \(4, 2, 3, 3, 3\) or a "
                                         r"narrower one, found \(6, 2, 3, 3, 3\)"):  # fmt: skip
        initialised(_wide_unet((4, 8, 16)), path, ["t2w", "t1c"])
    torch.save(_wide_unet((4, 8, 16), sequences=3).state_dict(), path)
    with pytest.raises(ValueError, match="expected shape"):  # the checkpoint read 3 sequences, not 2
        initialised(_wide_unet((6, 12, 24), sequences=4), path, ["t2w", "t1c", "t1", "dwi"], ["t2w", "t1c"])
    torch.save(_wide_unet((4, 8, 16), units=0, classes=3).state_dict(), path)
    with pytest.raises(ValueError, match="expected a network of 4 output classes, found one of 3"):
        initialised(_wide_unet((4, 8, 16), units=0), path, ["t2w", "t1c"])  # its last layer transposed
    norm = ("group", {"num_groups": 2})
    torch.save(_wide_unet((4, 8, 16), norm=norm).state_dict(), path)
    with pytest.raises(ValueError, match="per-channel normalisation"):  # new channels would join old groups
        initialised(_wide_unet((8, 16, 32), norm=norm), path, ["t2w", "t1c"])
    initialised(_wide_unet((4, 8, 16), norm=norm), path, ["t2w", "t1c"])  # the same width: loaded
    initialised(_wide_unet((4, 8, 16), sequences=3, norm=norm), path, ["t2w", "t1c", "t1"], ["t2w", "t1c"])  # a sequence
    torch.save(_wide_unet((4, 8, 16)).state_dict(), path)
    with pytest.raises(ValueError, match=r"unit0.conv.weight: expected shape \(6, 2, 1, 1, 1\) or a narrower one"):
        initialised(UNet(3, 2, 4, channels=(6, 12, 24), strides=(2, 2), num_res_units=2, kernel_size=1), path,
                    ["t2w", "t1c"])  # another kernel  # fmt: skip
