"""Training data: the bundles' cached dataset against a plain MONAI ``Dataset``, samples per second.

    python scripts/benchmark_training_data.py --cases 12 --epochs 3 --out docs/benchmarks/training_data.json

The localisation bundles train from a ``CacheDataset``: each case's deterministic
transforms (reading, resampling to the reference sequence, orientation, spacing,
normalisation, padding, the crop indices) run once and stay in memory; only the random
ones (crops, flips, affine, intensity, sequence dropout) run every epoch. The plain MONAI
path runs the whole chain every epoch. Both from the bundle's own ``train.json`` (parsed
with MONAI's ``ConfigParser``), on one synthetic cohort (``demo`` size), the same
``DataLoader`` (the bundle's batch size, ``--workers`` workers), alternating epochs: the
samples per second of each after the cache is built (its time reported apart), peak
resident memory, and a check that the cached items are what the deterministic transforms
give (so the two paths feed the network the same data).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose

from mednet.bundles import BundleSpec, bundle_path
from mednet.synthetic import generate_cohort

sys.path.insert(0, str(Path(__file__).parent))
from benchmark_inference import _peak_mb  # a script beside this one


def _epoch(loader) -> tuple[int, float]:
    start, samples = time.perf_counter(), 0
    for batch in loader:
        samples += int(batch["image"].shape[0])
    return samples, time.perf_counter() - start


def benchmark(disease: str, cases: int, epochs: int, workers: int, root: Path) -> dict:
    bundle = {"glioma": "glioma_mri_segmentation", "cpa": "cpa_mri_segmentation",
              "neuroblastoma": "neuroblastoma_mri_segmentation"}[disease]  # fmt: skip
    cohort = generate_cohort(disease, cases, root / "data", size="demo", seed=5, workers=1)
    spec = BundleSpec.load(bundle_path(bundle))
    parser = spec.parser("train", datalist=str(cohort.datalist), num_workers=workers, bundle_root=str(spec.path))
    start = time.perf_counter()
    cached = parser.get_parsed_content("train#dataset", instantiate=True)  # builds the cache
    cache_s = time.perf_counter() - start
    transforms = parser.get_parsed_content("train#preprocessing", instantiate=True)
    data = parser.get_parsed_content("train#dataset#data")
    deterministic = Compose(parser.get_parsed_content("train#deterministic_transforms", instantiate=True)
                            + parser.get_parsed_content("train#crop_indices", instantiate=True))  # fmt: skip
    first = deterministic(dict(data[0]))
    same = all(torch.equal(torch.as_tensor(cached._cache[0][k]), torch.as_tensor(first[k]))
               for k in ("image", "label"))  # fmt: skip
    batch = int(parser.get_parsed_content("batch_size"))
    loaders = {"cached": DataLoader(cached, batch_size=batch, shuffle=True, num_workers=workers),
               "plain": DataLoader(Dataset(data, transform=transforms), batch_size=batch, shuffle=True,
                                   num_workers=workers)}  # fmt: skip
    rates: dict[str, list[float]] = {k: [] for k in loaders}
    for _ in range(epochs):
        for name, loader in loaders.items():
            samples, seconds = _epoch(loader)
            rates[name].append(samples / seconds)
    median = {k: round(statistics.median(v), 2) for k, v in rates.items()}
    return {"bundle": bundle, "training_cases": len(data), "batch_size": batch, "workers": workers,
            "cache_build_s": round(cache_s, 2), "samples_per_s": median,
            "all_samples_per_s": {k: [round(x, 2) for x in v] for k, v in rates.items()},
            "cached_over_plain": round(median["cached"] / median["plain"], 2),
            "cached_items_equal_deterministic_transforms": bool(same), "peak_rss_mb": _peak_mb()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disease", default="glioma")
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (the bundles train with 2)")
    parser.add_argument("--out", default="training_data.json")
    args = parser.parse_args()
    results = {"machine": {"platform": platform.platform(), "torch": torch.__version__, "cpus": os.cpu_count(),
                           "threads": torch.get_num_threads()},
               "command": "python scripts/benchmark_training_data.py " + " ".join(sys.argv[1:])}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        results["result"] = benchmark(args.disease, args.cases, args.epochs, args.workers, Path(tmp))
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["result"], indent=1), f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
