"""``mednet predict``, ``report`` and ``evaluate``: the pipeline on a cohort, its summary, its metrics."""

from __future__ import annotations

import argparse
import json
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
    parser.add_argument("-i", "--input", required=True,
                        help="folder of images (<case>_<sequence> names), a datalist JSON, or one image file "
                        "(for a disease that reads one sequence)")  # fmt: skip
    parser.add_argument("-o", "--out", required=True,
                        help="output folder (reused for the same disease: its complete cases stay in the "
                        "summary)")  # fmt: skip
    parser.add_argument("--device", default="auto",
                        help="auto (default: the GPU when PyTorch finds one, else the CPU), cpu, cuda or cuda:N; "
                        "one that is not there is refused before any work (exit code 2)")  # fmt: skip
    parser.add_argument("--precision", default="auto",
                        help="the networks' arithmetic: auto (default: float16 on a GPU, float32 on the CPU), "
                        "float32, bfloat16 (on CPUs with AMX or AVX-512 BF16 about 1.8 times faster networks, "
                        "maps within a few boundary voxels of float32's), float16 (GPU only)")  # fmt: skip
    parser.add_argument("--bundles", default=None, help="folder of trained bundles (default: mednet's bundles/)")
    parser.add_argument("--models", default=None, metavar="RUN",
                        help="the weights of a `mednet train --out RUN` run instead of the shipped ones")  # fmt: skip
    parser.add_argument("--clinicians", default=None, help="CSV of clinicians' readings: case_id, role, reading")
    parser.add_argument("--partition", default="testing",
                        help="datalist partition: training, validation, testing (default) or all")  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="redo complete cases too")
    parser.add_argument("--shard", default=None, metavar="K/N",
                        help="predict only shard K of N (every N-th case from the K-th), e.g. in a SLURM array or on "
                        "several machines sharing --out; 'auto': torchrun's RANK/WORLD_SIZE or the SLURM array's "
                        "task numbers (under torchrun this is the default); then `mednet report OUT`")  # fmt: skip
    parser.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                        help="run the shards as Ray tasks on the CPUs and GPUs of a Ray cluster (ADDRESS, or 'auto' "
                        "for the one this machine belongs to; none: a local Ray instance for the run); inputs and "
                        "--out on a file system every node mounts (needs the ray extra)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None,
                        help="with --ray: shards at once (default: one per GPU, else as many as the CPUs hold)")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0,
                        help="with --ray: CPUs (torch threads) per worker (default 1)")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="no progress: only failed cases and errors")
    loud.add_argument("-v", "--verbose", action="store_true", help="a line per case with its timings, bar or not")
    parser.add_argument("--progress", action="store_true",
                        help="a progress bar with the ETA on stderr even when it is not a terminal "
                        "(on a terminal it is the default)")  # fmt: skip
    parser.add_argument("--json", action="store_true",
                        help="print a JSON summary of the run on stdout (counts, paths, each case's status) "
                        "and nothing else there")  # fmt: skip
    parser.set_defaults(run=run_predict)

    parser = sub.add_parser("report", help="summary, report and metrics of a predict output folder, from its cases",
                            description="Write OUT/summary.csv, OUT/report.html and (when every case is done) "
                            "OUT/metrics.json from the case folders of a `mednet predict` output, whichever "
                            "process or shard wrote them. Exit code 1 when cases failed or are not done.")  # fmt: skip
    parser.add_argument("out", help="the predict output folder")
    parser.add_argument("--bundles", default=None, help="folder of the bundles (default: the run's)")
    parser.add_argument("--json", action="store_true", help="print the counts and paths as JSON on stdout")
    parser.set_defaults(run=run_report)

    parser = sub.add_parser("evaluate", help="metrics of a predict output folder against a datalist",
                            description="Patient-level metrics (95%% CI) of `mednet predict` outputs.")  # fmt: skip
    parser.add_argument("--pred", required=True, help="the predict output folder")
    parser.add_argument("--datalist", required=True, help="datalist with the true classes and label maps")
    parser.add_argument("--bundles", default=None)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.set_defaults(run=run_evaluate)


