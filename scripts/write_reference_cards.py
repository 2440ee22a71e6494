"""Write each bundle's "Reference weights" model-card section and bump its version, for a release.

    python scripts/write_reference_cards.py --version 0.3.0 --changelog "reference weights ..."
    python scripts/write_reference_cards.py --version 0.4.0 --disease neuroblastoma --changelog "..."
    python scripts/write_reference_cards.py --version 0.6.0 --bundle neuroblastoma_mri_classification --changelog "..."

Reads, per bundle, ``models/reference.json`` (written by ``scripts/train_reference.py
--install``: data, recipe, time, machine, test figures with float32 and float16 weights),
and, when present, ``docs/benchmarks/reference_<disease>.json`` (``scripts/evaluate_reference.py``:
held-out synthetic test patients through ``mednet predict``) and
``docs/benchmarks/realdata.json`` (``scripts/benchmark_realdata.py``: the real scans, as
anecdotes). Writes the section between ``<!-- reference -->`` and ``<!-- /reference -->`` in
``docs/README.md`` (inserted before "## Commands" the first time) and sets ``version`` and
a changelog entry in ``configs/metadata.json``. The figures must come from the weights
being released: each JSON names the weights it measured (SHA-256), and a card is not
written from figures of other weights (run the benchmark again after ``--install``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mednet.bundles import BUNDLES_DIR, list_bundles
from mednet.checksum import file_sha256
from mednet.training.reference import portable_overrides

BENCHMARKS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
START, END = "<!-- reference -->", "<!-- /reference -->"


def _ci(figure: dict | None, digits: int = 3) -> str:
    if not figure or figure.get("value") is None:
        return "-"
    text = f"{figure['value']:.{digits}f}"
    if figure.get("ci_low") is not None:
        text += f" ({figure['ci_low']:.{digits}f} to {figure['ci_high']:.{digits}f})"
    return text


def _segmentation_rows(summary: dict) -> list[str]:
    rows = []
    for key, value in summary.items():
        if key.startswith("dice_") and isinstance(value, dict):
            rows.append(f"| Dice {key.removeprefix('dice_').replace('_', ' ')} | {_ci(value)} |")
    if "mean_organ_dice" in summary:
        rows.append(f"| mean organ Dice | {_ci(summary['mean_organ_dice'])} |")
    detection = summary.get("detection", {})
    if detection:
        rows.append(f"| lesion sensitivity | {_ci(detection.get('sensitivity'))} |")
        rows.append(f"| false positives per scan | {_ci(detection.get('false_positives_per_scan'), 2)} |")
    return rows


def _grading_rows(metrics: dict) -> list[str]:
    rows = []
    for name, summary in metrics.get("patient_level", {}).items():
        key = "auc" if "auc" in summary else "macro_f1"
        rows.append(f"| {name}: {key.replace('_', ' ')} (patient level) | {_ci(summary.get(key))} |")
    if "fused_decision" in metrics:
        rows.append(f"| fused decision accuracy | {_ci(metrics['fused_decision'].get('accuracy'))} |")
    calls = metrics.get("calls")
    if calls:
        rows.append(f"| calls left indeterminate | {calls['indeterminate']} of "
                    f"{calls['indeterminate'] + calls['determinate']} |")  # fmt: skip
        rows.append(f"| accuracy of the other calls | {_ci(calls.get('accuracy'))} |")
    return rows


def _calibration_cases(confidence: dict) -> str:
    """Which cases ``min_confidence`` was fitted on: the training cohort's validation partition, or another cohort."""
    n = confidence["graded_cases"]
    if confidence.get("partition", "validation") == "validation":
        return f"the {n} validation patients of the training cohort"
    seeds = confidence.get("cohort_seeds") or []
    if not seeds:
        return f"{n} patients of another cohort"
    return f"{n} held-out validation phantoms (seed {', '.join(map(str, seeds))}, never trained on)"


