"""The end-to-end demo: what ``mednet demo`` runs.

For each disease (glioma, CPA, neuroblastoma) the demo

1. generates a synthetic test cohort (``demo``-size phantoms, classes in equal numbers,
   seeded; patients the reference weights never saw: their cohorts had other seeds);
2. takes the disease's shipped reference weights (each bundle's ``models/model.pt``,
   trained on synthetic data only, see the model cards), or with ``retrain=True`` trains
   them again from scratch with the same deterministic recipe
   (:func:`mednet.training.reference.train_reference`, into ``out/training/``; hours on
   CPU, see :data:`mednet.training.reference.RECIPES`);
3. runs the pipeline (:func:`mednet.pipeline.predict_cohort`) on every test patient: label
   maps, lesion tables, per-sequence and fused diagnoses, overviews, ``summary.csv``,
   ``report.html`` and ``metrics.json``;

then prints one table of the patient-level metrics with 95% confidence intervals. On the
CPU the same command gives the same figures, however slow or busy the machine (a GPU's
mixed precision may move a figure in its last digits); a second run reuses the cohorts and
the complete cases (predicted again when other weights made them).

Layout of ``out``::

    <disease>/data/            the synthetic test cohort (manifest.csv, datalist.json, images)
    <disease>/predictions/     mednet predict's output (report.html, summary.csv, metrics.json)
    training/<disease>/        with retrain: the recipe's cohorts, logs, weights, record.json
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

from mednet.io.atomic import write_json_atomic
from mednet.metrics.bootstrap import format_ci

__all__ = ["PLANS", "DemoPlan", "format_table", "run_demo"]


@dataclass(frozen=True)
class DemoPlan:
    """The demo's test cohort for one disease.

    Attributes:
        cases: synthetic test patients (classes in equal numbers).
        size: the phantoms' size (``mednet.synthetic``): ``demo`` is 128 voxels in plane.
    """

    cases: int
    size: str = "demo"


#: Per disease: the test cohort (about 3.5 minutes on 2 CPU cores for the three).
PLANS: dict[str, DemoPlan] = {
    "glioma": DemoPlan(12),
    "cpa": DemoPlan(12),
    "neuroblastoma": DemoPlan(12),
}


def _cohort(disease: str, plan: DemoPlan, root: Path, seed: int, echo: Callable[[str], None]) -> Path:
    """The disease's test cohort under ``root`` (generated unless an identical one is there); its datalist."""
    from mednet.synthetic import generate_cohort
    from mednet.synthetic.cohort import DISEASES as MODELS

    datalist, stamp = root / "datalist.json", root / ".demo.json"
    wanted = {"disease": disease, "cases": plan.cases, "seed": seed, "size": plan.size}
    if datalist.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        echo(f"  cohort: reusing {plan.cases} synthetic test patients in {root}")
        return datalist
    start = time.perf_counter()
    classes = MODELS[disease].CLASSES
    generate_cohort(disease, plan.cases, root, size=plan.size, seed=seed, balance=dict.fromkeys(classes, 1.0),
                    workers=os.cpu_count() or 1)  # fmt: skip
    write_json_atomic(stamp, wanted)
    echo(f"  cohort: {plan.cases} synthetic test patients ({', '.join(classes)} in equal numbers) in {root} "
         f"({time.perf_counter() - start:.0f} s)")  # fmt: skip
    return datalist


