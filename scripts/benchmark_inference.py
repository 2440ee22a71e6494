"""mednet's localisation and whole pipeline against the plain MONAI path, side by side in one run.

    python scripts/benchmark_inference.py --repeats 5 --out docs/benchmarks/inference.json

For a BraTS-size four-sequence case (glioma phantom, 240 x 240 x 155, a noisy background),
the real skull-stripped BraTS-style glioma of ``../shared/realdata`` (or ``$MEDNET_REALDATA``) when it is there, and a
paediatric torso (neuroblastoma phantom, ``full`` size), with the same network and the same
weights (the bundle's shipped ``models/model.pt``), alternating in one run:

- **plain MONAI**: ``LoadImaged`` (nibabel), ``EnsureChannelFirstd``, ``ConcatItemsd``,
  ``Orientationd``, ``Spacingd``, ``NormalizeIntensityd``, ``SlidingWindowInferer`` (the
  bundle's ROI, overlap and mode), softmax, ``Invertd`` onto the input grid, argmax, the
  label map saved as ``.nii.gz``; the network built and loaded once (timed as such; for the
  agreement its probabilities also go, untimed, through mednet's lesion rules, the bundle's
  ``Localised``: lesion threshold, smallest lesion, organ components, so that the two maps
  differ only by the inference path);
- **mednet localisation**: :class:`mednet.inference.LocalisationPredictor` (built once) on
  the case's files, then its label map, label table and lesion table written
  (:func:`mednet.localisation.write_localisation`);
- **mednet pipeline**: :func:`mednet.pipeline.predict_case` (read and validate, localise,
  grade, fuse, write every output including the overview PNG);
- **mednet localisation in bfloat16** (``--precision bfloat16``), when the CPU has bfloat16
  units (oneDNN says so: Intel AMX or AVX-512 BF16): the same as mednet's localisation with
  the networks under bfloat16 autocast; its map against float32's and the plain path's.

Reported per case: median seconds of each (after one warm-up), the ratios
(pipeline / plain, mednet localisation / plain, pipeline / mednet localisation), input
voxels per second, peak resident memory of each path (Linux: reset and read VmHWM), and
the Dice of mednet's label map against the plain path's (on the input grid): its argmax, and
its probabilities through mednet's lesion rules (like with like).

Then a cohort of ``--cohort`` full-size cases through ``mednet predict``, reading each
next case while the current one computes and not: cases per minute, and whether both
summaries are identical.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from benchmark_realdata import REALDATA  # scripts/ is not a package: from its folder

from mednet.bundles import BundleSpec
from mednet.inference import LocalisationPredictor
from mednet.localisation.outputs import LabelScheme, LocalisationResult, write_localisation
from mednet.pipeline.case import Predictors, predict_case
from mednet.pipeline.diseases import disease_spec
from mednet.synthetic import generate_cohort
from mednet.transforms import Localised

#: The CPU has bfloat16 matrix units (oneDNN: Intel AMX or AVX-512 BF16): ``--precision bfloat16`` is timed too.
BFLOAT16_UNITS = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class PlainMonai:
    """The plain MONAI path of a segmentation bundle: its network and weights, MONAI's transforms."""

    def __init__(self, spec: BundleSpec, out: Path, device: str = "cpu"):
        from monai.inferers import SlidingWindowInferer
        from monai.transforms import (
            Activationsd,
            AsDiscreted,
            Compose,
            ConcatItemsd,
            EnsureChannelFirstd,
            Invertd,
            LoadImaged,
            NormalizeIntensityd,
            Orientationd,
            SaveImaged,
            Spacingd,
        )

        self.device = torch.device(device)
        parser = spec.parser(device=self.device)
        self.network = parser.get_parsed_content("network_def", instantiate=True)
        spec.load_weights(self.network, None, self.device)
        keys = list(spec.sequences)
        self.keys = keys
        self.pre = Compose([
            LoadImaged(keys, image_only=True), EnsureChannelFirstd(keys), ConcatItemsd(keys, "image"),
            Orientationd("image", axcodes="RAS"), Spacingd("image", pixdim=parser["pixdim"], mode="bilinear"),
            NormalizeIntensityd("image", nonzero=True, channel_wise=True),
        ])  # fmt: skip
        self.inferer = SlidingWindowInferer(parser["roi_size"], sw_batch_size=parser["sw_batch_size"],
                                            overlap=parser["sw_overlap"], mode="gaussian")  # fmt: skip
        self.invert = Compose([
            Activationsd("pred", softmax=True),
            Invertd("pred", transform=self.pre, orig_keys="image", nearest_interp=False, to_tensor=True),
        ])  # fmt: skip
        self.post = Compose([
            AsDiscreted("pred", argmax=True),
            SaveImaged("pred", output_dir=str(out), output_postfix="plain", separate_folder=False, print_log=False,
                       resample=False, output_dtype=np.uint8),
        ])  # fmt: skip
        # mednet's lesion rules (lesion threshold, smallest lesion, organ components), for the agreement only
        self.rules = next(t for t in parser.get_parsed_content("postprocessing", instantiate=True).transforms
                          if isinstance(t, Localised))  # fmt: skip

    def probabilities(self, case: dict) -> dict:
        """The case's class probabilities on its input grid (``pred``), as the plain path makes them."""
        data = self.pre({k: case[k] for k in self.keys})
        with torch.no_grad():
            data["pred"] = self.inferer(data["image"][None].to(self.device), self.network)[0].cpu()
        return self.invert(data)

    def __call__(self, case: dict) -> None:
        """Localise one case and save its label map (the argmax)."""
        self.post(self.probabilities(case))

    def with_rules(self, case: dict) -> np.ndarray:
        """The plain path's probabilities through mednet's lesion rules: the ``(x, y, z)`` label map."""
        return np.asarray(self.rules(self.probabilities(case))["pred"][0])


