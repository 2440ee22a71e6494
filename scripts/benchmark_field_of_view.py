"""Time and memory of the field-of-view fill on a large reformatted scan; write the figures as JSON.

    python scripts/benchmark_field_of_view.py --out docs/benchmarks/field_of_view.json

The case: a ``--shape`` volume (default 512 x 512 x 300 at 0.5 x 0.5 x 0.8 mm, a large
high-resolution MRI) whose content is an obliquely acquired box (rotated 20 and 12
degrees) reformatted onto the grid's axes: its corners, about 38% of the volume, are
exact zeros. Measured, in one run and alternating over ``--repeats``:

- ``detect``: :func:`mednet.io.field_of_view.outside_field_of_view`;
- ``fill``: :func:`mednet.io.field_of_view.fill_from_nearest` as the bundles run it (boxes
  over ``--budget``, by default :data:`~mednet.io.field_of_view.FILL_VOXELS`, searched on a
  coarser grid), against
  ``fill_exact``, the same with no budget (every voxel searched);

each with its median seconds and the peak of the memory numpy allocated (``tracemalloc``),
and how far the coarse fill's sources lie beyond the nearest acquired voxel (mm, on a
sample of the filled voxels).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from mednet.io.field_of_view import FILL_VOXELS, fill_from_nearest, outside_field_of_view

#: A budget no box reaches: every voxel searched (the mask's box, grown by a voxel, is larger than the volume's count).
UNLIMITED = 2**62


def reformatted_box(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """``(1, x, y, z)`` float32: a textured box rotated 20 degrees about z and 12 about x, zero outside it."""
    x, y, z = np.meshgrid(*[np.arange(n, dtype=np.float32) - n / 2 for n in shape], indexing="ij", sparse=True)
    a, b = np.deg2rad(20), np.deg2rad(12)
    u = np.cos(a) * x + np.sin(a) * y
    v = (-np.sin(a) * x + np.cos(a) * y) * np.cos(b) + np.sin(b) * z
    w = z * np.cos(b) - np.sin(b) * (-np.sin(a) * x + np.cos(a) * y)
    half = np.array([0.42, 0.42, 0.467]) * shape  # 215 x 215 x 140 voxels on 512 x 512 x 300
    inside = (np.abs(u) < half[0]) & (np.abs(v) < half[1]) & (np.abs(w) < half[2])
    texture = np.random.default_rng(seed).random(shape, dtype=np.float32) * 50 + 100
    return np.where(inside, texture, np.float32(0))[None]


def _measured(call) -> tuple[object, float, float]:
    """``call()``'s result, its seconds and the peak MiB numpy allocated during it."""
    tracemalloc.start()
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    parser.add_argument("--spacing", type=float, nargs=3, default=[0.5, 0.5, 0.8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=int, default=FILL_VOXELS, help="the fill's box budget (voxels)")
    parser.add_argument("--out", default="field_of_view.json")
    args = parser.parse_args()
    image, spacing = reformatted_box(tuple(args.shape)), np.array(args.spacing)
    times: dict[str, list[float]] = {"detect": [], "fill": [], "fill_exact": []}
    peaks: dict[str, list[float]] = {k: [] for k in times}
    mask = None
    for _ in range(args.repeats):
        mask, seconds, peak = _measured(lambda: outside_field_of_view(image, spacing))
        times["detect"].append(seconds)
        peaks["detect"].append(peak)
        for name, budget in (("fill", args.budget), ("fill_exact", UNLIMITED)):
            filled, seconds, peak = _measured(lambda b=budget, m=mask: fill_from_nearest(image, m, spacing, budget=b))
            times[name].append(seconds)
            peaks[name].append(peak)
            del filled
    # how much farther the coarse fill's sources lie than the nearest acquired voxel, on a sample
    ids = np.arange(mask.size, dtype=np.float64).reshape(1, *mask.shape)
    source_ids = fill_from_nearest(ids, mask, spacing, budget=args.budget)[0][mask][::97].astype(np.intp)
    exact_ids = fill_from_nearest(ids, mask, spacing, budget=UNLIMITED)[0][mask][::97].astype(np.intp)
    here = np.argwhere(mask)[::97]
    farther = [np.linalg.norm((np.stack(np.unravel_index(s, mask.shape), axis=1) - here) * spacing, axis=1)
               for s in (source_ids, exact_ids)]  # fmt: skip
    extra = farther[0] - farther[1]
    result = {
        "shape": args.shape, "spacing_mm": args.spacing, "voxels": int(mask.size),
        "outside_fraction": float(mask.mean()), "fill_budget_voxels": args.budget, "repeats": args.repeats,
        "median_seconds": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "peak_numpy_mib": {k: round(max(v), 1) for k, v in peaks.items()},
        "fill_speedup": round(statistics.median(times["fill_exact"]) / statistics.median(times["fill"]), 2),
        "coarse_source_farther_mm": {"median": round(float(np.median(extra)), 3),
                                     "p99": round(float(np.percentile(extra, 99)), 3),
                                     "max": round(float(extra.max()), 3), "sampled_voxels": int(extra.size)},
        "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads()},
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
