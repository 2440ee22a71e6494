"""How fast are synthetic cohorts generated? Seconds for N cases per disease and size.

    python scripts/benchmark_synthetic_speed.py --cases 100 --size demo --out speed.json

Generates each disease's cohort with ``--workers`` processes (default: all cores)
and, for the side-by-side ratio, the first ``--serial-cases`` cases with one
process. Writes JSON: seconds, seconds per case, the target (100 demo cases in 120 s)
and the parallel speed-up measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from mednet.synthetic import generate_cohort


def timed(disease: str, cases: int, size: str, workers: int, folder: Path) -> float:
    start = time.perf_counter()
    generate_cohort(disease, cases, folder, size=size, seed=0, workers=workers)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--serial-cases", type=int, default=10)
    parser.add_argument("--size", default="demo", choices=["small", "demo", "full"])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--diseases", default="glioma,cpa,neuroblastoma")
    parser.add_argument("--out", default="speed.json")
    args = parser.parse_args()
    results = {"cores": os.cpu_count(), "size": args.size, "workers": args.workers, "diseases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for disease in args.diseases.split(","):
            parallel = timed(disease, args.cases, args.size, args.workers, Path(tmp) / f"{disease}-p")
            serial = timed(disease, args.serial_cases, args.size, 1, Path(tmp) / f"{disease}-s")
            per_case_parallel, per_case_serial = parallel / args.cases, serial / args.serial_cases
            results["diseases"][disease] = {
                "cases": args.cases,
                "seconds": round(parallel, 1),
                "seconds_per_case": round(per_case_parallel, 3),
                "serial_seconds_per_case": round(per_case_serial, 3),
                "speedup_vs_serial": round(per_case_serial / per_case_parallel, 2),
                "seconds_for_100_cases": round(100 * per_case_parallel, 1),
                "within_120_s_for_100": 100 * per_case_parallel <= 120,
            }
            print(disease, json.dumps(results["diseases"][disease]), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
