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

from mednet.io.atomic import atomic_path
from mednet.report.overview import draw_panel, on_grid, radiological_slice, to_ras

__all__ = ["radiological_slice", "write_preview"]


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
        seg = to_ras(seg_image).astype(int)
        area = np.isin(seg, list(lesions)).sum(axis=(0, 1))
        k = int(np.argmax(area))
        label_slice = radiological_slice(seg, k)
        spacing = nib.as_closest_canonical(seg_image).header.get_zooms()
        for ax, sequence in zip(row, sequences, strict=True):
            picture = radiological_slice(to_ras(on_grid(nib.load(root / case[sequence]), seg_image)).astype(float), k)
            title = f"{case['case_id']} {case['class']}  {sequence}"
            draw_panel(ax, picture, label_slice, colours, lesions, spacing[1] / spacing[0], title)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out, suffix=".png", parents=True) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return out
