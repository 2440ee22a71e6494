"""Time ``mednet.report.overview.write_overview`` on a BraTS-size case; write the figures as JSON.

    python scripts/benchmark_overview.py --out overview.json
    python scripts/benchmark_overview.py --cohort /tmp/glioma_full --repeats 7 --out overview.json

The case: one synthetic glioma phantom of BraTS size (240 x 240 x 155, four sequences;
``generate_cohort("glioma", 1, ..., size="full", seed=7)``, generated into ``--cohort``
unless it is there already), read as ``mednet predict`` reads it
(:func:`mednet.pipeline.case.read_case`), so that ``write_overview`` gets what
:func:`mednet.pipeline.case.predict_case` gives it: the sequences as in-memory
``(1, x, y, z)`` MetaTensors, an int16 label map MetaTensor, the lesion table and the
truth as an array. No network runs: the label map is the truth's tumour shifted by 3
voxels (a prediction a little off), its lesion table measured by
:func:`mednet.localisation.find_lesions`.

Reported: the median seconds of ``write_overview`` over ``--repeats`` calls (after one
warm-up call), and the median seconds of its parts, timed by wrapping the functions it
calls: ``components`` (the lesions' connected components), ``panels`` (:func:`draw_panel`:
the slices scaled, windowed and tinted, the scale bars, less its outlines), ``outlines``
(every outline: :func:`draw_outline`), ``texts`` (``Canvas.save`` less the PNG: Pillow
drawing the queued texts, the file written), ``png`` (:func:`png_bytes`: filtering and
zlib), and ``other`` (the rest: the label map's masks, the slices, the layout, the legend).
Run it on the same ``--cohort`` to compare two versions of the module: the case is the same.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mednet.localisation.lesions import find_lesions  # noqa: E402
from mednet.metrics.localisation import map_labels  # noqa: E402
from mednet.pipeline.case import read_case  # noqa: E402
from mednet.pipeline.diseases import disease_spec  # noqa: E402
from mednet.report import canvas, overview  # noqa: E402
from mednet.synthetic import generate_cohort  # noqa: E402


def case_inputs(cohort: Path) -> tuple[tuple, dict]:
    """``write_overview``'s arguments for the cohort's case, as ``predict_case`` passes them."""
    spec = disease_spec("glioma")
    if not (cohort / "datalist.json").exists():
        generate_cohort("glioma", 1, cohort, size="full", seed=7)
    datalist = json.loads((cohort / "datalist.json").read_text())
    entry = next(e for part in ("training", "validation", "testing") for e in datalist.get(part, []))
    case = {k: str(cohort / v) if k in (*spec.sequences, "label") else v for k, v in entry.items()}
    loaded, _ = read_case(case, spec)
    truth = map_labels(loaded.label[0].numpy().astype(np.int64), *spec.localisation.truth_labels)
    predicted = np.roll(truth, 3, axis=0).astype(np.int16)
    labels = MetaTensor(torch.from_numpy(predicted)[None])
    labels.copy_meta_from(loaded.reference)
    lesions = find_lesions(predicted, np.asarray(loaded.reference.affine, dtype=float),
                           dict(zip(spec.localisation.lesion_values, ["tumour"], strict=False)))  # fmt: skip
    table = [{"value": 0, "name": "background", "colour": "#000000"}, *spec.localisation.label_table]
    values = [*spec.grading.lesion_values, *spec.grading.metastasis_values, *spec.localisation.lesion_values]
    args = (loaded.images, labels, table, values, f"{loaded.case_id}: HGG (p 0.90)")
    return args, {"lesions": lesions, "truth": truth}


def timed_parts(seconds: dict[str, float]):
    """Wrap the functions ``write_overview`` calls so that each call adds its seconds to ``seconds``.

    Exclusive times: a wrapped call inside another (the lesions' outlines that ``draw_panel``
    draws) counts in its own part only.
    """
    inner = [0.0]  # seconds of wrapped calls inside the current one

    def wrap(owner, name, part):
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            outer, inner[0] = inner[0], 0.0
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                seconds[part] += spent - inner[0]
                inner[0] = outer + spent

        setattr(owner, name, timed)
        return owner, name, original

    return [wrap(overview, "_components", "components"), wrap(overview, "draw_panel", "panels"),
            wrap(overview, "draw_outline", "outlines"), wrap(canvas.Canvas, "save", "texts"),
            wrap(canvas, "png_bytes", "png")]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cohort", type=Path, help="the cohort's folder (generated when absent; default: temporary)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmark_overview.json"))
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        cohort = options.cohort or Path(scratch) / "cohort"
        args, kwargs = case_inputs(cohort)
        png = Path(scratch) / "overview.png"
        overview.write_overview(*args, png, **kwargs)  # warm-up: imports, fonts
        totals = []
        for _ in range(options.repeats):
            start = time.perf_counter()
            overview.write_overview(*args, png, **kwargs)
            totals.append(time.perf_counter() - start)
        parts: dict[str, list[float]] = defaultdict(list)
        for _ in range(options.repeats):  # the parts, in calls of their own (the wrapping costs a little)
            seconds: dict[str, float] = defaultdict(float)
            wrapped = timed_parts(seconds)
            try:
                start = time.perf_counter()
                overview.write_overview(*args, png, **kwargs)
                total = time.perf_counter() - start
            finally:
                for owner, name, original in wrapped:
                    setattr(owner, name, original)
            for part, value in seconds.items():
                parts[part].append(value)
            parts["other"].append(total - sum(seconds.values()))
        size = png.stat().st_size
    images, labels = args[0], args[1]
    result = {
        "case": {
            "shape": list(labels.shape[1:]),
            "sequences": list(images),
            "lesions": len(kwargs["lesions"]),
            "images": "in-memory MetaTensors (read_case)",
            "truth": "array",
        },
        "repeats": options.repeats,
        "write_overview_s": {"median": round(statistics.median(totals), 3), "all": [round(t, 3) for t in totals]},
        "parts_median_s": {p: round(statistics.median(v), 3) for p, v in sorted(parts.items())},
        "png_bytes": size,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
        },
    }
    options.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
