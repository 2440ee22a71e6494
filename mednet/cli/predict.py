"""``mednet predict`` and ``mednet evaluate``: the pipeline on a folder or datalist, and its metrics."""

from __future__ import annotations

import argparse
import sys

from mednet.pipeline.diseases import DISEASES


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``predict`` and ``evaluate`` sub-commands."""
    parser = sub.add_parser(
        "predict",
        help="localise, grade and fuse every case of a folder or datalist",
        description="Localise, grade each sequence and fuse, for every case; writes per-case label maps, "
        "lesion tables, JSON and overview PNGs, a summary.csv, a report.html and (when the truth is known) "
        "metrics.json. A re-run skips complete cases. Exit code 1 when any case failed.",
    )
    parser.add_argument("--disease", required=True, choices=sorted(DISEASES))
    parser.add_argument("--input", required=True, help="folder of NIfTI files, or a datalist JSON")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--device", default="auto", help="auto (the GPU when PyTorch finds one), cpu, cuda or cuda:N")
    parser.add_argument("--bundles", default=None, help="folder of trained bundles (default: mednet's bundles/)")
    parser.add_argument("--clinicians", default=None, help="CSV of clinicians' readings: case_id, role, reading")
    parser.add_argument("--partition", default="testing", help="datalist partition, or 'all' (default testing)")
    parser.add_argument("--overwrite", action="store_true", help="redo complete cases too")
    parser.set_defaults(run=run_predict)

    parser = sub.add_parser("evaluate", help="metrics of a predict output folder against a datalist",
                            description="Patient-level metrics (95%% CI) of `mednet predict` outputs.")  # fmt: skip
    parser.add_argument("--pred", required=True, help="the predict output folder")
    parser.add_argument("--datalist", required=True, help="datalist with the true classes and label maps")
    parser.add_argument("--bundles", default=None)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.set_defaults(run=run_evaluate)


def run_predict(args: argparse.Namespace) -> int:
    """Run the cohort; print where the results are; 1 when any case failed."""
    from mednet.pipeline import predict_cohort

    try:
        result = predict_cohort(args.input, args.disease, args.out, device=args.device, bundles=args.bundles,
                                clinicians=args.clinicians, partition=args.partition,
                                overwrite=args.overwrite)  # fmt: skip
    except (FileNotFoundError, ValueError) as error:
        print(f"mednet predict: error: {error}", file=sys.stderr)
        return 2
    if result["interrupted"]:
        print(f"mednet predict: {result['interrupted']}; summary {result['summary']}, report {result['report']}",
              file=sys.stderr)  # fmt: skip
        return 130
    print(f"{result['ok']} of {result['cases']} cases done ({result['skipped']} already complete), "
          f"{result['failed']} failed; summary {result['summary']}, report {result['report']}"
          + (f", metrics {result['metrics']}" if result["metrics"] else "")
          + f"; log: {result['log']}")  # fmt: skip
    return 1 if result["failed"] else 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Write OUT/metrics.json and print the headline figures."""
    from mednet.pipeline.evaluate import evaluate_predictions

    try:
        metrics = evaluate_predictions(args.pred, datalist=args.datalist, bundles=args.bundles, n_boot=args.n_boot)
    except (FileNotFoundError, ValueError) as error:
        print(f"mednet evaluate: error: {error}", file=sys.stderr)
        return 2
    from mednet.metrics.bootstrap import format_ci

    for stage, figures in metrics["headline"].items():
        for name, f in figures.items():
            print(f"{stage:<13} {name:<30} {format_ci(f, 3)} (n={f.get('n')})")
    return 0
