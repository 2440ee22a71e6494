"""The three segmentation bundles: every config runs through MONAI's bundle machinery.

Tiny settings (one epoch, 32 x 32 x 16 patches, four ``small`` synthetic cases): these
tests check wiring, files and geometry, not accuracy (the benchmark measures that).
"""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from mednet.io import read_image
from tests.bundles.helpers import BUNDLES, SEGMENTATION, TINY, config, run_bundle, torchrun_train
from tests.conftest import write_nifti

pytestmark = pytest.mark.bundle

SHARED_KEYS = ("image_keys", "label_table", "num_classes", "pixdim", "roi_size", "network_def")


def _same_grid(written, reference) -> None:
    out, ref = nib.load(written), nib.load(reference)
    assert out.shape == ref.shape
    np.testing.assert_array_equal(out.header.get_sform(), ref.header.get_sform())
    np.testing.assert_array_equal(out.header.get_qform(), ref.header.get_qform())
    assert int(out.header["sform_code"]) == int(ref.header["sform_code"])
    assert int(out.header["qform_code"]) == int(ref.header["qform_code"])


@pytest.mark.parametrize("bundle", SEGMENTATION)
def test_configs_agree(bundle):
    """What training and inference must share is the same in both configs and in the metadata."""
    train, infer = config(bundle, "train"), config(bundle, "inference")
    for key in SHARED_KEYS:
        assert train[key] == infer[key], key
    meta = json.loads((BUNDLES / bundle / "configs" / "metadata.json").read_text())
    channels = meta["network_data_format"]["inputs"]["image"]["channel_def"]
    assert [channels[str(i)].lower() for i in range(len(channels))] == train["image_keys"]
    for name in ("LICENSE", "docs/README.md", "configs/logging.conf"):
        assert (BUNDLES / bundle / name).is_file(), name


@pytest.mark.parametrize("bundle", SEGMENTATION)
def test_train_writes_checkpoint_and_curves(bundle, tiny_checkpoints):
    """train.json: a best checkpoint that loads weights-only, TensorBoard loss and per-class Dice curves."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    work = tiny_checkpoints[bundle]
    state = torch.load(work / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert any(k.endswith("weight") for k in state)
    tags = set()
    for events in (work / "eval").glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    names = [row["name"] for row in _label_table(bundle)]
    assert "train_loss" in tags and "val_mean_dice" in tags
    assert {f"val_dice_{n}" for n in names} <= tags


def _label_table(bundle):
    table = config(bundle, "train")["label_table"]
    if isinstance(table, str):  # glioma: an expression choosing whole tumour or sub-regions
        return [{"value": 1, "name": "tumour"}]
    return table


@pytest.mark.parametrize("bundle", SEGMENTATION)
def test_inference_and_evaluate(bundle, tiny_cohorts, tiny_checkpoints, tmp_path):
    """inference.json writes the case's files on its input grid; evaluate.json adds the metrics."""
    datalist = tiny_cohorts[bundle]
    ckpt = tiny_checkpoints[bundle] / "models" / "model.pt"
    out = tmp_path / "eval"
    run_bundle(bundle, ["inference", "evaluate"], datalist=str(datalist), ckpt_path=str(ckpt), output_dir=str(out),
               roi_size=TINY["roi_size"])  # fmt: skip
    case = json.loads(datalist.read_text())["testing"][0]
    cid = case["case_id"]
    files = {p.name for p in (out / cid).iterdir()}
    assert files == {f"{cid}_labels.nii.gz", f"{cid}_labels.json", f"{cid}_lesions.json", f"{cid}_lesions.csv"}
    reference = datalist.parent / case[config(bundle, "inference")["image_keys"][0]]
    _same_grid(out / cid / f"{cid}_labels.nii.gz", reference)
    table = json.loads((out / cid / f"{cid}_labels.json").read_text())["labels"]
    assert table[0]["name"] == "background" and len(table) == len(_label_table(bundle)) + 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["summary"]["cases"] == 1 and metrics["cases"][0]["case_id"] == cid
    assert (out / "metrics_cases.csv").read_text().startswith("case_id,patient_id,dice_")


