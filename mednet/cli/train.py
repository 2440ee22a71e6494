"""``mednet train``: train a disease's localisation and grading bundles on your own cases, resumably."""

from __future__ import annotations

import argparse

from mednet.pipeline.diseases import DISEASES


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    parser = sub.add_parser(
        "train",
        help="train a disease's localisation and grading bundles on your cases (one patient-level split; resumable)",
        description="Split the cases by patient once (seeded; RUN/datalist.json), then train the localisation bundle "
        "and the grading bundle (on the ground-truth lesion maps) on the same training and validation patients, for "
        "a fixed number of epochs with a seed: the same command gives the same weights. The testing patients score "
        "both stages. A stage already trained with the same settings and data is skipped, so running the command "
        "again resumes it. Weights, logs, TensorBoard curves (RUN/<stage>/train_log) and the record "
        "(RUN/training.json) go to RUN; `mednet predict --models RUN` predicts with them.",
    )
    parser.add_argument("--disease", required=True, choices=sorted(DISEASES), help="which disease's bundles")
    parser.add_argument("--input", required=True, metavar="DIR|CSV|JSON",
                        help="a folder of cases (BraTS names, <case>_<sequence> files; a class from HGG / LGG "
                        "folders above a case), a CSV manifest, or a datalist JSON (its split kept)")  # fmt: skip
    parser.add_argument("-o", "--out", required=True, metavar="RUN", help="the run's folder (a run there is resumed)")
    parser.add_argument("--grades", metavar="CSV", help="the cases' classes: a CSV with case_id,class columns")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of each stage (default: the reference recipe's, e.g. 20)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of the training (default 0)")
    parser.add_argument("--ratios", type=float, nargs=3, default=None, metavar=("TRAIN", "VAL", "TEST"),
                        help="patient proportions of the split (default 0.7 0.15 0.15)")  # fmt: skip
    parser.add_argument("--resplit", action="store_true",
                        help="split a datalist's or manifest's cases again (--seed, --ratios) instead of keeping "
                        "the split it gives")  # fmt: skip
    parser.add_argument("--no-test", action="store_true", help="do not score the testing patients")
    parser.add_argument("--set", action="append", default=[], metavar="STAGE.KEY=VALUE",
                        help="a bundle config entry for one stage (repeatable; VALUE is JSON), e.g. "
                        "localisation.num_workers=0 or grading.batch_size=8; part of the settings a resumed run "
                        "compares")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train both stages; print where everything went."""
    import sys

    from mednet.training.train import parse_setting, train_run

    overrides: dict[str, dict] = {}
    for text in args.set:
        stage, key, value = parse_setting(text)
        overrides.setdefault(stage, {})[key] = value
    stream = sys.stdout  # the bundles' own output goes to the stages' logs meanwhile

    def echo(line: str) -> None:
        print(line, file=stream, flush=True)

    record = train_run(args.disease, args.input, args.out, grades=args.grades, epochs=args.epochs, seed=args.seed,
                       ratios=args.ratios, resplit=args.resplit, test=not args.no_test, overrides=overrides,
                       progress=None if args.no_progress else sys.stderr, echo=echo,
                       command=_command())  # fmt: skip
    for stage, entry in record["stages"].items():
        figures = entry.get("test_metrics")
        if figures:
            echo(f"{stage} test figures: {_headline(figures)}")
    echo(f"finished in {record['seconds']:.0f} s")
    return 0


def _command() -> str | None:
    """The command line when this process is the ``mednet`` command (not a caller of ``main``)."""
    import shlex
    import sys
    from pathlib import Path

    name = Path(sys.argv[0]).name if sys.argv else ""
    return shlex.join(["mednet", *sys.argv[1:]]) if name in ("mednet", "__main__.py") else None


def _headline(figures: dict) -> str:
    """A stage's headline figures on one line (value [95% CI])."""
    from mednet.metrics.bootstrap import format_ci

    parts = []
    for name, value in figures.items():
        if isinstance(value, dict) and "value" in value:
            parts.append(f"{name} {format_ci(value)}")
        elif isinstance(value, int | float):
            parts.append(f"{name} {value:.3g}")
    return "; ".join(parts[:8]) or "(none)"
