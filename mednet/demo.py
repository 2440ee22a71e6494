"""The end-to-end demo: what ``mednet demo`` runs.

For now it shows the I/O layer on a toy BraTS-style cohort: discovery and a
patient-level split, a multi-sequence case brought onto one grid, a label map
written back on the input's exact grid, and the file summary a researcher sees
first. The pipeline stages join it as they land.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = ["run_demo"]


def run_demo(out: os.PathLike | str, n_cases: int = 6, seed: int = 0, echo=print) -> dict:
    """Run the demo into ``out`` and return a summary of what it checked.

    Args:
        out: working folder (created; an existing demo folder is reused).
        n_cases: toy cases to generate.
        seed: random seed.
        echo: where progress lines go.

    Returns:
        ``{"cases", "split", "resampled", "label_map", "same_grid"}``.

    Raises:
        RuntimeError: a written label map is not on its input's grid (a bug).
    """
    from mednet.io import build_datalist, discover_cases, load_case, load_datalist, save_datalist, write_image
    from mednet.io.info import describe_image, format_descriptions
    from mednet.synthetic import write_toy_brats_cohort

    out = Path(out)
    data = write_toy_brats_cohort(out / "data", n_cases=n_cases, seed=seed)
    echo(f"[1/4] wrote a toy cohort of {n_cases} BraTS-style cases to {data}")

    found = discover_cases(data, require=["t1", "t1c", "t2", "flair"])
    datalist = build_datalist(found, seed=seed)
    path = save_datalist(datalist, out / "datalist.json")
    echo(f"[2/4] {found.report().splitlines()[0]}; patient-level split written to {path}")
    for name, counts in datalist["split"]["counts"].items():
        echo(f"      {name:<10} {counts['patients']} patients {counts['classes']}")

    case = load_datalist(path)["testing"][0] if datalist["testing"] else datalist["training"][0]
    loaded = load_case(case, ["t1", "t1c", "t2", "flair"])
    resampled = [r["key"] for r in loaded.resampling if r["resampled"]]
    echo(
        f"[3/4] case {loaded.case_id}: reference t1 grid {loaded.grid.shape} {loaded.grid.orientation}; "
        f"resampled onto it: {', '.join(resampled) or 'none'}"
    )

    labels = out / "output" / f"{loaded.case_id}_labels.nii.gz"
    write_image(loaded.label, labels, loaded.reference, label=True, overwrite=True)
    written, source = nib.load(labels), nib.load(case["t1"])
    same = written.shape == source.shape and np.array_equal(written.affine, source.affine)
    if not same:
        raise RuntimeError(f"{labels} is not on the grid of {case['t1']}")
    echo(f"[4/4] label map written on the input grid (same shape and affine: {same}):")
    echo(format_descriptions([describe_image(case["t1"]), describe_image(labels, kind="label")]))
    return {
        "cases": len(found.cases),
        "split": datalist["split"]["counts"],
        "resampled": resampled,
        "label_map": str(labels),
        "same_grid": same,
    }