@pytest.mark.slow
@pytest.mark.parametrize("bundle", SEGMENTATION)
def test_multi_gpu_train_runs_under_torchrun(bundle, tiny_cohorts, tmp_path):
    """multi_gpu_train.json under torchrun: two CPU processes (gloo) with a DistributedSampler."""
    result = torchrun_train(bundle, tiny_cohorts[bundle], tmp_path, TINY)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "models" / "model.pt").is_file()


def _reoriented(src_case: dict, base, out_dir, orientation: str) -> dict:
    """The case's sequences rewritten on a grid of ``orientation`` (RAS, LPS, LAS) or anisotropic voxels."""
    case = {"case_id": f"case_{orientation}"}
    for key, rel in src_case.items():
        if key in ("case_id", "patient_id", "label", "class") or not isinstance(rel, str):
            continue
        data = np.asarray(nib.load(base / rel).dataobj).astype(np.int16)
        spacing = {"ANISO": (0.7, 1.3, 5.0)}.get(orientation, (1.1, 1.2, 3.0))
        signs = {"RAS": (1, 1, 1), "LPS": (-1, -1, 1), "LAS": (-1, 1, 1), "ANISO": (1, -1, 1)}[orientation]
        flipped = data[:: signs[0], :: signs[1], :: signs[2]]
        affine = np.diag([s * d for s, d in zip(signs, spacing, strict=True)] + [1.0])
        affine[:3, 3] = [-s * d * (n - 1) / 2 for s, d, n in zip(signs, spacing, data.shape, strict=True)]
        case[key] = str(write_nifti(out_dir / f"{case['case_id']}_{key}.nii.gz", flipped, affine))
    return case


def test_label_map_on_input_grid_for_every_orientation(tiny_cohorts, tiny_checkpoints, tmp_path):
    """RAS, LPS, LAS and anisotropic inputs: the map has the input's shape, sform and qform, and
    the RAS and LPS/LAS copies of one image (same voxels in world space) get the same labels."""
    bundle = "glioma_mri_segmentation"
    datalist = tiny_cohorts[bundle]
    source = json.loads(datalist.read_text())["testing"][0]
    cases = [_reoriented(source, datalist.parent, tmp_path / "in", o) for o in ("RAS", "LPS", "LAS", "ANISO")]
    custom = tmp_path / "datalist.json"
    custom.write_text(json.dumps({"training": [], "validation": [], "testing": cases}))
    ckpt = tiny_checkpoints[bundle] / "models" / "model.pt"
    # low threshold so that even an undertrained model's map has voxels to compare
    run_bundle(bundle, ["inference"], datalist=str(custom), ckpt_path=str(ckpt), output_dir=str(tmp_path / "out"),
               roi_size=TINY["roi_size"], min_lesion_mm3=0.0)  # fmt: skip
    maps = {}
    for case in cases:
        cid = case["case_id"]
        written = tmp_path / "out" / cid / f"{cid}_labels.nii.gz"
        _same_grid(written, case["t1"])
        maps[cid] = np.asarray(nib.load(written).dataobj)
    np.testing.assert_array_equal(maps["case_LPS"][::-1, ::-1, :], maps["case_RAS"])
    np.testing.assert_array_equal(maps["case_LAS"][::-1, :, :], maps["case_RAS"])


