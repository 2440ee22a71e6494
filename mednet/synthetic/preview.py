"""A PNG montage of cohort cases with their labels outlined, to look at.

One row per case, one column per sequence, each showing the axial slice with the
largest lesion area in radiological convention (the patient's right on the left,
anterior at the top), lesions outlined and organs lightly tinted: the overview's panels
(:func:`mednet.report.overview.draw_panel`), drawn with numpy and Pillow, 3.2 inches a
panel at 90 dpi.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from mednet.report.overview import draw_panel, montage, on_grid, radiological_slice, to_ras

__all__ = ["radiological_slice", "write_preview"]


def write_preview(cohort: os.PathLike | str, out: os.PathLike | str, n_cases: int = 4) -> Path:
    """Draw the first ``n_cases`` cases of a generated cohort (see :func:`generate_cohort`).

    Args:
        cohort: the cohort folder (with ``manifest.csv`` and ``labels.json``).
        out: PNG file to write (atomically).
        n_cases: number of rows.

    Returns:
        The PNG path.
    """
    import csv

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
    panels = []
    for case in rows:
        seg_image = nib.load(root / case["label"])
        seg = to_ras(seg_image).astype(int)
        area = np.isin(seg, list(lesions)).sum(axis=(0, 1))
        k = int(np.argmax(area))
        label_slice = radiological_slice(seg, k)
        spacing = nib.as_closest_canonical(seg_image).header.get_zooms()
        row = []
        for sequence in sequences:
            picture = radiological_slice(to_ras(on_grid(nib.load(root / case[sequence]), seg_image)).astype(float), k)
            title = f"{case['case_id']} {case['class']}  {sequence}"
            row.append(functools.partial(draw_panel, picture=picture, labels=label_slice, colours=colours,
                                         lesions=lesions, aspect=spacing[1] / spacing[0], title=title,
                                         mm_per_pixel=spacing[0]))  # fmt: skip
        panels.append(row)
    return montage(panels, out)
