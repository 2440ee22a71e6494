"""Entry point of the ``mednet`` command."""

from __future__ import annotations

import argparse
import os
import sys

# Before torch is imported, so before anything else (its OpenMP runtime reads this once, when
# it loads): threads that wait for work sleep instead of spinning. On a machine where other
# work runs, spinning threads steal the cores their partners need, and every parallel step
# waits for a thread that is not running: the localisation 1.2 to 2 times and the grading 2 to
# 7 times slower (docs/benchmarks.md, "A busy machine"); on an idle machine no measurable
# difference. A value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from mednet import __version__
from mednet.cli import bundle, datalist, demo, info, label, predict, synth, train

__all__ = ["build_parser", "main"]

_COMMANDS = (info, datalist, synth, train, predict, demo, bundle, label)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="mednet",
        description="Localisation, grading and fusion for multi-sequence MRI, built on MONAI. "
        "Research use only; not for clinical decisions.",
    )
    parser.add_argument("--version", action="version", version=f"mednet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``mednet`` command; returns its exit code.

    Errors mednet raises on purpose (bad input) print as one line, without a traceback.
    """
    args = build_parser().parse_args(argv)
    from mednet.errors import MednetError

    try:
        return int(args.run(args) or 0)
    except MednetError as err:
        print(f"mednet {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
