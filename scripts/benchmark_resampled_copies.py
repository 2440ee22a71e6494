"""How much a case's label map moves when the same case comes on another grid.

    python scripts/benchmark_resampled_copies.py --patients 6 --out docs/benchmarks/resampled_copies.json

Per disease, ``--patients`` synthetic patients (``demo`` size, seeds 404, 405, ...) and three copies of each, each
sequence interpolated trilinearly to ``--factor`` times its voxel size:

- ``resampled``: the same directions and field of view, another matrix (what a scanner
  gives at another resolution): the first voxel's corner stays where it was;
- ``reformatted``: onto an axis-aligned RAS grid (``nibabel.processing.resample_to_output``,
  what a PACS export or a reformat of an oblique scan gives): the bounding box of the
  rotated field of view, its corners filled with zeros (which the segmentation bundles'
  ``FieldOfViewFilld`` finds and fills for the network: ``outside_fov_fraction`` says how
  much of the copy it filled);
- ``reformatted_edge``: the same grid, its corners filled with the nearest edge values by
  the resampling itself (``mode="nearest"``): what the maps are when the corners are known
  as not acquired.

All three go through ``mednet predict`` (the shipped weights, or ``--candidate`` ones). Each
copy's map is brought back onto the original's grid (nearest neighbour) and compared with
the original's: Dice of the foreground (organs and lesions), Dice of the lesions, the
fraction of voxels with the same label, surface Dice of the lesions (the fraction of both
surfaces within one voxel, the original's largest side), and the lesion volumes. A
re-oriented copy (the same voxels stored in another order) gives the same map exactly
(``tests/bundles/test_reference_weights.py``); a resampled copy is another image, so this
measures how stable the maps are.

Two floors, with no network involved:

- ``floor_round_trip``: the original's map onto the copy's grid and back (what the
  comparison itself loses);
- ``floor_resolution``: the true label map as a perfect localiser would give it on the
  copy's grid (each class's indicator interpolated trilinearly, as the images are, then
  the most likely class) and brought back, against the truth: what regridding alone costs
  a map that is right on both grids.

And each map's lesion Dice against the phantom's truth (``dice_lesions_truth``): whether a
copy's map is worse, or only different.
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
from compare_weights import candidate_settings
from monai.metrics import compute_surface_dice
from nibabel.processing import resample_from_to, resample_to_output

from mednet.metrics.localisation import map_labels
from mednet.pipeline import predict_cohort
from mednet.pipeline.diseases import DISEASES, disease_spec
from mednet.synthetic import generate_cohort

COPIES = ("resampled", "reformatted", "reformatted_edge")


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


def resampled_grid(image: nib.Nifti1Image, factor: float) -> tuple[tuple[int, ...], np.ndarray]:
    """``image``'s field of view on voxels ``factor`` times its own, same directions: (shape, affine).

    The first voxel's corner stays at the original's first corner; the shape covers the
    original's extent (rounded up).
    """
    shape = tuple(int(s) for s in np.ceil(np.array(image.shape[:3]) / factor))
    affine = image.affine.copy()
    affine[:3, :3] = image.affine[:3, :3] * factor
    corner = image.affine @ np.array([-0.5, -0.5, -0.5, 1.0])
    affine[:3, 3] = corner[:3] + affine[:3, :3] @ np.full(3, 0.5)
    return shape, affine


def copy_image(image: nib.Nifti1Image, kind: str, factor: float) -> nib.Nifti1Image:
    """One sequence's copy: ``resampled`` (same directions), ``reformatted`` (axis-aligned, zero corners) or
    ``reformatted_edge`` (axis-aligned, corners filled with the nearest edge values)."""
    if kind == "resampled":
        return resample_from_to(image, resampled_grid(image, factor), order=1, mode="nearest")
    zooms = np.array(image.header.get_zooms()[:3], dtype=float)
    fill = "nearest" if kind == "reformatted_edge" else "constant"
    return resample_to_output(image, voxel_sizes=tuple(zooms * factor), order=1, mode=fill)


def perfect_map(truth: nib.Nifti1Image, target: nib.Nifti1Image) -> np.ndarray:
    """The true labels as a perfect localiser gives them on ``target``'s grid: per class, trilinear, then arg-max."""
    values = np.asarray(truth.dataobj).astype(np.int16)
    classes = np.unique(values)
    best = np.full(target.shape[:3], -1.0)
    out = np.zeros(target.shape[:3], dtype=np.int16)
    for value in classes:
        indicator = nib.Nifti1Image((values == value).astype(np.float32), truth.affine)
        share = np.asarray(resample_from_to(indicator, (target.shape[:3], target.affine), order=1,
                                            mode="nearest").dataobj)  # fmt: skip
        better = share > best
        out[better], best[better] = value, share[better]
    return out


def _lesion_volumes(record: Path) -> list[float]:
    rows = json.loads(record.read_text())["lesions"]
    return sorted((round(float(row["volume_ml"]), 3) for row in rows), reverse=True)


def _outside_fraction(record: Path, shape: tuple[int, ...]) -> float:
    """The fraction of the case's voxels found beyond a reformatted field of view (filled for the network)."""
    return round(json.loads(record.read_text())["outside_field_of_view_voxels"] / float(np.prod(shape)), 4)