def test_inference_on_real_abdominal_mri(realdata, tiny_checkpoints, tmp_path):
    """The neuroblastoma bundle on a real limited-field abdominal MRI (LPS, 3 mm): an aligned map, no accuracy claim.

    The scan is one sequence; it stands in for both of the bundle's channels (T2w, T1c).
    """
    bundle = "neuroblastoma_mri_segmentation"
    image = realdata / "totalsegmentator_examples" / "example_mr_sm.nii.gz"
    local = tmp_path / "mr" / "example_mr_t2w.nii.gz"
    local.parent.mkdir()
    shutil.copyfile(image, local)  # the copy in tmp_path, so the test never writes beside the shared data
    custom = tmp_path / "datalist.json"
    custom.write_text(
        json.dumps(
            {"training": [], "validation": [], "testing": [{"case_id": "mr", "t2w": str(local), "t1c": str(local)}]}
        )
    )
    ckpt = tiny_checkpoints[bundle] / "models" / "model.pt"
    run_bundle(bundle, ["inference"], datalist=str(custom), ckpt_path=str(ckpt), output_dir=str(tmp_path / "out"),
               roi_size=TINY["roi_size"])  # fmt: skip
    written = tmp_path / "out" / "mr" / "mr_labels.nii.gz"
    _same_grid(written, image)
    labels = read_image(written, kind="label")
    assert labels.shape[1:] == nib.load(image).shape
    values = set(np.unique(np.asarray(labels)).astype(int).tolist())
    assert values <= {0} | {row["value"] for row in config(bundle, "inference")["label_table"]}
    assert (tmp_path / "out" / "mr" / "mr_lesions.csv").read_text().startswith("lesion_id,label,class_name")


def test_a_case_lacking_sequences_is_localised_by_the_bundle(tiny_cohorts, tiny_checkpoints, tmp_path):
    """``python -m monai.bundle run`` too: a glioma case with T1c and FLAIR only (as BRATS 2013 gives them)."""
    bundle = "glioma_mri_segmentation"
    datalist = tiny_cohorts[bundle]
    case = {k: v for k, v in json.loads(datalist.read_text())["testing"][0].items() if k not in ("t1", "t2")}
    case = {k: (str(datalist.parent / v) if k in ("t1c", "flair", "label") else v) for k, v in case.items()}
    nothing = {"case_id": "NO_SEQUENCE", "label": case["label"]}
    custom = tmp_path / "datalist.json"
    custom.write_text(json.dumps({"training": [], "validation": [], "testing": [case]}))
    ckpt = tiny_checkpoints[bundle] / "models" / "model.pt"
    run_bundle(bundle, ["inference"], datalist=str(custom), ckpt_path=str(ckpt), output_dir=str(tmp_path / "out"),
               roi_size=TINY["roi_size"])  # fmt: skip
    _same_grid(tmp_path / "out" / case["case_id"] / f"{case['case_id']}_labels.nii.gz", case["t1c"])

    def refused(partitions: dict, out: str) -> list[str]:
        """The messages of the error a bundle run on ``partitions`` ends with (MONAI wraps mednet's)."""
        custom.write_text(json.dumps(partitions))
        with pytest.raises(RuntimeError) as caught:
            run_bundle(bundle, ["inference"], datalist=str(custom), ckpt_path=str(ckpt),
                       output_dir=str(tmp_path / out), roi_size=TINY["roi_size"])  # fmt: skip
        causes = [caught.value]
        while causes[-1].__cause__ is not None:
            causes.append(causes[-1].__cause__)
        return [str(c) for c in causes]

    said = refused({"training": [], "validation": [], "testing": [case, nothing]}, "o2")
    assert any("NO_SEQUENCE (no t1, t1c, t2 or flair)" in c for c in said), said
    said = refused({"training": [case], "validation": [], "testing": []}, "o3")  # said, not a run doing nothing
    assert any("partition 'testing': expected at least one case, found none" in c for c in said), said
    assert not (tmp_path / "o3").exists() or not any((tmp_path / "o3").iterdir())


