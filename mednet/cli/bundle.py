"""``mednet bundle list | export | studies``: mednet's MONAI bundles, their archives, MONAI Label studies."""

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
    studies = actions.add_parser(
        "studies", help="a MONAI Label studies folder for a localisation bundle: one stacked NIfTI per case",
        description="Write DIR/<case_id>.nii.gz for every case of a datalist partition: the bundle's sequences "
        "(its image_keys) stacked as channels, in its channel order, on the first sequence's grid. MONAI Label "
        "serves these files to the bundle (see the bundle's docs/README.md).",
    )  # fmt: skip
    studies.add_argument("name", help="a segmentation bundle, e.g. glioma_mri_segmentation")
    studies.add_argument("--datalist", required=True, help="a mednet datalist (mednet datalist / mednet synth)")
    studies.add_argument("--out", required=True, help="the studies folder to write")
    studies.add_argument("--partition", default="testing", choices=["training", "validation", "testing", "all"],
                         help="which cases (default: testing)")  # fmt: skip
    studies.add_argument("--overwrite", action="store_true", help="replace existing files")
    studies.add_argument("--bundles", default=None, help="folder of bundles (default: mednet's bundles/)")
    studies.set_defaults(run=run_studies)


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
        weights = f"{r['weights_mb']} MB: {r['source']}" if r["weights"] else "none (train it: see its docs/README.md)"
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


def run_studies(args: argparse.Namespace) -> int:
    """Write the stacked studies; 2 on a bad bundle or datalist."""
    from mednet.bundles import BundleSpec, bundle_path
    from mednet.errors import MednetError
    from mednet.io import PARTITIONS, datalist_cases
    from mednet.io.studies import write_studies

    try:
        spec = BundleSpec.load(bundle_path(args.name, args.bundles))
        if spec.task != "segmentation":
            raise ValueError(f"{args.name} is not a localisation bundle (a {spec.task} bundle): nothing to stack")
        keys = list(spec.sequences)
        partitions = PARTITIONS if args.partition == "all" else (args.partition,)
        cases = [case for p in partitions for case in datalist_cases(args.datalist, p, keys)]
        paths = write_studies(cases, keys, args.out, overwrite=args.overwrite)
    except (FileNotFoundError, ValueError, MednetError) as error:
        print(f"mednet bundle studies: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} studies ({', '.join(keys)} as channels 0-{len(keys) - 1}) to {args.out}")
    return 0
