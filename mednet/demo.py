"""The end-to-end demo: what ``mednet demo`` runs.

For each disease (glioma, CPA, neuroblastoma) the demo

1. generates a synthetic cohort (``demo``-size phantoms, classes in equal numbers so that
   every class reaches the test partition) with its patient-level split;
2. trains the disease's localisation and grading bundles briefly, for a fixed number of
   epochs (:data:`PLANS`; never a wall-clock budget, so the same command gives the same
   weights on a slow or busy machine), and installs the weights in each bundle's
   ``models/``, where ``mednet predict`` looks for them; a bundle that already has weights
   is reused (``retrain=True`` trains again);
3. runs the pipeline (:func:`mednet.pipeline.predict_cohort`) on the held-out test
   patients: label maps, lesion tables, per-sequence and fused diagnoses, overviews,
   ``summary.csv``, ``report.html`` and ``metrics.json``;

then prints one table of the patient-level test metrics with 95% confidence intervals.
A second run reuses the cohorts, the weights and the complete cases (cases are
predicted again when the weights are newer than the predictions).

Layout of ``out``::

    <disease>/data/            the synthetic cohort (manifest.csv, datalist.json, images)
    <disease>/training/<bundle>.log the training log (one line per epoch with the loss and the ETA)
    <disease>/training/<bundle>/ TensorBoard curves of the training run
    <disease>/predictions/     mednet predict's output (report.html, summary.csv, metrics.json)
    demo.json                  what ran, how long each step took, the metrics
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PLANS", "DemoPlan", "format_table", "run_demo"]


@dataclass(frozen=True)
class DemoPlan:
    """How much data and training the demo gives one disease.

    Attributes:
        cases: synthetic patients (split 70 / 15 / 15 by patient).
        localisation_epochs: training epochs of the segmentation bundle.
        grading_epochs: training epochs of the classification bundle.
        localisation: extra config entries for the segmentation bundle's training.
        grading: extra config entries for the classification bundle's training.
        size: the phantoms' size (``mednet.synthetic``): ``demo`` is 128 voxels in plane,
            ``small`` (48, for tests) leaves lesions too few voxels to grade well.
    """

    cases: int
    localisation_epochs: int
    grading_epochs: int
    localisation: Mapping | None = None
    grading: Mapping | None = None
    size: str = "demo"


#: Per disease: cohort size and training epochs, about 11 minutes of training on 2 idle CPU
#: cores in all (localisation about 85 s, 100 s and 5.5 min; grading about 50 s each), as long
#: as the wall-clock budgets these epochs replace. A loaded machine takes longer, to the same weights.
PLANS: dict[str, DemoPlan] = {
    "glioma": DemoPlan(48, 6, 8, {"val_interval": 2}),
    "cpa": DemoPlan(48, 12, 12, {"val_interval": 2}),
    "neuroblastoma": DemoPlan(60, 12, 9, {"val_interval": 4}),
}


def _cohort(disease: str, n_cases: int, size: str, root: Path, seed: int, echo: Callable[[str], None]) -> Path:
    """The disease's demo cohort under ``root`` (generated unless an identical one is there); its datalist."""
    from mednet.synthetic import generate_cohort
    from mednet.synthetic.cohort import DISEASES as MODELS

    datalist, stamp = root / "datalist.json", root / ".demo.json"
    wanted = {"disease": disease, "cases": n_cases, "seed": seed, "size": size}
    if datalist.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        echo(f"  cohort: reusing {n_cases} synthetic patients in {root}")
        return datalist
    start = time.perf_counter()
    classes = MODELS[disease].CLASSES
    generate_cohort(disease, n_cases, root, size=size, seed=seed, balance=dict.fromkeys(classes, 1.0),
                    workers=os.cpu_count() or 1)  # fmt: skip
    stamp.write_text(json.dumps(wanted))
    echo(f"  cohort: {n_cases} synthetic patients ({', '.join(classes)} in equal numbers) in {root} "
         f"({time.perf_counter() - start:.0f} s)")  # fmt: skip
    return datalist


def _train(bundle: str, datalist: Path, work: Path, epochs: int, settings: Mapping | None, *,
           root, seed: int, retrain: bool, echo: Callable[[str], None]) -> dict:  # fmt: skip
    """Train ``bundle`` unless it has weights; install them; what happened."""
    from mednet.bundles import bundle_path, console_to, install_weights, train_bundle

    weights = bundle_path(bundle, root) / "models" / "model.pt"
    if weights.is_file() and not retrain:
        echo(f"  {bundle}: reusing the weights in {weights} (retrain with --retrain)")
        return {"trained": False, "weights": str(weights)}
    log = work.with_suffix(".log")
    echo(f"  {bundle}: training {epochs} epochs (progress and ETA in {log}, TensorBoard curves in {work})")
    log.unlink(missing_ok=True)
    with console_to(log):
        seconds = train_bundle(bundle, datalist, work, epochs=epochs, root=root, seed=seed,
                               **dict(settings or {}))  # fmt: skip
    install_weights(work / "models", bundle, root)
    echo(f"  {bundle}: trained {epochs} epochs in {seconds:.0f} s; weights installed in {weights}")
    return {"trained": True, "weights": str(weights), "epochs": epochs, "train_seconds": round(seconds, 1)}


def _stale(predictions: Path, weights: Sequence[str]) -> bool:
    """True when the predictions are older than any of the weights (so they must be redone)."""
    summary = predictions / "summary.csv"
    return summary.is_file() and any(Path(w).stat().st_mtime > summary.stat().st_mtime for w in weights)