def test_fine_tuning_from_shipped_style_weights_with_a_new_sequence(tiny_checkpoints, tmp_path):
    """train.json with init_ckpt: starts from a checkpoint, and reads a sequence it did not (native T1) from zero."""
    from mednet.synthetic import generate_cohort

    bundle = "neuroblastoma_mri_segmentation"
    generate_cohort("neuroblastoma", 4, tmp_path / "data", size="small", seed=3, workers=1, optional=("t1",))
    datalist = tmp_path / "data" / "datalist.json"
    doc = json.loads(datalist.read_text())
    cases = sorted((c for p in ("training", "validation", "testing") for c in doc[p]), key=lambda c: c["case_id"])
    doc.update(training=cases[:2], validation=cases[2:3], testing=cases[3:])
    datalist.write_text(json.dumps(doc))
    start = torch.load(tiny_checkpoints[bundle] / "models" / "model.pt", weights_only=True)
    run_bundle(bundle, ["train"], datalist=str(datalist), ckpt_dir=str(tmp_path / "models"),
               output_dir=str(tmp_path / "eval"), init_ckpt=str(tiny_checkpoints[bundle] / "models" / "model.pt"),
               image_keys=["t2w", "t1c", "t1"], init_keys=["t2w", "t1c"], **TINY)  # fmt: skip
    tuned = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    first = "model.0.conv.unit0.conv.weight"
    assert tuple(tuned[first].shape[:2]) == (start[first].shape[0], 3)
    fresh = torch.nn.init.kaiming_uniform_(torch.empty_like(start[first]), a=5**0.5)  # a layer built anew
    moved = float((tuned[first][:, :2] - start[first]).abs().mean())
    assert moved < 0.5 * float((fresh - start[first]).abs().mean())  # it started from the checkpoint

    # mednet predict with the overrides it was trained with reads the native T1 from the case too
    from mednet.pipeline import predict_cohort

    settings = {bundle: {"image_keys": ["t2w", "t1c", "t1"], "roi_size": TINY["roi_size"]}}
    run = predict_cohort(datalist, "neuroblastoma", tmp_path / "out", device="cpu", partition="testing",
                         models={bundle: tmp_path / "models" / "model.pt"}, settings=settings,
                         progress=lambda line: None)  # fmt: skip
    record = json.loads((tmp_path / "out" / cases[3]["case_id"] / f"{cases[3]['case_id']}.json").read_text())
    assert run["failed"] == 0 and record["sequences_used"]["localisation"] == ["t2w", "t1c", "t1"]
    assert set(record["inputs"]) == {"t2w", "t1c", "t1"}


def test_a_wider_network_fine_tunes_from_shipped_style_weights(tiny_cohorts, tiny_checkpoints, tmp_path):
    """train.json with init_ckpt and ``network_def#channels`` wider than the checkpoint's, then inference with them."""
    bundle, wide = "cpa_mri_segmentation", [20, 40, 80, 160, 320]
    start = torch.load(tiny_checkpoints[bundle] / "models" / "model.pt", weights_only=True)
    run_bundle(bundle, ["train"], datalist=str(tiny_cohorts[bundle]), ckpt_dir=str(tmp_path / "models"),
               output_dir=str(tmp_path / "eval"), init_ckpt=str(tiny_checkpoints[bundle] / "models" / "model.pt"),
               **{"network_def#channels": wide}, **TINY)  # fmt: skip
    tuned = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    first = "model.0.conv.unit0.conv.weight"
    assert tuned[first].shape[0] == 20 and start[first].shape[0] == 16
    moved = float((tuned[first][:16] - start[first]).abs().mean())
    assert moved < 0.5 * float(start[first].abs().mean())  # it started from the checkpoint
    case = json.loads(tiny_cohorts[bundle].read_text())["testing"][0]
    run_bundle(bundle, ["inference"], datalist=str(tiny_cohorts[bundle]), ckpt_path=str(tmp_path / "models" / "model.pt"),
               output_dir=str(tmp_path / "out"), roi_size=TINY["roi_size"], **{"network_def#channels": wide})  # fmt: skip
    image = tiny_cohorts[bundle].parent / case["t1c"]
    _same_grid(tmp_path / "out" / case["case_id"] / f"{case['case_id']}_labels.nii.gz", image)


