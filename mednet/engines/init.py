"""Fine-tuning: a bundle's network started from other weights, new input sequences included.

The shipped reference weights are a baseline to fine-tune from (on a user's own data, or
on phantoms of another look). A segmentation bundle's ``train.json`` builds its network
through :func:`initialised` with ``init_ckpt`` (empty: from scratch). A network may read
more sequences than the checkpoint did (``image_keys`` = the checkpoint's sequences, then
new ones): the filters reading the new channels start at zero, so that the fine-tuning
starts from exactly the checkpoint's outputs on cases without them.
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
    loaded = {}
    for name, value in state.items():
        target = own[name]
        if value.shape == target.shape:
            loaded[name] = value.to(target.dtype)
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