def _confidence_lines(confidence: dict) -> list[str]:
    """The grading's ``min_confidence`` and how it was fitted (``scripts/calibrate_confidence.py``'s JSON)."""
    fit, now = confidence["fitted"], confidence["config_now"]
    before = f"the former {now['min_confidence']} called {now['called']} ({now['accuracy_of_calls']:.2f} right)"
    if now["min_confidence"] == fit["min_confidence"]:
        before = "it is the bundle's threshold"
    return ["", f"Confidence: a call is indeterminate below a fused probability of {fit['min_confidence']} "
            f"(`min_confidence`), fitted by `scripts/calibrate_confidence.py` on the pipeline's own predictions "
            f"(the localiser's lesion maps, then grading and fusion) for {_calibration_cases(confidence)}: "
            f"the least threshold whose calls are right at least "
            f"{fit['target']:g} of the time. It calls {fit['called']} of them ({fit['accuracy_of_calls']:.2f} right); "
            f"{before}."]


def _preset(data: dict) -> str:
    """The cohort's preset, with the anatomy flags it had on (recorded since cohort.json holds every setting)."""
    if data.get("randomise") is None:
        return "none (default phantoms)"
    flags = [name for name, value in (data.get("randomisation") or {}).items() if value is True]
    return f"`{data['randomise']}`" + (f" ({', '.join(flags)} on)" if flags else "")


def _cohort(data: dict) -> str:
    """A training cohort in words: its phantoms, generator, seed, size, preset, optional sequences, classes.

    A cohort merged from parts (``mednet.training.reference.merge_cohorts``) lists each part.
    """
    if "parts" in data:
        return " + ".join(_cohort(part) for part in data["parts"]) + ", merged by partition"
    optional = f", with the optional {', '.join(data['optional'])}" if data.get("optional") else ""
    classes = ", ".join(f"{k} {v:g}" for k, v in data["balance"].items())
    return (f"{data['cases']} synthetic `{data['disease']}` phantoms from `{data['generator']}` "
            f"(mednet {data['mednet_version']}), seed {data['seed']}, size `{data['size']}`, domain randomisation "
            f"{_preset(data)}{optional}, classes {classes}")  # fmt: skip


def _disease(data: dict) -> str:
    return data["parts"][0]["disease"] if "parts" in data else data["disease"]


def _presets(data: dict) -> str:
    """The cohort's presets in words (``default``: no domain randomisation)."""
    return " and ".join(dict.fromkeys(p["randomise"] or "default" for p in data.get("parts", [data])))


def _base_rows(base: dict | None) -> list[str]:
    """The recipe's base (the weights the training started from), its own base first."""
    if not base:
        return []
    return [*_base_rows(base.get("base")),
            f"| starts from | the weights of its base recipe: {base['epochs']} epochs, seed {base['seed']}, overrides "
            f"`{json.dumps(portable_overrides(base['overrides']))}`, on {_cohort(base['data'])}; split by patient "
            f"70 / 15 / 15; {base['train_seconds'] / 60:.0f} min |"]  # fmt: skip


