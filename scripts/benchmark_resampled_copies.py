"""How much a case's label map moves when the same case comes on another grid.

    python scripts/benchmark_resampled_copies.py --factor 0.8 --out docs/benchmarks/resampled_copies.json

Per disease, one synthetic patient (``demo`` size, seed 404) and a copy of it resampled
(every sequence, trilinear, ``nibabel.processing.resample_to_output``) to ``--factor``
times its voxel size, both through ``mednet predict`` with the shipped weights. The copy's
map is brought back onto the original's grid (nearest neighbour) and compared: Dice of
the foreground (organs and lesions), Dice of the lesions, and the fraction of voxels with
the same label. A re-oriented copy (the same voxels stored in another order) gives the
same map exactly (``tests/bundles/test_reference_weights.py``); a resampled copy is
another image (interpolation smooths it), so this measures how stable the maps are, and
the comparison's own floor is measured too: the original's map carried onto the copy's
grid and back (no network), Dice and surface Dice. Surface Dice: the fraction of the two
lesion surfaces within one voxel (the original's largest side) of each other. The lesion
volumes of both records show whether a difference is a boundary or a lesion found in one
copy only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.metrics import compute_surface_dice
from nibabel.processing import resample_from_to, resample_to_output

from mednet.pipeline import predict_cohort
from mednet.pipeline.diseases import DISEASES, disease_spec
from mednet.synthetic import generate_cohort


def _dice(a: np.ndarray, b: np.ndarray) -> float | None:
    total = int(a.sum() + b.sum())
    return round(2.0 * float(np.logical_and(a, b).sum()) / total, 4) if total else None


def _surface_dice(a: np.ndarray, b: np.ndarray, spacing: list[float]) -> float | None:
    """Normalised surface Dice of two masks on one grid, at a tolerance of one voxel (the largest side)."""
    if not a.any() and not b.any():
        return None
    pair = [torch.as_tensor(m)[None, None].float() for m in (b, a)]
    value = compute_surface_dice(pair[0], pair[1], class_thresholds=[max(spacing)], include_background=True,
                                 spacing=spacing)  # fmt: skip
    return round(float(value[0, 0]), 4)


def measure(disease: str, factor: float, root: Path) -> dict:
    spec = disease_spec(disease)
    cohort = generate_cohort(disease, 1, root / "data", size="demo", seed=404,
                             balance=dict.fromkeys(spec.classes, 1.0))  # fmt: skip
    entry = next(c for p in ("training", "validation", "testing") for c in json.loads(cohort.datalist.read_text())[p])
    case = {k: (str(root / "data" / v) if k not in ("case_id", "patient_id", "class", "clinicians") else v)
            for k, v in entry.items() if k != "label"}  # fmt: skip
    copy = {"case_id": "resampled", "patient_id": "resampled"}
    for key in [s for s in spec.sequences if s in case]:
        image = nib.load(case[key])
        zooms = np.array(image.header.get_zooms()[:3], dtype=float)
        copy[key] = str(root / f"resampled_{key}.nii.gz")
        nib.save(resample_to_output(image, voxel_sizes=tuple(zooms * factor), order=1), copy[key])
    datalist = root / "datalist.json"
    datalist.write_text(json.dumps({"training": [], "validation": [],
                                    "testing": [{**case, "case_id": "original"}, copy]}))  # fmt: skip
    result = predict_cohort(datalist, disease, root / "out", device="cpu", progress=lambda line: None)
    original = nib.load(root / "out" / "original" / "original_labels.nii.gz")
    copied = nib.load(root / "out" / "resampled" / "resampled_labels.nii.gz")
    moved = resample_from_to(copied, original, order=0)
    # the comparison's own floor: the original's map onto the copy's grid and back, no network involved
    round_trip = resample_from_to(resample_from_to(original, copied, order=0), original, order=0)
    a, b, c = (np.asarray(image.dataobj) for image in (original, moved, round_trip))
    lesions = list(spec.localisation.lesion_values)
    spacing = [float(z) for z in original.header.get_zooms()[:3]]
    return {"failed": result["failed"], "shape": list(original.shape), "copy_shape": list(copied.shape),
            "dice_foreground": _dice(a > 0, b > 0), "dice_lesions": _dice(np.isin(a, lesions), np.isin(b, lesions)),
            "same_label_fraction": round(float((a == b).mean()), 5),
            "floor_dice_foreground": _dice(a > 0, c > 0),
            "floor_dice_lesions": _dice(np.isin(a, lesions), np.isin(c, lesions)),
            "tolerance_mm": max(spacing),
            "surface_dice_lesions": _surface_dice(np.isin(a, lesions), np.isin(b, lesions), spacing),
            "floor_surface_dice_lesions": _surface_dice(np.isin(a, lesions), np.isin(c, lesions), spacing),
            "lesions_ml": {name: sorted((round(float(row["volume_ml"]), 3) for row in json.loads(
                (root / "out" / name / f"{name}.json").read_text())["lesions"]), reverse=True)
                for name in ("original", "resampled")}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factor", type=float, default=0.8, help="the copy's voxel size over the original's")
    parser.add_argument("--out", default="resampled_copies.json")
    args = parser.parse_args()
    results = {"command": "python scripts/benchmark_resampled_copies.py " + " ".join(sys.argv[1:]),
               "factor": args.factor, "bundles": {}, "diseases": {}}  # fmt: skip
    for disease in sorted(DISEASES):
        results["bundles"].update(disease_spec(disease).versions)
        with tempfile.TemporaryDirectory() as tmp:
            results["diseases"][disease] = measure(disease, args.factor, Path(tmp))
        print(disease, json.dumps(results["diseases"][disease]), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
