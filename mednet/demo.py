"""The end-to-end demo: what ``mednet demo`` runs.

For now it generates a synthetic glioma cohort (each sequence on its own grid, as
real protocols are), makes its patient-level split, brings one multi-sequence case
onto one grid, writes its label map back on the input's exact grid, and shows the
file summary a researcher sees first. The pipeline stages join it as they land.
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
        n_cases: synthetic glioma cases to generate.
        seed: random seed.
        echo: where progress lines go.

    Returns:
        ``{"cases", "split", "resampled", "label_map", "same_grid"}``.

    Raises:
        RuntimeError: a written label map is not on its input's grid (a bug).
    """
    from mednet.io import build_datalist, load_case, load_datalist, read_manifest, save_datalist, write_image
    from mednet.io.info import describe_image, format_descriptions
    from mednet.synthetic import generate_cohort
    from mednet.synthetic.preview import write_preview

    out = Path(out)
    cohort = generate_cohort(
        "glioma", n_cases, out / "data", size="small", seed=seed, mixed_grids=True, workers=os.cpu_count() or 1
    )
    preview = write_preview(cohort.root, out / "preview.png", n_cases=min(n_cases, 3))
    echo(f"[1/4] wrote {n_cases} synthetic glioma cases to {cohort.root} (look at {preview})")

    found = read_manifest(cohort.manifest, require=["t1", "t1c", "t2", "flair"])
    datalist = build_datalist(found, seed=seed)
    path = save_datalist(datalist, out / "datalist.json")
    echo(f"[2/4] {found.report().splitlines()[0]}; patient-level split written to {path}")
    for name, counts in datalist["split"]["counts"].items():
        echo(f"      {name:<10} {counts['patients']} patients {counts['classes']}")

    saved = load_datalist(path)
    case = saved["testing"][0] if saved["testing"] else saved["training"][0]
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
