"""The MONAI Label app ``mednet label serve`` starts (imported only inside MONAI Label's environment).

:class:`MednetApp` reads ``APP/mednet-app.json`` (written by :func:`mednet.label.serve.prepare_app`)
and serves, for one disease:

- ``<localisation bundle>`` (e.g. ``glioma_mri_segmentation``): MONAI Label's own
  ``BundleInferTask`` on the bundle copied under ``APP/model/``: the label map its
  ``inference.json`` writes, on the study's grid (auto-segmentation in 3D Slicer / OHIF);
- ``<disease>_pipeline``: mednet's whole pipeline on the study (:func:`mednet.pipeline.predict_case`:
  localise, grade each sequence, fuse): the same kind of label map, and in the result's JSON
  the grading: the call (``indeterminate`` when unsure or unlike the training cases, with
  the fused probabilities), each sequence's own call, the lesions with their volumes, the
  plausibility flags. A classification cannot ride on one image and one forward pass (it
  needs the lesion map, the slices of each sequence and the fusion), so it comes with the
  segmentation that it is about;
- a trainer for the localisation bundle (``Train`` in the annotator's client): MONAI
  Label's ``BundleTrainTask`` running the bundle's own ``train.json`` on the studies that
  have a final label, starting from the served weights; the best weights replace the served
  ones (both tasks reload them).

A study is one stacked NIfTI per case (channels last, the bundle's sequences in order, as
``mednet bundle studies`` writes). The bundles' training reads one file per sequence, so
the trainer splits each labelled study once into ``APP/train-cache/``.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

import nibabel as nib
from monai.handlers import CheckpointLoader
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random
from monailabel.tasks.infer.bundle import BundleInferTask
from monailabel.tasks.train.bundle import BundleTrainTask

import mednet
from mednet.bundles import BundleSpec
from mednet.bundles.locate import weights_record
from mednet.io.atomic import write_json_atomic
from mednet.label.serve import APP_FILE

logger = logging.getLogger(__name__)


def study_id(path: os.PathLike | str) -> str:
    """A study's id as MONAI Label's datastore names it: the file name without ``.nii.gz`` / ``.nii``."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def split_study(study: os.PathLike | str, sequences: list[str], folder: Path) -> dict[str, str]:
    """Write a stacked study's channels as one NIfTI per sequence in ``folder`` (kept while newer); key -> path.

    Raises:
        ValueError: the study is not 4D with one channel per sequence.
    """
    study = Path(study)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {key: folder / f"{key}.nii.gz" for key in sequences}
    if all(p.is_file() and p.stat().st_mtime >= study.stat().st_mtime for p in paths.values()):
        return {k: str(p) for k, p in paths.items()}
    image = nib.load(study)
    if len(image.shape) != 4 or image.shape[3] != len(sequences):
        raise ValueError(f"{study}: expected a stacked study of {len(sequences)} sequences {sequences} (4D, channels "
                         f"last, as `mednet bundle studies` writes), found shape {image.shape}")  # fmt: skip
    for index, key in enumerate(sequences):
        part = image.slicer[..., index]
        tmp = folder / f".{key}.tmp.nii.gz"
        nib.save(part, tmp)
        os.replace(tmp, paths[key])
    return {k: str(p) for k, p in paths.items()}


class MednetPipelineTask(InferTask):
    """``<disease>_pipeline``: localise, grade and fuse a study; the label map and the grading in its JSON."""

    def __init__(self, app_dir: Path, settings: dict):
        self.app_dir = app_dir
        self.settings = settings
        from mednet.pipeline.diseases import disease_spec

        self.spec = disease_spec(settings["disease"], app_dir / "model")
        table = self.spec.localisation.label_table
        super().__init__(
            type=InferType.SEGMENTATION,
            labels={row["name"]: int(row["value"]) for row in table},
            dimension=3,
            description=f"mednet {mednet.__version__}: {settings['disease']} pipeline (localise, grade each sequence, "
            "fuse); the label map, and the call with its probabilities in the result's JSON",
        )
        self._lock = threading.Lock()
        self._built: tuple | None = None  # (weights mtimes, device, Predictors)

    def is_valid(self) -> bool:
        """Whether both bundles have weights."""
        return all(p.is_file() for p in self._weights().values())

    def _weights(self) -> dict[str, Path]:
        return {b.name: b.weights for b in (self.spec.localisation, self.spec.grading)}

    def _predictors(self, device: str):
        from mednet.pipeline.case import Predictors

        weights = self._weights()
        stamp = tuple(p.stat().st_mtime_ns for p in weights.values())
        if self._built is None or self._built[:2] != (stamp, device):  # the annotators' training replaced weights
            predictors = Predictors.build(self.spec, device, weights, self.settings.get("settings"))
            self._built = (stamp, device, predictors)
        return self._built[2]

    def __call__(self, request):
        """Run the pipeline on ``request["image"]`` (a stacked study); ``(label map file, grading JSON)``."""
        from mednet.pipeline.case import predict_case

        device = request.get("device") or "auto"
        device = device[0] if isinstance(device, (list, tuple)) else str(device)
        device = device if device in ("auto", "cpu") or device.startswith("cuda") else "auto"
        image = Path(request["image"])
        case_id = study_id(image)
        work = Path(tempfile.mkdtemp(prefix=f"{case_id}-", dir=self.app_dir / "requests"))
        try:
            case = {"case_id": case_id, "patient_id": case_id,
                    **split_study(image, list(self.spec.localisation.sequences), work / "inputs")}  # fmt: skip
            with self._lock:  # one case at a time through the (shared) networks
                record = predict_case(case, self._predictors(device), work / "out")
            labels = work / "out" / case_id / record["labels"]
            handle, result = tempfile.mkstemp(suffix=".nii.gz", prefix=f"{case_id}_labels-")
            os.close(handle)
            shutil.copyfile(labels, result)  # MONAI Label sends this file and then deletes it
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return result, pipeline_result(record)


