"""The shipped weights on the few real scans beside the project: anecdotes, never a benchmark.

    python scripts/benchmark_realdata.py --out docs/benchmarks/realdata.json

Real scans in ``../shared/realdata`` (or ``$MEDNET_REALDATA``; see its README), never
trained on. Each goes through ``mednet predict``'s own path (:func:`mednet.pipeline.predict_case`):

- TCGA-DU-7294 (lower-grade glioma, BraTS-preprocessed): whole-tumour Dice of the glioma
  localisation against the label map (a fusion of five BraTS algorithms, a model consensus),
  with all four sequences and with T1c and FLAIR only (as BRATS 2013 gives them); the
  grading's call;
- TCGA-FG-6692 (lower-grade glioma, native scanner space, each sequence on its own grid):
  no label map; what the pipeline finds (lesion volume, call);
- TotalSegmentator's abdominal MRI example (adult, limited field of view): Dice of the
  neuroblastoma localisation's liver, spleen, kidneys and adrenals against TotalSegmentator's
  own model map, the image given as T2w and, separately, as T1c.

One case each: report them as anecdotes. Writes JSON with the figures and the weights' versions and SHA-256.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from mednet.io import read_image
from mednet.pipeline.case import Predictors, predict_case
from mednet.pipeline.diseases import disease_spec

REALDATA = Path(os.environ.get("MEDNET_REALDATA", Path(__file__).resolve().parents[2] / "shared" / "realdata"))
#: TotalSegmentator MR labels -> the neuroblastoma bundle's organ names.
TOTALSEG_MR = {5: "liver", 1: "spleen", 2: "kidney_right", 3: "kidney_left", 8: "adrenal_right", 9: "adrenal_left"}


def dice(a: np.ndarray, b: np.ndarray) -> float | None:
    """Dice of two masks; None when both are empty."""
    total = int(a.sum() + b.sum())
    return round(2.0 * float(np.logical_and(a, b).sum()) / total, 4) if total else None


def _labels(out: Path, case_id: str) -> np.ndarray:
    return np.asarray(read_image(out / case_id / f"{case_id}_labels.nii.gz", "label")[0])


def glioma(predictors: Predictors, work: Path) -> dict:
    """TCGA-DU-7294 with four and with two sequences; TCGA-FG-6692 native."""
    folder = REALDATA / "tcga_lgg_du7294_atlas"
    truth = np.asarray(read_image(folder / "TCGA-DU-7294_seg_fused.nii.gz", "label")[0]) > 0
    files = {"t1": "t1_bet", "t1c": "t1c_bet", "t2": "t2_bet", "flair": "fla_bet"}
    result = {}
    for name, keys in (("four_sequences", ["t1", "t1c", "t2", "flair"]), ("t1c_flair_only", ["t1c", "flair"])):
        case = {"case_id": f"DU7294_{name}", **{k: str(folder / f"TCGA-DU-7294_{files[k]}.nii.gz") for k in keys}}
        record = predict_case(case, predictors, work)
        found = _labels(work, case["case_id"]) > 0
        result[f"TCGA-DU-7294 {name}"] = {
            "whole_tumour_dice": dice(found, truth), "truth_ml": round(truth.sum() / 1000.0, 2),
            "found_ml": round(found.sum() / 1000.0, 2), "call": record["call"], "fused": record["fused"],
            "reasons": (record["fusion"] or {}).get("reasons"), "sequences_used": record["sequences_used"],
            "timings": record["timings"],
        }  # fmt: skip
    native = REALDATA / "tcga_lgg_fg6692_native"
    case = {"case_id": "FG6692_native"}
    for path in sorted(native.glob("*.nii.gz")):
        key = path.name.removesuffix(".nii.gz").rsplit("_", 1)[1]
        case[{"fla": "flair"}.get(key, key)] = str(path)
    record = predict_case(case, predictors, work)
    result["TCGA-FG-6692 native"] = {
        "found_ml": round(sum(lesion["volume_ml"] for lesion in record["lesions"]), 2),
        "lesions": len(record["lesions"]), "call": record["call"], "fused": record["fused"],
        "reasons": (record["fusion"] or {}).get("reasons"), "reference_sequence": record["reference_sequence"],
    }  # fmt: skip
    return result


def abdomen(predictors: Predictors, work: Path) -> dict:
    """TotalSegmentator's MR example as each sequence the localisation reads (T2w, T1c): organ Dice against its map.

    The scan is a native T1-weighted abdomen; a bundle that reads ``t1`` is given it as such too.
    """
    folder = REALDATA / "totalsegmentator_examples"
    reference = np.asarray(read_image(folder / "example_seg_mr.nii.gz", "label")[0]).astype(int)
    table = {row["name"]: row["value"] for row in predictors.spec.localisation.label_table}
    result = {}
    for as_sequence in predictors.spec.localisation.sequences:
        case = {"case_id": f"totalseg_mr_as_{as_sequence}", as_sequence: str(folder / "example_mr_sm.nii.gz")}
        predict_case(case, predictors, work)
        found = _labels(work, case["case_id"]).astype(int)
        result[f"TotalSegmentator MR as {as_sequence}"] = {
            name: dice(found == table[name], reference == value) for value, name in TOTALSEG_MR.items()
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="realdata.json")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if not REALDATA.is_dir():
        raise SystemExit(f"no real scans at {REALDATA} (set MEDNET_REALDATA)")
    results: dict = {"note": "one case each: anecdotes, not a benchmark; never trained on"}
    with tempfile.TemporaryDirectory() as tmp:
        for disease, run in (("glioma", glioma), ("neuroblastoma", abdomen)):
            spec = disease_spec(disease)
            predictors = Predictors.build(spec, args.device)
            results[disease] = {"bundles": spec.versions, "weights_sha256": predictors.weights,
                                **run(predictors, Path(tmp) / disease)}
            print(disease, json.dumps(results[disease], indent=1), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
