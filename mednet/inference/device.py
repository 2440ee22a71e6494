"""Where prediction runs: the device is chosen once per cohort, before any work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["DEVICES", "autocast", "choose_device"]

#: What ``--device`` accepts.
DEVICES = ("auto", "cpu", "cuda")


def choose_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device for ``device``: ``auto`` is the GPU when PyTorch finds one, else the CPU.

    Args:
        device: ``"auto"`` (or None), ``"cpu"``, ``"cuda"`` / ``"cuda:N"``, or a torch device.

    Raises:
        ValueError: an unknown name, or a GPU asked for that PyTorch does not find (said
            before any case is read, not case by case).
    """
    name = str(device) if isinstance(device, torch.device) else str(device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but PyTorch finds no CUDA GPU; use --device cpu or auto")
        number = name.split(":", 1)[1] if ":" in name else "0"
        if not number.isdigit():
            raise ValueError(f"device: expected cuda or cuda:N with N a GPU number, found {device!r}")
        index = int(number)
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: PyTorch finds {torch.cuda.device_count()} GPU(s)")
        return torch.device(name)
    raise ValueError(f"device: expected one of {', '.join(DEVICES)} (or cuda:N), found {device!r}")


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    """Mixed precision on a GPU (float16 autocast), nothing on the CPU; no gradients either way."""
    with torch.no_grad():
        if device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.float16):
                yield
        else:
            yield