def measure(disease: str, factor: float, root: Path, models: dict | None = None, settings: dict | None = None,
            seed: int = 404) -> dict:  # fmt: skip
    """One patient and its two copies through ``mednet predict``; the figures of each copy against the original."""
    spec = disease_spec(disease)
    cohort = generate_cohort(disease, 1, root / "data", size="demo", seed=seed,
                             balance=dict.fromkeys(spec.classes, 1.0))  # fmt: skip
    entry = next(c for p in ("training", "validation", "testing") for c in json.loads(cohort.datalist.read_text())[p])
    case = {k: (str(root / "data" / v) if k not in ("case_id", "patient_id", "class", "clinicians") else v)
            for k, v in entry.items() if k != "label"}  # fmt: skip
    sequences = [s for s in spec.sequences if s in case]
    cases = [{**case, "case_id": "original"}]
    for kind in COPIES:
        copy = {"case_id": kind, "patient_id": kind}
        for key in sequences:
            copy[key] = str(root / f"{kind}_{key}.nii.gz")
            nib.save(copy_image(nib.load(case[key]), kind, factor), copy[key])
        cases.append(copy)
    datalist = root / "datalist.json"
    datalist.write_text(json.dumps({"training": [], "validation": [], "testing": cases}))
    result = predict_cohort(datalist, disease, root / "out", device="cpu", models=models, settings=settings,
                            progress=lambda line: None)  # fmt: skip
    original = nib.load(root / "out" / "original" / "original_labels.nii.gz")
    source = nib.load(root / "data" / entry["label"])  # the phantom's values, mapped to the bundle's
    truth = nib.Nifti1Image(map_labels(np.asarray(source.dataobj).astype(np.int64),
                                       *spec.localisation.truth_labels).astype(np.int16), source.affine)  # fmt: skip
    lesions = list(spec.localisation.lesion_values)
    spacing = [float(z) for z in original.header.get_zooms()[:3]]
    a = np.asarray(original.dataobj)
    true_lesions = np.isin(np.asarray(truth.dataobj), lesions)
    out = {"seed": seed, "failed": result["failed"], "shape": list(original.shape), "tolerance_mm": max(spacing),
           "original": {"dice_lesions_truth": _dice(np.isin(a, lesions), true_lesions),
                        "lesions_ml": _lesion_volumes(root / "out" / "original" / "original.json"),
                        "outside_fov_fraction": _outside_fraction(root / "out" / "original" / "original.json",
                                                                  original.shape)}}  # fmt: skip
    for kind in COPIES:
        copied = nib.load(root / "out" / kind / f"{kind}_labels.nii.gz")
        b = np.asarray(resample_from_to(copied, original, order=0).dataobj)
        trip = np.asarray(resample_from_to(resample_from_to(original, copied, order=0), original, order=0).dataobj)
        perfect = nib.Nifti1Image(perfect_map(truth, copied), copied.affine)
        resolution = np.asarray(resample_from_to(perfect, truth, order=0).dataobj)
        out[kind] = {
            "shape": list(copied.shape),
            "dice_foreground": _dice(a > 0, b > 0),
            "dice_lesions": _dice(np.isin(a, lesions), np.isin(b, lesions)),
            "same_label_fraction": round(float((a == b).mean()), 5),
            "surface_dice_lesions": _surface_dice(np.isin(a, lesions), np.isin(b, lesions), spacing),
            "dice_lesions_truth": _dice(np.isin(b, lesions), true_lesions),
            "lesions_ml": _lesion_volumes(root / "out" / kind / f"{kind}.json"),
            "outside_fov_fraction": _outside_fraction(root / "out" / kind / f"{kind}.json", copied.shape),
            "floor_round_trip_dice_lesions": _dice(np.isin(a, lesions), np.isin(trip, lesions)),
            "floor_resolution_dice_lesions": _dice(true_lesions, np.isin(resolution, lesions)),
            "floor_resolution_surface_dice_lesions": _surface_dice(true_lesions, np.isin(resolution, lesions), spacing),
        }
    return out


def summarise(patients: list[dict]) -> dict:
    """Per copy and figure: the mean and the lowest over the patients (figures that are numbers)."""
    summary: dict = {}
    for kind in ("original", *COPIES):
        for name in patients[0][kind]:
            values = [p[kind][name] for p in patients if isinstance(p[kind].get(name), (int, float))]
            if values and name != "shape":
                figure = {"mean": round(float(np.mean(values)), 4), "min": round(float(np.min(values)), 4)}
                summary.setdefault(kind, {})[name] = {**figure, "n": len(values)}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factor", type=float, default=0.8, help="the copy's voxel size over the original's")
    parser.add_argument("--patients", type=int, default=4, help="patients per disease (seeds 404, 405, ...)")
    parser.add_argument("--disease", action="append", choices=sorted(DISEASES), help="default: all three")
    parser.add_argument("--candidate", action="append", default=[], metavar="BUNDLE=CHECKPOINT",
                        help="other weights for a bundle (as compare_weights.py's)")
    parser.add_argument("--set", action="append", default=[], metavar="STAGE.KEY=VALUE",
                        help="a config override the candidate was trained with (as compare_weights.py's)")
    parser.add_argument("--out", default="resampled_copies.json")
    args = parser.parse_args()
    diseases = args.disease or sorted(DISEASES)
    candidate = dict(item.split("=", 1) for item in args.candidate)
    if candidate and len(diseases) != 1:
        raise SystemExit("--candidate: give the one --disease the weights are for")
    settings = candidate_settings(args.set, disease_spec(diseases[0]), candidate) if candidate else None
    results = {"command": "python scripts/benchmark_resampled_copies.py " + " ".join(sys.argv[1:]),
               "factor": args.factor, "bundles": {}, "candidate": candidate, "diseases": {}}  # fmt: skip
    for disease in diseases:
        results["bundles"].update(disease_spec(disease).versions)
        patients = []
        for seed in range(404, 404 + args.patients):
            with tempfile.TemporaryDirectory() as tmp:
                patients.append(measure(disease, args.factor, Path(tmp), candidate or None, settings, seed))
        results["diseases"][disease] = {"summary": summarise(patients), "patients": patients}
        print(disease, json.dumps(results["diseases"][disease]["summary"]), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
