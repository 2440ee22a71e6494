"""A small predicted cohort on disk, made without networks: records, label maps, overviews (report tests only).

Four CPA cases: a DL-MDT 2-2 tie that the clinicians won against both networks, an
indeterminate call, a case with an implausible 1881 ml lesion and flags, a failed one.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from mednet.report.overview import write_overview
from mednet.report.provenance import input_checksums

TABLE = [{"value": 0, "name": "background", "colour": "#000000"}, {"value": 1, "name": "tumour", "colour": "#ff7f0e"}]
SEQUENCES = ["t1c", "t2"]


def scene(shape=(96, 96, 40), blobs=((60, 40, 20, 8),), seed=0):
    """A textured head-like ellipse with bright spherical lesions ``(x, y, z, radius)``; image and label map."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    head = ((x - shape[0] / 2) / (0.42 * shape[0])) ** 2 + ((y - shape[1] / 2) / (0.45 * shape[1])) ** 2 < 1
    image = np.where(head, 400 + 60 * rng.standard_normal(shape), rng.rayleigh(8, shape)).astype(np.float32)
    labels = np.zeros(shape, np.uint8)
    for cx, cy, cz, r in blobs:
        ball = (x - cx) ** 2 + (y - cy) ** 2 + ((z - cz) * 2) ** 2 < r**2
        image[ball] += 500
        labels[ball] = 1
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    return nib.Nifti1Image(image, affine), nib.Nifti1Image(labels, affine)


def _lesions(labels: np.ndarray, volumes_ml=None) -> list[dict]:
    from scipy import ndimage

    parts, count = ndimage.label(labels == 1, structure=np.ones((3, 3, 3)))
    rows = []
    for k in range(1, count + 1):
        index = np.argwhere(parts == k)
        rows.append({"label": 1, "class_name": "tumour", "voxels": len(index), "volume_ml": len(index) * 2 / 1000,
                     "centroid_x_mm": float(index[:, 0].mean()), "centroid_y_mm": float(index[:, 1].mean()),
                     "centroid_z_mm": float(index[:, 2].mean() * 2), "largest_diameter_mm": 16.0,
                     "mean_probability": 0.9, "host_organ": None, "compartment": "other"})  # fmt: skip
    rows.sort(key=lambda r: -r["voxels"])
    for i, row in enumerate(rows, start=1):
        row["lesion_id"] = i
        if volumes_ml:
            row["volume_ml"] = volumes_ml.get(i, row["volume_ml"])
    return rows


