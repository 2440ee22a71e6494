"""``mednet datalist``: find cases in a folder or manifest and split them by patient."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``datalist`` sub-command."""
    parser = sub.add_parser(
        "datalist",
        help="find cases (BraTS names, case folders, CSV manifest) and split them by patient",
        description=__doc__ + " Paths in the output are relative to its folder where they lie below it.",
    )
    parser.add_argument("folder", nargs="?", help="folder to search for cases (omit with --manifest)")
    parser.add_argument("--manifest", metavar="CSV", help="read cases from a CSV manifest instead of a folder")
    parser.add_argument("--out", required=True, metavar="JSON", help="datalist file to write")
    parser.add_argument(
        "--require", default="", metavar="KEYS", help="comma-separated sequences every case must have, e.g. t1,t2,flair"
    )
    parser.add_argument(
        "--ratios",
        type=float,
        nargs=3,
        default=(0.7, 0.15, 0.15),
        metavar=("TRAIN", "VAL", "TEST"),
        help="patient proportions (default 0.7 0.15 0.15)",
    )
    parser.add_argument("--folds", type=int, help="k-fold cross-validation on the non-test patients")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the split (default 0)")
    parser.add_argument("--no-stratify", action="store_true", help="do not keep class proportions")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing datalist")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Discover, split, write, and print what was found and skipped."""
    from pathlib import Path

    from mednet.errors import DatalistError, OutputExistsError
    from mednet.io.datalist import build_datalist, discover_cases, read_manifest, save_datalist
    from mednet.io.sequences import normalise_sequence_key

    if bool(args.folder) == bool(args.manifest):
        raise DatalistError("give either a folder or --manifest CSV, not both and not neither")
    if Path(args.out).exists() and not args.overwrite:
        raise OutputExistsError(f"{args.out}: output exists; pass --overwrite to replace it")
    require = []
    for name in filter(None, (s.strip() for s in args.require.split(","))):
        key = normalise_sequence_key(name)
        if key is None:
            raise DatalistError(f"--require: unknown sequence {name!r}")
        require.append(key)
    found = read_manifest(args.manifest, require) if args.manifest else discover_cases(args.folder, require)
    print(found.report())
    datalist = build_datalist(found, args.ratios, seed=args.seed, stratify=not args.no_stratify, folds=args.folds)
    out = save_datalist(datalist, args.out)
    split = datalist["split"]
    print(
        f"split by {split['unit']} ({split['method']}" + (f", seed {split['seed']}" if "seed" in split else "") + "):"
    )
    for name, counts in split["counts"].items():
        classes = ", ".join(f"{k} {v}" for k, v in counts["classes"].items())
        print(
            f"  {name:<10} {counts['patients']:>4} patients {counts['cases']:>4} cases"
            + (f"  ({classes})" if classes else "")
        )
    for note in split.get("notes", []):
        print(f"note: {note}")
    print(f"wrote {out}")
    return 0
