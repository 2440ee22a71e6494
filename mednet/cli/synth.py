"""``mednet synth``: write a synthetic multi-sequence MRI cohort with ground truth."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``synth`` sub-command."""
    parser = sub.add_parser("synth", help="write a synthetic cohort (glioma, cpa, neuroblastoma)", description=__doc__)
    parser.add_argument("--disease", required=True, choices=["neuroblastoma", "glioma", "cpa"])
    parser.add_argument("--cases", type=int, required=True, help="number of cases")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--size",
        default="small",
        choices=["small", "demo", "full"],
        help="small: ~48 voxels a side (tests); demo: 128 in plane; full: 240 in plane",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, identical files)")
    parser.add_argument(
        "--balance",
        metavar="CLASS=W,...",
        help="class weights, e.g. HGG=1,LGG=1 (default: the papers'); glioma also takes MET (brain metastases)",
    )
    parser.add_argument("--mixed-grids", action="store_true", help="each sequence on its own grid")
    parser.add_argument(
        "--randomise",
        choices=["full", "moderate", "plausible"],
        help="domain randomisation: every case draws its look (contrast, resolution, plane, artefacts, skull "
        "stripping, BraTS look) and its lesion's kind; fully random contrasts in half the cases ('full'), one "
        "in six ('moderate'), or none ('plausible')",
    )
    parser.add_argument("--dwi", action="store_true", help="neuroblastoma: add a DWI sequence")
    parser.add_argument(
        "--t1", action="store_true", help="neuroblastoma: add a native (pre-contrast) T1-weighted sequence"
    )
    parser.add_argument("--reader-accuracy", type=float, default=0.85, help="cpa: simulated clinicians' accuracy")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes rendering cases in parallel (default: all cores); files do not depend on it",
    )
    parser.add_argument("--preview", action="store_true", help="also write preview.png, a montage of a few cases")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Generate the cohort and say where it is."""
    from mednet.synthetic import generate_cohort
    from mednet.synthetic.preview import write_preview

    balance = None
    if args.balance:
        balance = {k.strip(): float(v) for k, v in (item.split("=") for item in args.balance.split(","))}
    cohort = generate_cohort(
        args.disease,
        args.cases,
        args.out,
        size=args.size,
        seed=args.seed,
        balance=balance,
        mixed_grids=args.mixed_grids,
        optional=tuple(s for s, wanted in (("dwi", args.dwi), ("t1", args.t1)) if wanted),
        reader_accuracy=args.reader_accuracy,
        workers=args.workers,
        randomise=args.randomise,
    )
    print(
        f"wrote {len(cohort.cases)} {args.disease} cases to {cohort.root}: {cohort.manifest.name}, "
        f"{cohort.labels.name}, {cohort.datalist.name}"
    )
    if args.preview:
        print(f"preview: {write_preview(cohort.root, cohort.root / 'preview.png')}")
    return 0