def _cell(figure: Mapping | None, digits: int = 2) -> str:
    if not figure or figure.get("value") is None:
        return "-"
    text = f"{figure['value']:.{digits}f}"
    if figure.get("ci_low") is not None and figure.get("ci_high") is not None:
        text += f" [{figure['ci_low']:.{digits}f}, {figure['ci_high']:.{digits}f}]"
    return text


def format_table(results: Mapping[str, Mapping]) -> str:
    """The demo's metrics as a plain-text table (value [95% CI]), one row per disease.

    Args:
        results: disease -> ``{"cases", "failed", "headline"}`` with ``headline`` as in
            ``metrics.json`` (``{"localisation": {...}, "grading": {...}}``).
    """
    header = ["disease", "test cases", "lesion Dice", "lesion sensitivity", "FP / scan", "fused grading",
              "fused accuracy"]  # fmt: skip
    rows = [header]
    for disease, result in results.items():
        loc = result["headline"].get("localisation", {})
        grading = result["headline"].get("grading", {})
        fused = next(((k, v) for k, v in grading.items() if k.startswith("fused ") and "accuracy" not in k), None)
        rows.append([
            disease,
            f"{result['cases'] - result['failed']} of {result['cases']}",
            _cell(loc.get("lesion Dice")),
            _cell(loc.get("lesion sensitivity")),
            _cell(loc.get("false positives per scan"), 1),
            f"{fused[0].removeprefix('fused ')} {_cell(fused[1])}" if fused else "-",
            _cell(grading.get("fused decision accuracy")),
        ])  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_demo(
    out: os.PathLike | str,
    *,
    diseases: Sequence[str] = tuple(PLANS),
    plans: Mapping[str, DemoPlan] | None = None,
    bundles: os.PathLike | str | None = None,
    seed: int = 0,
    device: str | None = None,
    retrain: bool = False,
    echo: Callable[[str], None] | None = None,
) -> dict:
    """Run the demo into ``out``; what ran and the test metrics (also in ``out/demo.json``).

    Args:
        out: the demo's folder (created; an earlier demo's folder is reused).
        diseases: which diseases, in order.
        plans: disease -> :class:`DemoPlan` (default :data:`PLANS`).
        bundles: folder of the bundles to train and use (default: mednet's own).
        seed: seed of the cohorts and the training.
        device: ``cpu`` or ``cuda`` for prediction (default: ``cuda`` when available).
        retrain: train every bundle even when it has weights.
        echo: where progress lines go (default: printed to the ``sys.stdout`` of the call).

    Returns:
        ``{"diseases": {disease: {"cohort", "training", "predictions", "report", "cases",
        "failed", "headline", "seconds"}}, "seconds"}``.

    Raises:
        ValueError: an unknown disease.
    """
    from mednet.options import choose
    from mednet.pipeline import predict_cohort
    from mednet.pipeline.diseases import DISEASES

    diseases = [choose(d, DISEASES, "disease") for d in diseases]
    if echo is None:
        stream = sys.stdout  # the bundles' own output is sent to log files meanwhile

        def echo(line: str) -> None:
            print(line, file=stream, flush=True)

    plans = {**PLANS, **(plans or {})}
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start, summary = time.perf_counter(), {"diseases": {}}
    for step, disease in enumerate(diseases, start=1):
        began, plan = time.perf_counter(), plans[disease]
        echo(f"[{step}/{len(diseases)}] {disease}")
        datalist = _cohort(disease, plan.cases, plan.size, out / disease / "data", seed, echo)
        localisation, grading = DISEASES[disease]
        training = {}
        for bundle, epochs, settings in ((localisation, plan.localisation_epochs, plan.localisation),
                                         (grading, plan.grading_epochs, plan.grading)):  # fmt: skip
            work = out / disease / "training" / bundle
            training[bundle] = _train(bundle, datalist, work, epochs, settings, root=bundles, seed=seed,
                                      retrain=retrain, echo=echo)  # fmt: skip
        predictions = out / disease / "predictions"
        redo = _stale(predictions, [t["weights"] for t in training.values()])
        echo(f"  predicting the test patients into {predictions}" + (" (weights changed: all again)" if redo else ""))
        result = predict_cohort(datalist, disease, predictions, device=device, bundles=bundles, overwrite=redo,
                                progress=lambda line: echo(f"    {line}"))  # fmt: skip
        metrics = json.loads(result["metrics"].read_text()) if result["metrics"] else {"headline": {}}
        summary["diseases"][disease] = {
            "cohort": str(datalist.parent), "training": training, "predictions": str(predictions),
            "report": str(result["report"]), "cases": result["cases"], "failed": result["failed"],
            "headline": metrics["headline"], "seconds": round(time.perf_counter() - began, 1),
        }  # fmt: skip
    summary["seconds"] = round(time.perf_counter() - start, 1)
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    echo("")
    echo("Patient-level test metrics, value [95% bootstrap CI] (synthetic phantoms, a few minutes of CPU training):")
    echo(format_table(summary["diseases"]))
    echo("")
    for disease, result in summary["diseases"].items():
        echo(f"{disease}: report {result['report']}")
        echo(f"  per case (label map, lesion table, <case>.json, overview PNG): {result['predictions']}/<case>/")
    echo(f"demo finished in {summary['seconds'] / 60:.1f} min; record in {out / 'demo.json'}")
    return summary
