"""``mednet demo``: run mednet end to end on synthetic cohorts of the three diseases."""

from __future__ import annotations

import argparse
import sys

from mednet.pipeline.diseases import DISEASES


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    parser = sub.add_parser(
        "demo",
        help="synthetic test patients of the three diseases through the pipeline with the shipped weights; metrics",
        description="For each disease: generate synthetic test patients, run `mednet predict` on them with the "
        "shipped reference weights (trained on synthetic data only) and print their patient-level metrics. About "
        "3.5 minutes on 2 CPU cores the first time, seconds afterwards; the same figures on any CPU. --retrain "
        "trains the weights again from scratch with the deterministic reference recipe (hours on CPU).",
    )
    parser.add_argument("-o", "--out", default="mednet-demo", help="working folder (default ./mednet-demo)")
    parser.add_argument("--disease", action="append", choices=sorted(DISEASES),
                        help="only this disease (repeatable; default all three)")  # fmt: skip
    parser.add_argument("--retrain", action="store_true",
                        help="train the weights again with the reference recipe (into OUT/training; resumable)")
    parser.add_argument("--device", default="auto",
                        help="auto (default: the GPU when there is one), cpu, cuda or cuda:N; one that is not there "
                        "is refused before any work (exit code 2)")  # fmt: skip
    parser.add_argument("--bundles", default=None, help="folder of the bundles (default: mednet's bundles/)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; 1 when a test case failed."""
    from mednet.demo import run_demo
    from mednet.inference.device import choose_device

    order = [d for d in ("glioma", "cpa", "neuroblastoma") if not args.disease or d in args.disease]
    try:
        choose_device(args.device)  # an absent GPU: said before the cohorts are made, not case by case
        summary = run_demo(args.out, diseases=order, bundles=args.bundles, seed=args.seed, device=args.device,
                           retrain=args.retrain)  # fmt: skip
    except (FileNotFoundError, ValueError) as error:
        print(f"mednet demo: error: {error}", file=sys.stderr)
        return 2
    failed = {d: r["failed"] for d, r in summary["diseases"].items() if r["failed"]}
    if failed:
        print(f"mednet demo: failed cases ({failed}); see summary.csv in each predictions folder", file=sys.stderr)
        return 1
    return 0
