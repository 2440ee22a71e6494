"""Fine-tuning: a bundle's network started from other weights, new input sequences included.

The shipped reference weights are a baseline to fine-tune from (on a user's own data, or
on phantoms of another look). A segmentation bundle's ``train.json`` builds its network
through :func:`initialised` with ``init_ckpt`` (empty: from scratch). A network may read
more sequences than the checkpoint did (``image_keys`` = the checkpoint's sequences, then
new ones): the filters reading the new channels start at zero, so that the fine-tuning
starts from exactly the checkpoint's outputs on cases without them.

A MONAI ``UNet`` may also be wider than the checkpoint's (more channels at each level, as
``network_def#channels`` sets them): each layer's checkpoint filters keep their places
(behind a skip connection, the concatenated channels of both branches are placed where the
wider network has them), the new filters keep their fresh initialisation, and every weight
from a new channel into a channel of the checkpoint starts at zero. The wider network then
starts from exactly the checkpoint's outputs (Net2Net's function-preserving growth, with
zero instead of split weights) and training grows the new channels into use.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

__all__ = ["initialised"]


def initialised(
    network: torch.nn.Module,
    checkpoint: os.PathLike | str | None,
    keys: Sequence[str] = (),
    checkpoint_keys: Sequence[str] | None = None,
) -> torch.nn.Module:
    """``network`` with the weights of ``checkpoint``, its new input channels zero.

    Args:
        network: the bundle's network, built for ``keys``.
        checkpoint: a state dict file (loaded with ``weights_only=True``; float16 weights are
            cast to the network's type); empty or None leaves the network as built.
        keys: the network's input sequences in channel order (the config's ``image_keys``).
        checkpoint_keys: the checkpoint's input sequences (default ``keys``); ``keys`` must
            begin with them, in the same order.

    Returns:
        ``network``, its weights loaded.

    Raises:
        ValueError: ``keys`` does not begin with ``checkpoint_keys``; the checkpoint has other
            tensors than the network, or one of another shape than a widened input filter.
    """
    if not checkpoint:
        return network
    from mednet.bundles.spec import load_state_dict

    keys, old = list(keys), list(checkpoint_keys if checkpoint_keys is not None else keys)
    if keys[: len(old)] != old:
        raise ValueError(f"init_ckpt {checkpoint}: expected image_keys to begin with the checkpoint's sequences "
                         f"{old}, found {keys}")  # fmt: skip
    state, own = load_state_dict(checkpoint), network.state_dict()
    if set(state) != set(own):
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        raise ValueError(f"init_ckpt {checkpoint}: not this network's weights: missing {missing[:5]}, "
                         f"unexpected {extra[:5]}")  # fmt: skip
    from monai.networks.nets import UNet

    grown = _grown_layers(network, state, checkpoint) if isinstance(network, UNet) else {}
    loaded = {}
    for name, value in state.items():
        target = own[name]
        if value.shape == target.shape:
            loaded[name] = value.to(target.dtype)
        elif name in grown:  # a UNet: every layer through the one embedding (transposed layouts included)
            if not _fits(value, target, grown[name], len(old), len(keys)):
                raise ValueError(f"init_ckpt {checkpoint}: {name}: expected shape {tuple(target.shape)} or a "
                                 f"narrower one, found {tuple(value.shape)}")  # fmt: skip
            loaded[name] = _embedded(value.to(target.dtype), target, *grown[name])
        elif (value.ndim >= 2 and value.shape[1] == len(old) and target.shape[1] == len(keys)
              and value.shape[:1] + value.shape[2:] == target.shape[:1] + target.shape[2:]):  # fmt: skip
            widened = torch.zeros_like(target)
            widened[:, : len(old)] = value.to(target.dtype)  # the new sequences' filters: zero
            loaded[name] = widened
        else:
            raise ValueError(f"init_ckpt {checkpoint}: {name}: expected shape {tuple(target.shape)}, "
                             f"found {tuple(value.shape)}")  # fmt: skip
    network.load_state_dict(loaded)
    return network


def _grown_layers(network: torch.nn.Module, state: dict,
                  checkpoint: os.PathLike | str) -> dict[str, tuple[bool, torch.Tensor | None]]:  # fmt: skip
    """Per tensor of a UNet: whether it is a transposed convolution's, and where the checkpoint's inputs go.

    The input positions are ``None`` (the first ones) except for the layer reading a skip
    connection's concatenation ``[x, submodule(x)]``: ``x``'s channels first, the
    submodule's after all of ``x``'s channels in the wider network.

    Raises:
        ValueError: the network has other outputs (classes) than the checkpoint; or a layer
            grows in a network whose normalisation mixes channels (group or layer norm: the
            new channels would change the old ones' statistics).
    """
    from monai.networks.layers import SkipConnection

    modules, own = dict(network.named_modules()), network.state_dict()
    grown: dict[str, tuple[bool, torch.Tensor | None]] = {}
    for name in own:
        module = modules.get(name.rpartition(".")[0])
        grown[name] = (isinstance(module, torch.nn.modules.conv._ConvTransposeNd), None)
    last = [k for k in own if k.endswith(".weight") and own[k].ndim > 2][-1]
    out_dim = 1 if grown[last][0] else 0
    if state[last].shape[out_dim] != own[last].shape[out_dim]:
        raise ValueError(f"init_ckpt {checkpoint}: expected a network of {own[last].shape[out_dim]} output classes, "
                         f"found one of {state[last].shape[out_dim]}")  # fmt: skip
    def out_channels(name: str, tensor: torch.Tensor) -> int:
        return tensor.shape[1 if grown[name][0] and tensor.ndim > 1 else 0]

    mixing = (torch.nn.GroupNorm, torch.nn.LayerNorm, torch.nn.LocalResponseNorm)
    wider = any(out_channels(k, state[k]) != out_channels(k, own[k]) for k in own if own[k].ndim)
    if wider and any(isinstance(m, mixing) for m in modules.values()):  # new inputs alone (sequences) are fine
        raise ValueError(f"init_ckpt {checkpoint}: a wider network is started from a narrower one only with a "
                         f"per-channel normalisation (instance or batch norm), found group or layer norm")  # fmt: skip
    def first_filter(block: str) -> str:
        return next(k for k in own if k.startswith(f"{block}.") and k.endswith(".weight") and own[k].ndim > 2)

    for name, module in modules.items():
        if not isinstance(module, SkipConnection):
            continue
        parent, _, index = name.rpartition(".")
        down, consumer = first_filter(f"{parent}.{int(index) - 1}"), first_filter(f"{parent}.{int(index) + 1}")
        transposed = grown[consumer][0]
        x_old, x_new = state[down].shape[0], own[down].shape[0]  # x: the block before the skip connection
        total_old = state[consumer].shape[0 if transposed else 1]
        grown[consumer] = (transposed, torch.cat([torch.arange(x_old), x_new + torch.arange(total_old - x_old)]))
    return grown


def _fits(value: torch.Tensor, target: torch.Tensor, layer: tuple[bool, torch.Tensor | None], sequences: int,
          keys: int) -> bool:  # fmt: skip
    """Whether ``value`` embeds in ``target``.

    The same kernel, no dimension shrinking, and the input layer reading the checkpoint's sequences.
    """
    if value.ndim != target.ndim or value.shape[2:] != target.shape[2:]:
        return False
    if any(v > t for v, t in zip(value.shape, target.shape, strict=True)):
        return False
    if value.ndim >= 2:
        in_dim = 0 if layer[0] else 1
        if target.shape[in_dim] == keys and layer[1] is None and value.shape[in_dim] != sequences:
            return False  # the input layer reads the checkpoint's sequences first
    return True


def _embedded(value: torch.Tensor, target: torch.Tensor, transposed: bool,
              positions: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
    """``target`` (the fresh tensor) with ``value`` in its place.

    ``value``'s output channels are the first ones, its inputs at ``positions`` (default the
    first); the weights from the other inputs into its outputs are zero.
    """
    result = target.clone()
    if value.ndim < 2:  # biases, per-channel parameters
        result[: value.shape[0]] = value
        return result
    out_dim, in_dim = (1, 0) if transposed else (0, 1)
    rows = result.narrow(out_dim, 0, value.shape[out_dim])  # a view: the checkpoint's output channels
    rows.zero_()
    index = positions if positions is not None else torch.arange(value.shape[in_dim])
    rows.index_copy_(in_dim, index.to(target.device), value.to(target.device))
    return result
