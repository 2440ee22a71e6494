"""``mednet demo``: run mednet end to end on synthetic cohorts of the three diseases."""

from __future__ import annotations

import argparse
import sys

from mednet.pipeline.diseases import DISEASES


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    parser = sub.add_parser(
        "demo",
        help="generate synthetic cohorts, train every bundle briefly, predict the test patients, print metrics",
        description="For each disease: generate a synthetic cohort, train its localisation and grading bundles "
        "briefly (weights installed in each bundle's models/, reused by later runs), run `mednet predict` on the "
        "held-out test patients and print their patient-level metrics. About 15 minutes on 2 CPU cores the first "
        "time, under 2 minutes afterwards.",
    )
    parser.add_argument("--out", default="mednet-demo", help="working folder (default ./mednet-demo)")
    parser.add_argument("--disease", action="append", choices=sorted(DISEASES),
                        help="only this disease (repeatable; default all three)")  # fmt: skip
    parser.add_argument("--retrain", action="store_true", help="train every bundle even when it has weights")
    parser.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cuda when available")
    parser.add_argument("--bundles", default=None, help="folder of the bundles (default: mednet's bundles/)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; 1 when a test case failed."""
    from mednet.demo import run_demo

    order = [d for d in ("glioma", "cpa", "neuroblastoma") if not args.disease or d in args.disease]
    summary = run_demo(args.out, diseases=order, bundles=args.bundles, seed=args.seed, device=args.device,
                       retrain=args.retrain)  # fmt: skip
    failed = {d: r["failed"] for d, r in summary["diseases"].items() if r["failed"]}
    if failed:
        print(f"mednet demo: failed cases ({failed}); see summary.csv in each predictions folder", file=sys.stderr)
        return 1
    return 0