#: The real BraTS-style glioma in ../shared/realdata or $MEDNET_REALDATA (skull-stripped, 240 x 240 x 155,
#: four sequences).
REAL_GLIOMA = REALDATA / "tcga_lgg_du7294_atlas"


def _case(disease: str, root: Path) -> dict:
    cohort = generate_cohort(disease, 1, root, size="full", seed=7)
    case = json.loads(cohort.datalist.read_text())
    entry = next(c for p in ("training", "validation", "testing") for c in case.get(p, []))
    return {k: (str(root / v) if k not in ("case_id", "patient_id", "class", "clinicians") else v)
            for k, v in entry.items() if k != "label"}  # fmt: skip


def _real_glioma() -> dict | None:
    names = {"t1": "t1", "t1c": "t1c", "t2": "t2", "flair": "fla"}
    files = {k: REAL_GLIOMA / f"TCGA-DU-7294_{v}_bet.nii.gz" for k, v in names.items()}
    if not all(f.is_file() for f in files.values()):
        return None
    return {"case_id": "TCGA-DU-7294", "patient_id": "TCGA-DU-7294", **{k: str(f) for k, f in files.items()}}


def cohort_throughput(disease: str, cases: int, work: Path, device: str = "cpu") -> dict:
    """A cohort of ``cases`` full-size cases: ``mednet predict`` with the files overlapped or not, and localisation.

    Three passes over the same cases (given without their truth or class, as a user's
    unlabelled cases: no evaluation), in one run: mednet's localisation alone (the
    predictor built once, each case read, localised and its label map and tables written,
    one after the other), ``predict_cohort`` reading and writing in turn, and
    ``predict_cohort`` reading the next case and writing the last one while a case
    computes. The per-case ratio of the last to the first is the target's "whole
    pipeline per case / mednet's localisation" for a cohort.
    """
    from mednet.pipeline import predict_cohort

    cohort = generate_cohort(disease, cases, work / "data", size="full", seed=11)
    spec = disease_spec(disease)
    entries = [c for p in ("training", "validation", "testing") for c in json.loads(cohort.datalist.read_text())[p]]
    entries = [{k: (str(cohort.datalist.parent / v) if k in spec.sequences else v)
                for k, v in c.items() if k != "label"} for c in entries]  # fmt: skip
    localiser = LocalisationPredictor(spec.localisation, device)
    scheme = LabelScheme(list(spec.localisation.label_table), {})
    start = time.perf_counter()
    for case in entries:
        found = localiser(case)
        write_localisation(LocalisationResult(found.array, found.lesions), found.labels, work / "localisation",
                           case["case_id"], scheme, overwrite=True)  # fmt: skip
    minutes = {"localisation": (time.perf_counter() - start) / 60}
    # the cases as a user's unlabelled ones (no truth, no class): what predict does, without the evaluation
    unlabelled = work / "unlabelled.json"
    unlabelled.write_text(json.dumps({"testing": [{k: v for k, v in c.items() if k not in ("label", "class")}
                                                  for c in entries]}))  # fmt: skip
    for prefetch in (False, True):
        out = work / f"out-{prefetch}"
        start = time.perf_counter()
        result = predict_cohort(unlabelled, disease, out, device=device, partition="testing", prefetch=prefetch,
                                progress=lambda line: None)  # fmt: skip
        minutes[prefetch] = (time.perf_counter() - start) / 60
        assert result["failed"] == 0, result
    same = (work / "out-False" / "summary.csv").read_bytes() == (work / "out-True" / "summary.csv").read_bytes()
    return {
        "cases": cases, "disease": disease,
        "cases_per_minute": {"localisation_alone": round(cases / minutes["localisation"], 2),
                             "pipeline_files_in_turn": round(cases / minutes[False], 2),
                             "pipeline_files_overlapped": round(cases / minutes[True], 2)},
        "overlap_speed_up": round(minutes[False] / minutes[True], 3),
        "pipeline_per_case_over_localisation": {"files_in_turn": round(minutes[False] / minutes["localisation"], 3),
                                                "files_overlapped": round(minutes[True] / minutes["localisation"], 3)},
        "identical_summaries": same,
    }  # fmt: skip