def pipeline_result(record: dict) -> dict:
    """What the annotator gets beside the label map: the call and why (a subset of the case record)."""
    keep = ("case_id", "disease", "call", "fused_class", "fused", "fusion", "sequences", "sequences_used",
            "lesions", "flags", "ood_check", "note", "bundles", "weights")  # fmt: skip
    result = {k: record.get(k) for k in keep}
    result["label_names"] = {row["name"]: row["value"] for row in record["label_table"]}
    result["mednet_version"] = mednet.__version__
    return json.loads(json.dumps(result, default=str))


class MednetTrainTask(BundleTrainTask):
    """MONAI Label's bundle trainer, fed with per-sequence files and starting from the served weights.

    mednet's ``train.json`` reads one file per sequence (``image_keys``) and maps the truth's
    values with ``source_labels`` -> ``target_labels``; the annotators' labels are already in
    the bundle's output values, so the mapping is made the identity. The checkpoint loader goes
    into ``train#every_rank_handlers`` (``train#handlers`` is an expression in mednet's bundles).
    """

    def __init__(self, path: str, conf: dict, app_dir: Path):
        super().__init__(path, conf)
        self.app_dir = app_dir
        self._start_from: str | None = None
        if self.valid:
            spec = BundleSpec.load(path)
            self.sequences = list(spec.sequences)
            self.values = sorted({0, *spec.classes_by_value})

    def __call__(self, request, datastore):
        """Train; when the served weights changed, record it (``models/monailabel_training.json``).

        The bundle's ``models/reference.json`` describes mednet's reference weights; once
        the annotators' training has replaced them it would describe other weights, so it is
        moved into the training record (``started_from``).
        """
        from mednet.checksum import file_sha256

        weights = Path(self.bundle_path) / "models" / "model.pt"
        before = file_sha256(weights) if weights.is_file() else None
        studies = len(datastore.datalist())
        result = super().__call__(request, datastore)
        after = file_sha256(weights) if weights.is_file() else None
        if after != before:
            models = weights.parent
            record_path = models / "monailabel_training.json"
            history = json.loads(record_path.read_text()) if record_path.is_file() else []
            reference = models / "reference.json"
            entry = {"finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                     "labelled_studies": studies, "max_epochs": request.get("max_epochs"),
                     "val_split": request.get("val_split"), "started_from_sha256": before, "weights_sha256": after,
                     "started_from": weights_record(self.bundle_path) or None,
                     "mednet_version": mednet.__version__}  # fmt: skip
            write_json_atomic(record_path, [*history, entry], indent=2)
            reference.unlink(missing_ok=True)
        return result

    def _fetch_datalist(self, request, datastore):
        cases = []
        for item in datastore.datalist():
            study = Path(item["image"])
            case_id = study_id(study)
            paths = split_study(study, self.sequences, self.app_dir / "train-cache" / case_id)
            cases.append({"case_id": case_id, "patient_id": case_id, **paths, "label": item["label"]})
        if not cases:
            raise ValueError("no study has a final label yet: save at least one corrected label, then train")
        return cases

    def _partition_datalist(self, datalist, request, shuffle=False):
        train, val = super()._partition_datalist(datalist, request, shuffle)
        if val is not None and not val:
            logger.warning("too few labelled studies for a validation split: validating on the training studies")
            val = list(train)
        return train, val

    def _load_checkpoint(self, model_pytorch, pretrained, train_handlers):
        self._start_from = model_pytorch if pretrained and os.path.exists(model_pytorch) else None

    def _update_overrides(self, overrides):
        overrides["source_labels"] = self.values
        overrides["target_labels"] = self.values
        overrides.pop(self.const.key_train_handlers(), None)
        if self._start_from:
            handlers = list(self.bundle_config.get("train#every_rank_handlers", []))
            loader = {"_target_": CheckpointLoader.__name__, "load_path": self._start_from,
                      "load_dict": {"model": "@network"}, "strict": True, "map_location": "cpu"}  # fmt: skip
            overrides["train#every_rank_handlers"] = [loader, *handlers]
        return overrides


class MednetApp(MONAILabelApp):
    """mednet's MONAI Label app: one disease's localisation bundle, its pipeline task and a trainer."""

    def __init__(self, app_dir, studies, conf):
        self.app_path = Path(app_dir)
        self.settings = json.loads((self.app_path / APP_FILE).read_text())
        (self.app_path / "requests").mkdir(exist_ok=True)
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name=f"mednet {mednet.__version__}: {self.settings['disease']}",
            description=f"mednet's {self.settings['disease']} localisation bundle, its whole pipeline (with the "
            "grading call), and training from the annotators' labels. Research use only.",
            version=mednet.__version__,
        )

    def _bundle(self, stage: str) -> str:
        return str(self.app_path / "model" / self.settings[stage])

    def init_infers(self):
        """The localisation bundle and the whole pipeline."""
        name = self.settings["localisation"]
        return {
            name: BundleInferTask(self._bundle("localisation"), self.conf, type="segmentation"),
            f"{self.settings['disease']}_pipeline": MednetPipelineTask(self.app_path, self.settings),
        }

    def init_trainers(self):
        """The localisation bundle's trainer."""
        task = MednetTrainTask(self._bundle("localisation"), self.conf, self.app_path)
        return {self.settings["localisation"]: task} if task.is_valid() else {}

    def init_strategies(self):
        """Which study to label next: the first unlabelled or a random one."""
        return {"random": Random(), "first": First()}