def make_cohort(out: Path, inputs: Path) -> dict[str, dict]:
    """Write the cohort's case folders into ``out`` (inputs into ``inputs``); case id -> record."""
    weights = {"cpa_mri_segmentation": "a" * 64, "cpa_mri_classification": "b" * 64}
    provenance = {"mednet": "0.1.0", "git": "abc123def456", "torch": "2.0", "monai": "1.4",
                  "command": "mednet predict --disease cpa --input in --out out",
                  "time": "2026-03-02T14:05:09+01:00"}  # fmt: skip
    common = {"disease": "cpa", "bundles": {"cpa_mri_segmentation": "0.2.0", "cpa_mri_classification": "0.2.0"},
              "weights": weights, "device": "cpu", "label_table": TABLE, "slices": 12, "aggregation": "mean",
              "missing_sequences": [], "ood_check": "no feature-distance check", "note": "",
              "provenance": provenance}  # fmt: skip
    cases = {
        "TIE_1": {"blobs": ((60, 40, 20, 8), (30, 60, 12, 5)),
                  "sequences": {"t1c": {"MG": 0.8, "AN": 0.2}, "t2": {"MG": 0.7, "AN": 0.3}},
                  "fused": {"MG": 0.5, "AN": 0.5}, "fused_class": "AN", "call": "AN",
                  "fusion": {"method": "dl_mdt", "votes": {"t1c": 0, "t2": 0, "radiology": 1, "radiotherapy": 1},
                             "weights": {"t1c": 0.25, "t2": 0.25, "radiology": 0.25, "radiotherapy": 0.25},
                             "missing": [], "reasons": []},
                  "clinicians": {"radiology": "AN", "radiotherapy": "AN"}, "true_class": "AN",
                  "localisation_metrics": {"dice_tumour": 0.83, "dice_lesions": 0.83, "detected": 1}},
        "UNSURE_2": {"blobs": ((50, 50, 22, 7),),
                     "sequences": {"t1c": {"MG": 0.45, "AN": 0.55}, "t2": {"MG": 0.62, "AN": 0.38}},
                     "fused": {"MG": 0.5, "AN": 0.5}, "fused_class": "AN", "call": "indeterminate",
                     "fusion": {"method": "dl_mdt", "votes": {"t1c": 1, "t2": 0, "radiology": 1, "radiotherapy": 0},
                                "missing": [], "reasons": ["weighted vote for AN is 0.50, below 0.60"]},
                     "true_class": "MG", "localisation_metrics": {"dice_tumour": 0.41, "dice_lesions": 0.41}},
        "HUGE_3": {"blobs": ((48, 48, 20, 30),), "volumes": {1: 1881.0},
                   "sequences": {"t1c": {"MG": 0.49, "AN": 0.51}, "t2": {"MG": 0.52, "AN": 0.48}},
                   "fused": {"MG": 0.5, "AN": 0.5}, "fused_class": "AN", "call": "AN",
                   "fusion": {"method": "dl_mdt", "votes": {"t1c": 1, "t2": 0, "radiology": 1, "radiotherapy": 0},
                              "missing": [], "reasons": []},
                   "flags": ["lesions take 61% of the body volume (more than 50%: implausible; check the input)"],
                   "true_class": "MG", "localisation_metrics": {"dice_tumour": 0.05, "dice_lesions": 0.05}},
    }  # fmt: skip
    records = {}
    inputs.mkdir(parents=True, exist_ok=True)
    for n, (case_id, spec) in enumerate(cases.items()):
        image, labels = scene(blobs=spec["blobs"], seed=n)
        truth = nib.Nifti1Image((np.asarray(labels.dataobj) > 0).astype(np.uint8), labels.affine)
        folder = out / case_id
        folder.mkdir(parents=True, exist_ok=True)
        paths = {s: inputs / f"{case_id}_{s}.nii.gz" for s in SEQUENCES}
        for path in paths.values():
            nib.save(image, path)
        nib.save(truth, inputs / f"{case_id}_seg.nii.gz")
        nib.save(labels, folder / f"{case_id}_labels.nii.gz")
        (folder / f"{case_id}_labels.json").write_text(json.dumps(TABLE))
        lesions = _lesions(np.asarray(labels.dataobj), spec.get("volumes"))
        (folder / f"{case_id}_lesions.csv").write_text("lesion_id,volume_ml\n")
        record = {**common, "case_id": case_id, "patient_id": case_id,
                  "inputs": {s: str(p) for s, p in paths.items()},
                  "reference_label": str(inputs / f"{case_id}_seg.nii.gz"),
                  "inputs_sha256": input_checksums({**paths, "label": inputs / f"{case_id}_seg.nii.gz"}),
                  "labels": f"{case_id}_labels.nii.gz", "lesions": lesions, "flags": spec.get("flags", []),
                  **{k: v for k, v in spec.items() if k not in ("blobs", "volumes", "flags")}}  # fmt: skip
        write_overview(paths, folder / f"{case_id}_labels.nii.gz", TABLE, [1], f"{case_id}: {record['call']}",
                       folder / f"{case_id}_overview.png")  # fmt: skip
        (folder / f"{case_id}.json").write_text(json.dumps(record, indent=2))
        records[case_id] = record
    return records
