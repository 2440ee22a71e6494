"""``mednet info FILE...``: shape, spacing, orientation, dtype and range of images."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``info`` sub-command."""
    parser = sub.add_parser(
        "info", help="describe image files (shape, spacing, orientation, dtype, range)", description=__doc__
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="image files, DICOM series folders, or folders to search for images"
    )
    parser.add_argument("--label", action="store_true", help="check the files as label maps (integer values)")
    parser.add_argument("--series", metavar="UID", help="series to read from a DICOM folder holding several")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Describe each image; exit code 1 when any file is unreadable or has problems."""
    import json

    from mednet.errors import MednetError
    from mednet.io.info import describe_image, expand_image_paths, format_descriptions

    kind = "label" if args.label else "image"
    found = []
    for path in expand_image_paths(args.paths):
        try:
            found.append(describe_image(path, kind=kind, series_uid=args.series))
        except MednetError:
            raise  # a setting at fault (e.g. MEDNET_MAX_IMAGE_GB), not this file: one line, exit code 2
        except Exception as err:  # one file must not stop the description of the others
            found.append({"path": str(path), "error": f"{path}: unexpected error, please report it: {err!r}"})
    print(json.dumps(found, indent=2) if args.json else format_descriptions(found))
    return int(any("error" in d or d["problems"] for d in found))
