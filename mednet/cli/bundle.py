"""``mednet bundle list`` and ``mednet bundle export``: mednet's MONAI bundles and their archives."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bundle`` sub-command with ``list`` and ``export``."""
    parser = sub.add_parser("bundle", help="list mednet's bundles, or export one as a zip archive",
                            description=__doc__)  # fmt: skip
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the bundles, their versions and whether weights are present")
    listing.add_argument("--bundles", default=None, help="folder of bundles (default: mednet's bundles/)")
    listing.set_defaults(run=run_list)
    export = actions.add_parser("export", help="a self-contained bundle archive (configs, weights, docs, licence)")
    export.add_argument("name", help="the bundle, e.g. glioma_mri_segmentation")
    export.add_argument("--out", required=True, help="the .zip to write")
    export.add_argument("--bundles", default=None, help="folder of bundles (default: mednet's bundles/)")
    export.set_defaults(run=run_export)


def run_list(args: argparse.Namespace) -> int:
    """Print one line per bundle."""
    from mednet.bundles import BUNDLES_DIR, bundle_table

    rows = bundle_table(args.bundles)
    if not rows:
        print(f"mednet bundle list: no bundles in {args.bundles or BUNDLES_DIR}", file=sys.stderr)
        return 2
    width = max(len(r["name"]) for r in rows)
    print(f"{'bundle':<{width}}  version  weights")
    for r in rows:
        weights = (
            f"yes ({r['weights_mb']} MB, {r['trained']})" if r["weights"] else "no (train it: see its docs/README.md)"
        )
        print(f"{r['name']:<{width}}  {r['version']:<7}  {weights}")
    print(f"folder: {args.bundles or BUNDLES_DIR}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Write the archive; 2 when the bundle is unknown or has no weights."""
    from mednet.bundles import export_bundle

    try:
        out = export_bundle(args.name, args.out, args.bundles)
    except FileNotFoundError as error:
        print(f"mednet bundle export: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0
