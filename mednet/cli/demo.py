"""``mednet demo``: run mednet end to end on a synthetic cohort."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    parser = sub.add_parser("demo", help="run mednet end to end on a synthetic cohort", description=__doc__)
    parser.add_argument("--out", default="mednet-demo", help="working folder (default ./mednet-demo)")
    parser.add_argument("--cases", type=int, default=6, help="number of synthetic cases (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print its steps."""
    from mednet.demo import run_demo

    run_demo(args.out, n_cases=args.cases, seed=args.seed)
    print(f"demo finished: outputs in {args.out}")
    return 0