def run_predict(args: argparse.Namespace) -> int:
    """Run the cohort; print where the results are; 1 when any case failed, 2 when refused, 130 when interrupted."""
    import contextlib

    from mednet.errors import MednetError
    from mednet.pipeline.summary import parse_shard

    verbosity = 0 if args.quiet else 2 if args.verbose else 1
    say = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    # --json: stdout carries the JSON only; whatever else would print there goes to stderr
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        try:
            from mednet.inference.device import choose_device, choose_precision
            from mednet.pipeline import predict_cohort

            # before anything else: an absent GPU (or float16 on the CPU) is said once, not case by case
            choose_precision(choose_device(args.device), args.precision)
            shard = parse_shard(args.shard)
            models = settings = None
            if args.models:
                from mednet.training import run_models, run_settings

                models, settings = run_models(args.models, args.disease), run_settings(args.models, args.disease)
            common = {"device": args.device, "precision": args.precision, "bundles": args.bundles, "models": models,
                      "settings": settings, "clinicians": args.clinicians, "partition": args.partition,
                      "overwrite": args.overwrite, "verbosity": verbosity}  # fmt: skip
            if args.ray is not None:
                from mednet.pipeline.cluster import predict_ray

                if shard != (1, 1):
                    raise ValueError("--ray makes its own shards: drop --shard (or run without --ray)")
                address = None if args.ray == "local" else args.ray
                result = predict_ray(args.input, args.disease, args.out, address=address, workers=args.workers,
                                     cpus_per_worker=args.cpus_per_worker, progress=say, **common)  # fmt: skip
            else:
                result = predict_cohort(args.input, args.disease, args.out, shard=shard,
                                        bar=True if args.progress else None, **common)  # fmt: skip
        except (FileNotFoundError, ValueError, MednetError) as error:
            print(f"mednet predict: error: {error}", file=sys.stderr)
            code, result = 2, {"error": str(error)}
        except KeyboardInterrupt:  # outside the cohort loop (which summarises the cases done itself)
            message = (f"interrupted before the summary was written; the complete cases are kept in {args.out}, "
                       "and the same command again finishes the rest")  # fmt: skip
            print(f"mednet predict: {message}", file=sys.stderr)
            code, result = 130, {"error": message}
        else:
            code = 130 if result["interrupted"] else 1 if result["failed"] else 0
            _say_result(result, args, shard, say)
    if args.json:
        print(json.dumps(_json_result(result, args, code), indent=2, default=str), flush=True)
    return code


def _say_result(result: dict, args: argparse.Namespace, shard: tuple[int, int], say) -> None:
    """The run's closing lines, on stderr (stdout is left to --json)."""
    if result["interrupted"]:
        print(f"mednet predict: {result['interrupted']}; summary {result['summary']}, report {result['report']}",
              file=sys.stderr)  # fmt: skip
        return
    share = f" of shard {shard[0]}/{shard[1]}" if shard[1] > 1 else ""
    kept = f"; the summary also keeps {result['kept']} earlier cases" if result.get("kept") else ""
    line = (f"{result['ok']} of {result['cases']} cases{share} done ({result['skipped']} already complete), "
            f"{result['failed']} failed{kept}; summary {result['summary']}, report {result['report']}"
            + (f", metrics {result['metrics']}" if result["metrics"] else "") + f"; log: {result['log']}")  # fmt: skip
    if result["pending"]:
        line += (f"\n{result['pending']} cases of the cohort are not done yet (other shards); then `mednet "
                 f"report {args.out}` writes the complete summary (as the last shard to finish does)")  # fmt: skip
    if args.json:  # stdout is the JSON's
        say(line)
    elif not args.quiet or result["failed"]:
        print(line)


def _json_result(result: dict, args: argparse.Namespace, code: int) -> dict:
    """``--json``: the run as one JSON object (counts, paths, each case's status)."""
    doc = {"command": "predict", "exit_code": code, "disease": args.disease, "input": args.input, "out": args.out}
    if "error" in result:
        return {**doc, "error": result["error"]}
    counts = {k: result[k] for k in ("cases", "ok", "failed", "skipped", "pending", "kept")}
    paths = {k: (str(result[k]) if result[k] else None) for k in ("summary", "report", "metrics", "log")}
    return {**doc, "partition": result["partition"], "device": result["device"], "precision": result.get("precision"),
            "interrupted": result["interrupted"],
            "counts": counts, "paths": paths, "cases": result["case_status"]}  # fmt: skip


def run_report(args: argparse.Namespace) -> int:
    """Rebuild OUT's summary, report and metrics; 1 when cases failed or are pending."""
    from mednet.pipeline.summary import report_cohort

    try:
        result = report_cohort(args.out, bundles=args.bundles)
    except (FileNotFoundError, ValueError) as error:
        print(f"mednet report: error: {error}", file=sys.stderr)
        return 2
    code = 1 if result["failed"] or result["pending"] else 0
    if args.json:
        print(json.dumps({"command": "report", "exit_code": code, **result}, indent=2, default=str))
        return code
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