@pytest.mark.parametrize("bundle", SEGMENTATION)
def test_training_volumes_cut_by_a_field_of_view_plane(bundle, tiny_cohorts):
    """``fov_cut_prob``: a training volume loses a wedge beyond an oblique plane before its normalisation.

    As in a reformatted scan, the cut voxels are 0 in every sequence before and after
    ``NormalizeIntensityd(nonzero=True)``, and background in the label; the rest of the
    volume is as it was. At 0 (the shipped weights' recipe) the transform is not in the
    pipeline at all: the same transforms, the same random draws as before it existed.
    """
    from monai.bundle import ConfigParser
    from monai.transforms import Compose, NormalizeIntensityd, Spacingd

    from mednet.transforms import RandFieldOfViewCutd

    def transforms(prob: float) -> list:
        parser = ConfigParser()
        parser.read_config(str(BUNDLES / bundle / "configs" / "train.json"))
        parser.update({"bundle_root": str(BUNDLES / bundle), "datalist": str(tiny_cohorts[bundle]),
                       "num_workers": 0, "cache_rate": 0.0})  # fmt: skip
        assert parser["fov_cut_prob"] == 0.0  # the shipped weights were trained without it: a recipe turns it on
        parser["fov_cut_prob"] = prob
        return list(parser.get_parsed_content("train#preprocessing").transforms)

    plain, cut = transforms(0.0), transforms(1.0)
    assert not any(isinstance(t, RandFieldOfViewCutd) for t in plain) and len(cut) == len(plain) + 1
    at = next(i for i, t in enumerate(cut) if isinstance(t, RandFieldOfViewCutd))
    assert isinstance(cut[at - 1], Spacingd) and isinstance(cut[at + 1], NormalizeIntensityd)
    case = json.loads(tiny_cohorts[bundle].read_text())["training"][0]
    case = {k: (str(tiny_cohorts[bundle].parent / v) if isinstance(v, str) and k not in ("case_id", "patient_id", "class")
                else v) for k, v in case.items()}  # fmt: skip
    before = Compose(plain[:at])(case)
    pipeline = Compose(cut[: at + 2])
    pipeline.set_random_state(seed=0)
    after = pipeline(case)
    gone = (after["image"] == 0).all(dim=0) & (before["image"] != 0).any(dim=0)
    assert 0.02 <= float(gone.float().mean()) <= 0.3  # a wedge of the volume, normalised around it
    assert not torch.any(after["label"][0][gone] > 0) and torch.all(after["image"][:, gone] == 0)
    kept = ~(after["image"] == 0).all(dim=0)
    assert torch.equal(after["label"][0][kept], before["label"][0][kept])


def test_a_reformatted_case_is_filled_and_left_background_by_the_bundle(tiny_cohorts, tiny_checkpoints, tmp_path):
    """``python -m monai.bundle run`` too: a case acquired obliquely and reformatted onto RAS axes has zero-filled
    corners; FieldOfViewFilld's mask goes through the DataLoader to Localised, and with every other voxel made a
    lesion (``lesion_threshold`` 1e-6) the map is background exactly there."""
    from nibabel.affines import from_matvec
    from nibabel.processing import resample_to_output
    from scipy.spatial.transform import Rotation

    bundle = "glioma_mri_segmentation"
    datalist = tiny_cohorts[bundle]
    source = json.loads(datalist.read_text())["testing"][0]
    rotation = from_matvec(Rotation.from_euler("xz", [10, 20], degrees=True).as_matrix(), [0, 0, 0])
    case = {"case_id": "reformatted"}
    for key in ("t1", "t1c", "t2", "flair"):
        image = nib.load(datalist.parent / source[key])
        oblique = nib.Nifti1Image(np.asarray(image.dataobj, dtype=np.float32), rotation @ image.affine)
        case[key] = str(tmp_path / f"reformatted_{key}.nii.gz")
        nib.save(resample_to_output(oblique, voxel_sizes=image.header.get_zooms()[:3], order=1), case[key])
    zero = np.asarray(nib.load(case["t1"]).dataobj) == 0
    assert zero.mean() > 0.1  # the corners
    custom = tmp_path / "datalist.json"
    custom.write_text(json.dumps({"training": [], "validation": [], "testing": [case]}))
    ckpt = tiny_checkpoints[bundle] / "models" / "model.pt"
    run_bundle(bundle, ["inference"], datalist=str(custom), ckpt_path=str(ckpt), output_dir=str(tmp_path / "out"),
               roi_size=TINY["roi_size"], min_lesion_mm3=0.0, lesion_threshold=1e-6)  # fmt: skip
    written = tmp_path / "out" / "reformatted" / "reformatted_labels.nii.gz"
    _same_grid(written, case["t1"])
    labels = np.asarray(nib.load(written).dataobj)
    np.testing.assert_array_equal(labels == 0, zero)  # background beyond the field of view, lesion everywhere else