def section(bundle: str, record: dict, held_out: dict | None, realdata: dict | None,
            confidence: dict | None = None) -> str:  # fmt: skip
    """The model card's "Reference weights" section (Markdown)."""
    data, machine = record["data"], record["machine"]
    task = "segmentation" if "segmentation" in bundle else "classification"
    lines = [
        "## Reference weights (shipped)",
        "",
        "`models/model.pt` holds mednet's reference weights: **trained on synthetic data only** "
        "(no patient data), so that the bundle works the minute mednet is installed. They are a "
        "starting point and a baseline, not a validated clinical model.",
        "",
        "| | |",
        "|---|---|",
        f"| data | {_cohort(data)}; split by patient 70 / 15 / 15 |",
        *_base_rows(record.get("base")),
        f"| training | {record['epochs']} epochs, seed {record['seed']}, overrides "
        f"`{json.dumps(portable_overrides(record['overrides']))}`; {record['train_seconds'] / 60:.0f} min on "
        f"{machine['cpu_cores']} CPU "
        f"cores ({machine['platform']}, torch {machine['torch']}, {machine['torch_threads']} threads, "
        f"{'GPU ' + machine['cuda'] if machine['cuda'] else 'no GPU'}) |",
        f"| weights | float16, {record['weights_mb']['float16']} MB (float32: {record['weights_mb']['float32']} MB); "
        "the network loads them into float32 |",
        f"| reproduce | `python scripts/train_reference.py --disease {_disease(data)}` in a clone (resumable; "
        f"`mednet demo --retrain` runs the same recipe) |",
        "",
        f"Test partition of the training cohort ({_presets(data)} phantoms), patient level, "
        "95% bootstrap intervals; float32 and the shipped float16 weights:",
        "",
        "| figure | float32 | float16 (shipped) |",
        "|---|---|---|",
    ]
    if task == "segmentation":
        fp32, fp16 = (record.get(k, {}).get("summary", {}) for k in ("test_metrics", "test_metrics_fp16"))
        for row32, row16 in zip(_segmentation_rows(fp32), _segmentation_rows(fp16), strict=False):
            name, value = row32.strip("|").split("|")[:2]
            lines.append(f"|{name}|{value}| {row16.strip('|').split('|')[1].strip()} |")
    else:
        fp32, fp16 = record.get("test_metrics", {}), record.get("test_metrics_fp16", {})
        for row32, row16 in zip(_grading_rows(fp32), _grading_rows(fp16), strict=False):
            name, value = row32.strip("|").split("|")[:2]
            lines.append(f"|{name}|{value}| {row16.strip('|').split('|')[1].strip()} |")
    if held_out:
        test = held_out["test"]
        lines += ["", f"Held-out synthetic test patients through `mednet predict` (both bundles of the disease; "
                  f"{test['cases']} patients, default phantoms, classes in equal numbers, seed {held_out['seed']}; "
                  f"{held_out['seconds_per_case']:.1f} s per case on this machine):", "",
                  "| figure | value (95% CI) |", "|---|---|"]  # fmt: skip
        lines += _segmentation_rows(test.get("localisation", {})) if task == "segmentation" else _grading_rows(
            test.get("grading", {}))  # fmt: skip
        if task == "classification" and held_out.get("metastases"):
            met = held_out["metastases"]
            lines += ["", f"Brain metastases given to the glioma pipeline ({met['cases']} synthetic cases; the "
                      f"grading never saw one): {met['calls'].get('indeterminate', 0)} called indeterminate, "
                      f"{met['calls'].get('HGG', 0)} HGG, {met['calls'].get('LGG', 0)} LGG "
                      f"({met['cases'] - met['graded']} without a lesion found to grade)."]  # fmt: skip
    if task == "classification" and confidence and confidence["fitted"]["reached"]:
        lines += _confidence_lines(confidence)
    scans = []
    for name, result in (realdata or {}).items():
        if not isinstance(result, dict) or name in ("bundles", "weights_sha256"):
            continue
        if task == "segmentation":
            if "whole_tumour_dice" in result:
                volumes = f"{result['found_ml']:.1f} ml found, {result['truth_ml']:.1f} ml labelled"
                scans.append(f"- {name}: whole-tumour Dice {result['whole_tumour_dice']:.2f} against the "
                             f"label map ({volumes})")  # fmt: skip
            elif "found_ml" in result:
                scans.append(f"- {name}: {result['lesions']} lesion(s), {result['found_ml']:.1f} ml found")
            elif all(isinstance(v, (float, type(None))) for v in result.values()):
                dice = ", ".join(f"{k} {v:.2f}" if v is not None else f"{k} -" for k, v in result.items())
                scans.append(f"- {name}: Dice against TotalSegmentator's map: {dice}")
        elif "call" in result:
            reasons = "; ".join(result.get("reasons") or [])
            scans.append(f"- {name}: {result['call']}" + (f" ({reasons})" if reasons else ""))
    if scans:
        lines += ["", "Real scans (one case each: anecdotes, not a benchmark; never trained on; "
                  "`scripts/benchmark_realdata.py`):", "", *scans]  # fmt: skip
    lines += ["", "Intended use: research, trying mednet on your own scans, a baseline to fine-tune from. "
              "Limits: phantoms are simpler than patients; the real-scan figures are single cases; "
              "check every output (the report flags implausible ones and unsure calls)."]  # fmt: skip
    return "\n".join(lines)


