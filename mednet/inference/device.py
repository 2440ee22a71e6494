"""Where prediction runs: the device is chosen once per cohort, before any work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["DEVICES", "PRECISIONS", "autocast", "choose_device", "choose_precision"]

#: What ``--device`` accepts.
DEVICES = ("auto", "cpu", "cuda")
#: What ``--precision`` accepts.
PRECISIONS = ("auto", "float32", "bfloat16", "float16")


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


def choose_precision(device: torch.device, precision: str | None = "auto") -> str:
    """The arithmetic the networks run in on ``device``: ``float32``, ``bfloat16`` or ``float16``.

    ``auto`` is float16 mixed precision on a GPU and float32 on the CPU, where the maps are
    those of the plain MONAI path to the last voxel. ``bfloat16`` on the CPU is an option for
    processors with bfloat16 matrix units (Intel AMX or AVX-512 BF16; ``lscpu`` lists
    ``amx_bf16`` or ``avx512_bf16``): the networks about 1.8 times faster there, the maps
    within a few boundary voxels of float32's (``docs/benchmarks.md``); elsewhere it is
    slower. The choice is recorded with every case.

    Args:
        device: where the networks run.
        precision: one of :data:`PRECISIONS` (None: ``auto``).

    Raises:
        ValueError: an unknown name, or float16 on the CPU (PyTorch's CPU convolutions have no
            fast float16 path).
    """
    name = str(precision or "auto").strip().lower()
    if name not in PRECISIONS:
        raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, found {precision!r}")
    if name == "auto":
        return "float16" if device.type == "cuda" else "float32"
    if name == "float16" and device.type != "cuda":
        raise ValueError("precision float16 needs a GPU; on the CPU use float32 (the default) or bfloat16")
    return name


@contextlib.contextmanager
def autocast(device: torch.device, precision: str = "auto") -> Iterator[None]:
    """The networks' arithmetic for ``precision`` (see :func:`choose_precision`); no gradients either way."""
    name = choose_precision(device, precision)
    with torch.no_grad():
        if name == "float32":
            yield
        else:
            with torch.autocast(device.type, dtype=getattr(torch, name)):
                yield