def benchmark(disease: str, repeats: int, work: Path, case: dict | None = None, device: str = "cpu") -> dict:
    """Time the paths on ``case`` (default: one ``full``-size phantom of ``disease``), alternating, on ``device``."""
    spec = disease_spec(disease)
    case = case or _case(disease, work / "data")
    plain = PlainMonai(spec.localisation, work / "plain", device)
    localiser = LocalisationPredictor(spec.localisation, device)
    predictors = Predictors(spec, localiser, Predictors.build(spec, device).grade)
    scheme = LabelScheme(list(spec.localisation.label_table), {})
    maps: dict[str, np.ndarray] = {}

    def run_plain() -> None:
        plain(case)

    def localise(predictor: LocalisationPredictor, name: str) -> None:
        found = predictor(case)
        write_localisation(LocalisationResult(found.array, found.lesions), found.labels, work / name,
                           case["case_id"], scheme, overwrite=True)  # fmt: skip
        maps[name] = found.array

    def run_pipeline() -> None:
        predict_case(case, predictors, work / "pipeline")

    paths = {"plain_monai": run_plain, "mednet_localisation": lambda: localise(localiser, "mednet"),
             "mednet_pipeline": run_pipeline}  # fmt: skip
    if BFLOAT16_UNITS and localiser.device.type == "cpu":
        fast = LocalisationPredictor(spec.localisation, device, precision="bfloat16")
        paths["mednet_localisation_bfloat16"] = lambda: localise(fast, "bfloat16")
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    peaks: dict[str, float | None] = {}
    gpu_peaks: dict[str, float] = {}
    gpu = localiser.device.type == "cuda"
    for run in paths.values():  # warm-up
        run()
    for _ in range(repeats):
        for name, run in paths.items():
            resettable = _reset_peak()
            if gpu:
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)  # every path ends with its map on the CPU: synchronised
            peaks[name] = max(filter(None, [peaks.get(name), _peak_mb() if resettable else None]), default=None)
            if gpu:
                gpu_peaks[name] = max(gpu_peaks.get(name, 0.0), round(torch.cuda.max_memory_allocated() / 2**20, 1))
    reference = nib.load(case[spec.localisation.sequences[0]])
    plain_map = np.asarray(nib.load(next((work / "plain").glob("*plain.nii.gz"))).dataobj)
    mednet_map = np.asarray(nib.load(work / "pipeline" / case["case_id"] / f"{case['case_id']}_labels.nii.gz").dataobj)
    lesion, plain_lesion = (np.isin(m, spec.localisation.lesion_values) for m in (mednet_map, plain_map))
    both = lesion.sum() + plain_lesion.sum()
    agreement = float(np.mean(mednet_map == plain_map))
    # like with like: the plain path's probabilities through the same lesion rules (untimed)
    ruled = plain.with_rules(case)
    ruled_lesion = np.isin(ruled, spec.localisation.lesion_values)
    ruled_both = lesion.sum() + ruled_lesion.sum()
    median = {name: statistics.median(values) for name, values in seconds.items()}
    voxels = int(np.prod(reference.shape)) * len(spec.localisation.sequences)
    bfloat16 = {}
    if "bfloat16" in maps:
        fast_lesion = np.isin(maps["bfloat16"], spec.localisation.lesion_values)
        bfloat16 = {
            "plain_over_mednet_localisation_bfloat16":
                round(median["plain_monai"] / median["mednet_localisation_bfloat16"], 3),
            "lesion_dice_bfloat16_vs_float32": _dice(fast_lesion, lesion),
            "lesion_dice_bfloat16_vs_plain_with_mednet_rules": _dice(fast_lesion, ruled_lesion),
            "voxel_agreement_bfloat16_vs_float32": round(float(np.mean(maps["bfloat16"] == mednet_map)), 5),
        }  # fmt: skip
    return {
        "case": {"shape": list(reference.shape), "sequences": list(spec.localisation.sequences),
                 "spacing_mm": [round(float(z), 3) for z in reference.header.get_zooms()]},
        "median_seconds": {k: round(v, 3) for k, v in median.items()},
        "all_seconds": {k: [round(x, 3) for x in v] for k, v in seconds.items()},
        "ratios": {
            "plain_over_mednet_localisation": round(median["plain_monai"] / median["mednet_localisation"], 3),
            "pipeline_over_plain_localisation": round(median["mednet_pipeline"] / median["plain_monai"], 3),
            "pipeline_over_mednet_localisation": round(median["mednet_pipeline"] / median["mednet_localisation"], 3),
        },
        "input_voxels_per_second": {k: round(voxels / v) for k, v in median.items()},
        "peak_rss_mb": peaks,
        **({"peak_gpu_mb": gpu_peaks} if gpu else {}),
        "lesion_dice_mednet_vs_plain": round(2.0 * float((lesion & plain_lesion).sum()) / both, 4) if both else None,
        "lesion_voxels": {"mednet": int(lesion.sum()), "plain": int(plain_lesion.sum())},
        "voxel_agreement_mednet_vs_plain": round(agreement, 5),
        "lesion_dice_mednet_vs_plain_with_mednet_rules":
            round(2.0 * float((lesion & ruled_lesion).sum()) / ruled_both, 4) if ruled_both else None,
        "voxel_agreement_mednet_vs_plain_with_mednet_rules": round(float(np.mean(mednet_map == ruled)), 5),
        **bfloat16,
    }  # fmt: skip


