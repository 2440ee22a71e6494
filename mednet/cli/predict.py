"""``mednet predict``, ``report`` and ``evaluate``: the pipeline on a cohort, its summary, its metrics."""

from __future__ import annotations

import argparse
import sys

from mednet.pipeline.diseases import DISEASES


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``predict``, ``report`` and ``evaluate`` sub-commands."""
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
    parser.add_argument("--shard", default=None, metavar="K/N",
                        help="predict only shard K of N (every N-th case from the K-th), e.g. in a SLURM array or on "
                        "several machines sharing --out; 'auto': torchrun's RANK/WORLD_SIZE or the SLURM array's "
                        "task numbers (under torchrun this is the default); then `mednet report OUT`")  # fmt: skip
    parser.set_defaults(run=run_predict)

    parser = sub.add_parser("report", help="summary, report and metrics of a predict output folder, from its cases",
                            description="Write OUT/summary.csv, OUT/report.html and (when every case is done) "
                            "OUT/metrics.json from the case folders of a `mednet predict` output, whichever "
                            "process or shard wrote them. Exit code 1 when cases failed or are not done.")  # fmt: skip
    parser.add_argument("out", help="the predict output folder")
    parser.add_argument("--bundles", default=None, help="folder of the bundles (default: the run's)")
    parser.set_defaults(run=run_report)

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
    from mednet.pipeline.summary import parse_shard

    try:
        shard = parse_shard(args.shard)
        result = predict_cohort(args.input, args.disease, args.out, device=args.device, bundles=args.bundles,
                                clinicians=args.clinicians, partition=args.partition,
                                overwrite=args.overwrite, shard=shard)  # fmt: skip
    except (FileNotFoundError, ValueError) as error:
        print(f"mednet predict: error: {error}", file=sys.stderr)
        return 2
    if result["interrupted"]:
        print(f"mednet predict: {result['interrupted']}; summary {result['summary']}, report {result['report']}",
              file=sys.stderr)  # fmt: skip
        return 130
    share = f" of shard {shard[0]}/{shard[1]}" if shard[1] > 1 else ""
    print(f"{result['ok']} of {result['cases']} cases{share} done ({result['skipped']} already complete), "
          f"{result['failed']} failed; summary {result['summary']}, report {result['report']}"
          + (f", metrics {result['metrics']}" if result["metrics"] else "")
          + f"; log: {result['log']}")  # fmt: skip
    if result["pending"]:
        print(f"{result['pending']} cases of the cohort are not done yet (other shards); then "
              f"`mednet report {args.out}` writes the complete summary (as the last shard to finish does)")  # fmt: skip
    return 1 if result["failed"] else 0


def run_report(args: argparse.Namespace) -> int:
    """Rebuild OUT's summary, report and metrics; 1 when cases failed or are pending."""
    from mednet.pipeline.summary import report_cohort

    try:
        result = report_cohort(args.out, bundles=args.bundles)
    except (FileNotFoundError, ValueError) as error:
        print(f"mednet report: error: {error}", file=sys.stderr)
        return 2
    print(f"{result['cases']} cases: {result['ok']} done, {result['failed']} failed, "
          f"{result['pending']} not done yet; summary {result['summary']}, report {result['report']}"
          + (f", metrics {result['metrics']}" if result["metrics"] else ""))  # fmt: skip
    return 1 if result["failed"] or result["pending"] else 0


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
