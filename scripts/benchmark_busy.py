"""mednet on a busy machine: waiting threads that sleep (what ``mednet`` sets) against the OpenMP default.

    python scripts/benchmark_busy.py --repeats 3 --out docs/benchmarks/busy.json

The ``mednet`` command sets ``OMP_WAIT_POLICY=PASSIVE`` before torch loads
(:mod:`mednet.cli.main`): threads waiting for work sleep instead of spinning. This measures
what that changes. Each measurement is a fresh process (the OpenMP runtime reads the
policy once, when it loads) that builds the glioma predictors, reads a BraTS-size glioma
phantom (240 x 240 x 155, four sequences) and times the localisation and the grading
(median of ``--repeats`` after a warm-up), with the SHA-256 of the label map it made.

``--policies`` also takes ``spin:N``: the OpenMP default with ``GOMP_SPINCOUNT=N`` (spin
a while, then sleep). Two conditions, the policies alternating in each: *quiet* (nothing else running) and
*busy*: another process trains a small convolutional network with torch on every core
under the OpenMP default, as another job on a shared workstation would. Reported: median
seconds per policy and condition, the ratios default / passive, and whether every process
made the same label map.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from benchmark_inference import _case  # a script beside this one

#: Another job on the machine: a small network trained on every core, the OpenMP default policy.
_LOAD = """
import os, torch
torch.set_num_threads(os.cpu_count())
net = torch.nn.Sequential(*[torch.nn.Conv2d(16, 16, 3, padding=1) for _ in range(4)])
optimiser = torch.optim.SGD(net.parameters(), lr=1e-3)
x = torch.randn(8, 16, 96, 96)
while True:
    optimiser.zero_grad(); net(x).square().mean().backward(); optimiser.step()
"""


def _child(case_file: str, repeats: int) -> None:
    """One measurement (run in its own process): localisation and grading seconds, the label map's SHA-256."""
    from mednet.pipeline.case import Predictors, read_case
    from mednet.pipeline.diseases import disease_spec

    case = json.loads(Path(case_file).read_text())
    spec = disease_spec("glioma")
    predictors = Predictors.build(spec, "cpu")
    loaded, _ = read_case(case, spec)
    branches = [s for s in spec.branches if s in loaded.images]
    localise, grade = [], []
    for _ in range(repeats + 1):  # the first is a warm-up
        start = time.perf_counter()
        found = predictors.localise({"case_id": case["case_id"], **loaded.images})
        localise.append(time.perf_counter() - start)
        start = time.perf_counter()
        predictors.grade({s: loaded.images[s] for s in branches}, found.labels, case["case_id"])
        grade.append(time.perf_counter() - start)
    print(json.dumps({"localise_s": statistics.median(localise[1:]), "grade_s": statistics.median(grade[1:]),
                      "labels_sha256": hashlib.sha256(found.array.tobytes()).hexdigest()}))  # fmt: skip


def _measure(case_file: Path, repeats: int, policy: str) -> dict:
    """One process under ``policy``: ``default`` (nothing set), ``passive`` or ``spin:N`` (``GOMP_SPINCOUNT=N``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if policy == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    elif policy.startswith("spin:"):
        env["GOMP_SPINCOUNT"] = policy.split(":", 1)[1]
    out = subprocess.run([sys.executable, __file__, "--child", str(case_file), "--repeats", str(repeats)],
                         env=env, capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per process (after a warm-up)")
    parser.add_argument("--rounds", type=int, default=2, help="processes per policy and condition, alternating")
    parser.add_argument("--policies", default="default,passive",
                        help="default, passive, spin:N (GOMP_SPINCOUNT=N), comma-separated")
    parser.add_argument("--out", default="busy.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args.child, args.repeats)
    import torch

    results = {"machine": {"platform": platform.platform(), "torch": torch.__version__, "cpus": os.cpu_count(),
                           "threads": torch.get_num_threads()},
               "command": "python scripts/benchmark_busy.py " + " ".join(sys.argv[1:]), "conditions": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        case_file = Path(tmp) / "case.json"
        case_file.write_text(json.dumps(_case("glioma", Path(tmp) / "data")))
        hashes = set()
        for condition in ("quiet", "busy"):
            load = subprocess.Popen([sys.executable, "-c", _LOAD]) if condition == "busy" else None
            runs: dict[str, list[dict]] = {p: [] for p in args.policies.split(",")}
            try:
                for _ in range(args.rounds):
                    for policy in runs:
                        runs[policy].append(_measure(case_file, args.repeats, policy))
                        print(condition, policy, json.dumps(runs[policy][-1]), flush=True)
            finally:
                if load is not None:
                    load.kill()
                    load.wait()
            hashes |= {r["labels_sha256"] for rs in runs.values() for r in rs}
            summary = {policy: {stage: round(statistics.median(r[stage] for r in rs), 3)
                                for stage in ("localise_s", "grade_s")} for policy, rs in runs.items()}  # fmt: skip
            base = summary.get("default")
            for policy in [p for p in runs if p != "default" and base]:
                summary[f"default_over_{policy}"] = {stage: round(base[stage] / summary[policy][stage], 2)
                                                     for stage in ("localise_s", "grade_s")}  # fmt: skip
            results["conditions"][condition] = summary
        results["same_label_map_everywhere"] = len(hashes) == 1
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["conditions"], indent=1), f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
