"""A PNG montage of cohort cases with their labels outlined, to look at.

One row per case, one column per sequence, each showing the axial slice with the
largest lesion area in radiological convention (the patient's right on the left,
anterior at the top), lesions outlined and organs lightly tinted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = ["radiological_slice", "write_preview"]


def _to_ras(image: nib.Nifti1Image) -> np.ndarray:
    return np.asanyarray(nib.as_closest_canonical(image).dataobj)


def radiological_slice(volume: np.ndarray, k: int) -> np.ndarray:
    """Axial slice ``k`` of an RAS-ordered ``(x, y, z)`` volume as a ``(rows, cols)`` image.

    Radiological convention: anterior at the top, the patient's right on the left.
    """
    return volume[::-1, ::-1, k].T


def write_preview(cohort: os.PathLike | str, out: os.PathLike | str, n_cases: int = 4) -> Path:
    """Draw the first ``n_cases`` cases of a generated cohort (see :func:`generate_cohort`).

    Args:
        cohort: the cohort folder (with ``manifest.csv`` and ``labels.json``).
        out: PNG file to write.
        n_cases: number of rows.

    Returns:
        The PNG path.
    """
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    from mednet.io.sequences import SEQUENCE_KEYS

    root = Path(cohort)
    with open(root / "manifest.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))[:n_cases]
    table = json.loads((root / "labels.json").read_text())
    lesions = {
        e["value"]
        for e in table
        if "tumour" in e["name"] or e["name"] in ("metastasis", "oedema", "necrotic_core", "enhancing_tumour")
    }
    colours = {e["value"]: to_rgba(e["colour"]) for e in table if e["value"]}
    sequences = [k for k in SEQUENCE_KEYS if rows and k in rows[0]]
    fig, axes = plt.subplots(len(rows), len(sequences), figsize=(3.2 * len(sequences), 3.2 * len(rows)), squeeze=False)
    for row, case in zip(axes, rows, strict=True):
        seg_image = nib.load(root / case["label"])
        seg = _to_ras(seg_image).astype(int)
        area = np.isin(seg, list(lesions)).sum(axis=(0, 1))
        k = int(np.argmax(area))
        label_slice = radiological_slice(seg, k)
        spacing = nib.as_closest_canonical(seg_image).header.get_zooms()
        for ax, sequence in zip(row, sequences, strict=True):
            image = nib.load(root / case[sequence])
            if image.shape != seg_image.shape or not np.allclose(image.affine, seg_image.affine):
                from nibabel.processing import resample_from_to

                image = resample_from_to(image, seg_image, order=1)
            picture = radiological_slice(_to_ras(image).astype(float), k)
            ax.imshow(picture, cmap="gray", vmin=0, vmax=np.percentile(picture, 99.5), aspect=spacing[1] / spacing[0])
            tint = np.zeros((*label_slice.shape, 4))
            for value, colour in colours.items():
                if value not in lesions:
                    tint[label_slice == value] = (*colour[:3], 0.22)
            ax.imshow(tint, aspect=spacing[1] / spacing[0])
            for value in sorted(lesions & set(np.unique(label_slice))):
                ax.contour(label_slice == value, levels=[0.5], colors=[colours[value]], linewidths=1.0)
            ax.set_title(f"{case['case_id']} {case['class']}  {sequence}", fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