def _dice(a: np.ndarray, b: np.ndarray) -> float | None:
    both = int(a.sum() + b.sum())
    return round(2.0 * float((a & b).sum()) / both, 4) if both else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--diseases", default="glioma,neuroblastoma")
    parser.add_argument("--cohort", type=int, default=20, help="cases of the cohort throughput run (0: none)")
    parser.add_argument("--out", default="inference.json")
    parser.add_argument("--device", default="cpu",
                        help="cpu (default) or cuda: every path on it (mednet in its default precision there, "
                        "float16 autocast on a GPU; the plain path in float32)")  # fmt: skip
    args = parser.parse_args()
    results = {"machine": {"platform": platform.platform(), "torch": torch.__version__,
                           "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                           "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                           "cpu_bfloat16_units": BFLOAT16_UNITS, "device": args.device},
               "bundles": {}, "cases": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        runs = [(d, d, None) for d in args.diseases.split(",")]
        if "glioma" in args.diseases.split(",") and (real := _real_glioma()):
            runs.insert(1, ("glioma_real_brats_style", "glioma", real))
        for name, disease, case in runs:
            results["bundles"].update(disease_spec(disease).versions)
            results["cases"][name] = benchmark(disease, args.repeats, Path(tmp) / name, case, args.device)
            print(name, json.dumps(results["cases"][name]["ratios"]),
                  results["cases"][name].get("plain_over_mednet_localisation_bfloat16", ""), flush=True)
        if args.cohort:
            disease = args.diseases.split(",")[0]
            results["cohort"] = cohort_throughput(disease, args.cohort, Path(tmp) / "cohort", args.device)
            print("cohort", json.dumps(results["cohort"]), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