def check_same_weights(bundle: str, record: dict, figures: dict | None, source: str, bundles_dir: Path) -> None:
    """Refuse a card built from figures measured on other weights than the installed ones.

    ``record`` is the bundle's ``models/reference.json`` (the installed weights' SHA-256),
    ``figures`` a benchmark's JSON for the disease (``weights_sha256``: bundle -> SHA-256 of
    the weights it measured), ``source`` its name for the message. The figures run the
    disease's whole pipeline, so every bundle they name must have the weights they measured
    (a grading card's figures depend on the localiser's weights too).

    Raises:
        SystemExit: the installed weights are not the ones the record names, or the figures
            name other weights (or none: written before benchmarks recorded them).
    """
    installed = file_sha256(bundles_dir / bundle / "models" / "model.pt")
    if record.get("weights_sha256") != installed:
        raise SystemExit(f"{bundle}: models/reference.json names weights {record.get('weights_sha256')}, "
                         f"models/model.pt is {installed}: install with scripts/train_reference.py --install")
    if figures is None:
        return
    measured = dict(figures.get("weights_sha256") or {})
    for name in sorted({bundle, *measured}):
        weights = bundles_dir / name / "models" / "model.pt"
        now = file_sha256(weights) if weights.is_file() else None
        if measured.get(name) != now:
            raise SystemExit(f"{bundle}: {source} measured {name}'s weights {measured.get(name) or '(not recorded)'}, "
                             f"expected the installed {now}: run its script again with these weights")  # fmt: skip


def write_cards(version: str, changelog: str, diseases: list[str] | None = None, bundles: list[str] | None = None,
                bundles_dir: Path = BUNDLES_DIR, benchmarks: Path = BENCHMARKS) -> list[str]:
    """Write the cards and bump the versions of the bundles with a record; returns the bundles written.

    Every card's figures must come from the installed weights (:func:`check_same_weights`);
    nothing is written unless all of them do.
    """
    realdata = json.loads((benchmarks / "realdata.json").read_text()) if (benchmarks / "realdata.json").is_file() \
        else {}  # fmt: skip
    cards = {}
    for bundle in list_bundles(bundles_dir):
        path = bundles_dir / bundle
        reference = path / "models" / "reference.json"
        disease = bundle.split("_mri_")[0]
        if (diseases and disease not in diseases) or (bundles and bundle not in bundles):
            continue
        if not reference.is_file():
            print(f"{bundle}: no models/reference.json, skipped")
            continue
        record = json.loads(reference.read_text())
        held = benchmarks / f"reference_{disease}.json"
        held_out = json.loads(held.read_text()) if held.is_file() else None
        calibrated = benchmarks / f"confidence_{disease}.json"
        check_same_weights(bundle, record, held_out, held.name, bundles_dir)
        check_same_weights(bundle, record, realdata.get(disease), "realdata.json", bundles_dir)
        if calibrated.is_file() and "classification" in bundle:
            check_same_weights(bundle, record, json.loads(calibrated.read_text()), calibrated.name, bundles_dir)
        cards[bundle] = section(bundle, record, held_out, realdata.get(disease),
                                json.loads(calibrated.read_text()) if calibrated.is_file() else None)  # fmt: skip
    for bundle, text in cards.items():
        path = bundles_dir / bundle
        card = path / "docs" / "README.md"
        content = card.read_text()
        if START in content:
            head, rest = content.split(START, 1)
            content = f"{head}{START}\n{text}\n{END}{rest.split(END, 1)[1]}"
        else:
            head, rest = content.split("## Commands", 1)
            content = f"{head}{START}\n{text}\n{END}\n\n## Commands{rest}"
        card.write_text(content)
        meta_file = path / "configs" / "metadata.json"
        meta = json.loads(meta_file.read_text())
        meta["version"] = version
        meta["changelog"] = {version: changelog, **meta["changelog"]}
        meta_file.write_text(json.dumps(meta, indent=4) + "\n")
        print(f"{bundle}: {card}, version {version}")
    return list(cards)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", required=True)
    parser.add_argument("--changelog", required=True)
    parser.add_argument("--disease", action="append", default=None,
                        help="only this disease's bundles (repeatable; default: all with a record)")  # fmt: skip
    parser.add_argument("--bundle", action="append", default=None,
                        help="only this bundle (repeatable): a release of one stage's weights")  # fmt: skip
    args = parser.parse_args()
    write_cards(args.version, args.changelog, args.disease, args.bundle)


if __name__ == "__main__":
    main()