def _weights(disease: str, out: Path, bundles, retrain: bool, recipes, echo: Callable[[str], None]) -> dict:
    """Bundle name -> the checkpoint to predict with: the shipped one, or the recipe's retrained one."""
    from mednet.bundles import BundleSpec, bundle_path
    from mednet.pipeline.diseases import DISEASES
    from mednet.report.provenance import training_source
    from mednet.training.reference import reference_models, train_reference

    if retrain:
        echo(f"  training the reference recipe from scratch into {out / 'training' / disease} (resumable)")
        train_reference(disease, out / "training", echo=lambda line: echo(f"    {line}"), recipes=recipes)
        return {name: str(path) for name, path in reference_models(out / "training", disease, recipes).items()}
    weights = {}
    for name in DISEASES[disease]:
        spec = BundleSpec.load(bundle_path(name, bundles))
        if not spec.weights.is_file():
            raise FileNotFoundError(f"{spec.weights}: bundle {name} ships no weights here (a clone without "
                                    "a release's weights?); `mednet demo --retrain` trains them with the reference "
                                    "recipe into the demo's folder (hours on CPU)")  # fmt: skip
        origin = f"reference weights: {training_source(spec.reference)}" if spec.reference else "weights"
        echo(f"  {name} {spec.version}: {origin}, {spec.weights}")
        weights[name] = str(spec.weights)
    return weights


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
            format_ci(loc.get("lesion Dice")),
            format_ci(loc.get("lesion sensitivity")),
            format_ci(loc.get("false positives per scan"), 1),
            f"{fused[0].removeprefix('fused ')} {format_ci(fused[1])}" if fused else "-",
            format_ci(grading.get("fused decision accuracy")),
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
    device: str = "auto",
    retrain: bool = False,
    recipes: Mapping[str, Mapping[str, dict]] | None = None,
    echo: Callable[[str], None] | None = None,
) -> dict:
    """Run the demo into ``out``; what ran and the test metrics (also in ``out/demo.json``).

    Args:
        out: the demo's folder (created; an earlier demo's folder is reused).
        diseases: which diseases, in order.
        plans: disease -> :class:`DemoPlan` (default :data:`PLANS`).
        bundles: folder of the bundles (default: mednet's own, with the shipped weights).
        seed: seed of the test cohorts.
        device: ``auto``, ``cpu`` or ``cuda`` for prediction.
        retrain: train the weights again with the reference recipe instead of using the shipped ones.
        recipes: with ``retrain``: recipes instead of :data:`mednet.training.reference.RECIPES`.
        echo: where progress lines go (default: printed to the ``sys.stdout`` of the call).

    Returns:
        ``{"diseases": {disease: {"cohort", "weights", "predictions", "report", "cases",
        "failed", "headline", "seconds"}}, "seconds"}``.

    Raises:
        ValueError: an unknown disease.
        FileNotFoundError: a bundle without shipped weights (and no ``retrain``).
    """
    from mednet.options import choose
    from mednet.pipeline import predict_cohort
    from mednet.pipeline.diseases import DISEASES

    diseases = [choose(d, DISEASES, "disease") for d in diseases]
    if echo is None:
        stream = sys.stdout  # the libraries' own output is sent to log files meanwhile

        def echo(line: str) -> None:
            print(line, file=stream, flush=True)

    plans = {**PLANS, **(plans or {})}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start, summary = time.perf_counter(), {"diseases": {}}
    for step, disease in enumerate(diseases, start=1):
        began = time.perf_counter()
        echo(f"[{step}/{len(diseases)}] {disease}")
        weights = _weights(disease, out, bundles, retrain, recipes, echo)  # no weights: said before any work
        datalist = _cohort(disease, plans[disease], out / disease / "data", seed, echo)
        predictions = out / disease / "predictions"
        echo(f"  predicting the test patients into {predictions}")
        result = predict_cohort(datalist, disease, predictions, device=device, bundles=bundles, models=weights,
                                partition="all", progress=lambda line: echo(f"    {line}"))  # fmt: skip
        metrics = json.loads(result["metrics"].read_text()) if result["metrics"] else {"headline": {}}
        summary["diseases"][disease] = {
            "cohort": str(datalist.parent), "weights": weights, "predictions": str(predictions),
            "report": str(result["report"]), "cases": result["cases"], "failed": result["failed"],
            "headline": metrics["headline"], "seconds": round(time.perf_counter() - began, 1),
        }  # fmt: skip
    summary["seconds"] = round(time.perf_counter() - start, 1)
    write_json_atomic(out / "demo.json", summary, indent=2)
    echo("")
    echo("Patient-level test metrics, value [95% bootstrap CI] (synthetic phantoms; models trained on synthetic data):")
    echo(format_table(summary["diseases"]))
    echo("")
    for disease, result in summary["diseases"].items():
        echo(f"{disease}: report {result['report']}")
        echo(f"  per case (label map, lesion table, <case>.json, overview PNG): {result['predictions']}/<case>/")
    echo(f"demo finished in {summary['seconds'] / 60:.1f} min; record in {out / 'demo.json'}")
    return summary
