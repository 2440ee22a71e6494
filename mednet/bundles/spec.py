"""One reader of a bundle's configuration: what it takes, what it gives, where its weights are.

Everything mednet needs to know about a bundle outside a ``monai.bundle run`` (its
sequences, classes, label table, lesion values, version, weights) comes from
:class:`BundleSpec`, which reads ``metadata.json`` and parses ``inference.json`` once
with MONAI's ``ConfigParser``. The prediction engine instantiates the bundle's own
network, transforms and inferer through :meth:`BundleSpec.parser`, so that mednet and
``python -m monai.bundle run`` run the same objects.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mednet.bundles.locate import bundle_metadata, weights_record
from mednet.errors import MednetError
from mednet.localisation.outputs import LabelScheme

__all__ = ["BundleSpec", "UnsafeCheckpointError", "load_state_dict"]

_TASKS = ("segmentation", "classification")
#: The config entry that names a bundle's sequences, per task.
SEQUENCES_KEY = {"segmentation": "image_keys", "classification": "sequences"}


class UnsafeCheckpointError(MednetError, ValueError):
    """A checkpoint that is not a plain dict of tensors (it would run pickled code to load)."""


def load_state_dict(path: os.PathLike | str, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """A checkpoint's state dict, loaded with ``weights_only=True``.

    Accepts a plain state dict or MONAI's ``{"model": state_dict}``.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the file holds anything but tensors and plain containers
            (a pickled object would run code when loaded); the message names the file.
        ValueError: a truncated or corrupt file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint here")
    try:
        with warnings.catch_warnings():  # torch's remark on the pickle protocol comes before its refusal
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:  # weights_only refused a pickled object
        raise UnsafeCheckpointError(
            f"{path}: refused: not a plain state dict of tensors (loading it would need to run pickled code: "
            f"{str(error).strip().splitlines()[0][:200]}); only load checkpoints you trust, and re-save them as a "
            "state dict"
        ) from error
    except (OSError, EOFError, RuntimeError, ValueError) as error:
        raise ValueError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {error}") from error
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnsafeCheckpointError(f"{path}: expected a state dict (parameter name -> tensor), found {type(state)}")
    return state


@dataclass(frozen=True)
class BundleSpec:
    """A bundle as mednet sees it.

    Attributes:
        path: the bundle's folder.
        name: its folder name.
        version: ``metadata.json``'s version.
        title: ``metadata.json``'s name (a title for people).
        task: ``"segmentation"`` (localisation) or ``"classification"`` (grading).
        sequences: the sequences it takes, in channel (or branch) order; the first is the
            reference grid.
        label_table: segmentation: ``[{"value", "name", "colour": "#rrggbb"}, ...]`` (no background).
        lesion_values: label values of the lesions (segmentation: the lesion classes;
            classification: what it grades around).
        metastasis_values: distant lesions' label values (neuroblastoma), else empty.
        classes: classification: the class names in output order.
        roi_key: classification: the key of the label map it crops around.
        truth_labels: segmentation: ``(source, target)`` values that a ground-truth label map
            is relabelled with before scoring (as in training, e.g. BraTS 1, 2, 4 -> 1).
        min_reference_mm3: segmentation: true lesions smaller than this are not counted as
            lesions to detect (``evaluate.json``).
        max_lesion_floor_mm3: segmentation: the largest ``min_lesion_mm3`` the post-processing
            may be tuned to (``evaluate.json``; no bound where it is absent): the smallest
            lesion clinicians look for in the disease, which validation phantoms may not
            contain (:func:`mednet.localisation.tuning.choose_postprocessing`).
        weights: the default checkpoint, ``models/model.pt``.
        reference: ``models/reference.json`` when the weights are mednet's reference
            weights (how they were trained), else empty.
    """

    path: Path
    name: str
    version: str
    task: str
    sequences: tuple[str, ...]
    title: str = field(default="", compare=False)
    label_table: tuple[dict, ...] = ()
    lesion_values: tuple[int, ...] = ()
    metastasis_values: tuple[int, ...] = ()
    classes: tuple[str, ...] = ()
    roi_key: str = ""
    truth_labels: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())
    min_reference_mm3: float = 0.0
    max_lesion_floor_mm3: float = math.inf
    reference: dict = field(default_factory=dict, compare=False)

    @property
    def classes_by_value(self) -> dict[int, str]:
        """Segmentation: label value -> name (background excluded)."""
        return {int(row["value"]): str(row["name"]) for row in self.label_table}

    @property
    def lesion_classes(self) -> dict[int, str]:
        """Segmentation: lesion value -> name."""
        return {v: n for v, n in self.classes_by_value.items() if v in self.lesion_values}

    @property
    def weights(self) -> Path:
        """The bundle's ``models/model.pt``."""
        return self.path / "models" / "model.pt"

    def with_overrides(self, overrides: Mapping | None) -> BundleSpec:
        """This bundle as config ``overrides`` make it: the sequences they name, if any.

        A network trained with other sequences (``image_keys`` of a segmentation bundle,
        ``sequences`` of a classification one, e.g. a native T1 more) reads those: the
        pipeline must read them from the case too.
        """
        keys = (overrides or {}).get(SEQUENCES_KEY[self.task])
        return self if keys is None else dataclasses.replace(self, sequences=tuple(str(k) for k in keys))

    @classmethod
    def load(cls, path: os.PathLike | str) -> BundleSpec:
        """Read a bundle folder's ``metadata.json`` and ``inference.json``.

        Raises:
            FileNotFoundError: not a bundle folder (no ``configs/metadata.json``).
            ValueError: a bundle whose name says neither segmentation nor classification.
        """
        path = Path(path).resolve()
        meta = bundle_metadata(path)
        task = next((t for t in _TASKS if t in path.name), None)
        if task is None:
            raise ValueError(f"{path.name}: a bundle's name says its task, expected one of {', '.join(_TASKS)}")
        parser = cls._parser(path)
        get = parser.get_parsed_content
        common = {"path": path, "name": path.name, "version": str(meta.get("version", "")), "task": task,
                  "title": str(meta.get("name", "")),
                  "reference": weights_record(path)}  # fmt: skip
        if task == "segmentation":
            scoring = cls._parser(path, ("inference", "evaluate")).get_parsed_content
            return cls(
                **common, sequences=tuple(get("image_keys")), label_table=tuple(LabelScheme(get("label_table")).labels),
                lesion_values=tuple(sorted(int(k) for k in get("lesion_classes"))),
                truth_labels=(tuple(scoring("source_labels")), tuple(scoring("target_labels"))),
                min_reference_mm3=float(scoring("min_reference_mm3")),
                max_lesion_floor_mm3=_lesion_floor(path, scoring("max_lesion_floor_mm3", default=None)),
            )  # fmt: skip
        return cls(
            **common, sequences=tuple(get("sequences")), classes=tuple(get("classes")), roi_key=str(get("roi_key")),
            lesion_values=tuple(map(int, get("lesion_values"))),
            metastasis_values=tuple(map(int, get("metastasis_values"))),
        )  # fmt: skip

    @staticmethod
    def _parser(path: Path, configs: tuple[str, ...] = ("inference",), **overrides):
        from monai.bundle import ConfigParser

        parser = ConfigParser()
        with warnings.catch_warnings():  # MONAI warns that configs run code: these are the bundle's own
            warnings.filterwarnings("ignore", message="parsing config_file", category=UserWarning)
            parser.read_config([str(path / "configs" / f"{c}.json") for c in configs])
        parser["bundle_root"] = str(path)
        for key, value in overrides.items():
            parser[key] = value
        return parser

    def parser(self, *configs: str, **overrides):
        """A fresh ``ConfigParser`` of the bundle's configs (default ``inference``), with ``overrides`` set."""
        return self._parser(self.path, configs or ("inference",), **overrides)

    def config_keys(self, *configs: str) -> set[str]:
        """The top-level entries of the bundle's configs (default ``inference``), e.g. to check a user's override."""
        return {key for name in configs or ("inference",) for key in self._parser(self.path, (name,)).get()}

    def load_weights(self, network: torch.nn.Module, weights: os.PathLike | str | None, device: torch.device) -> None:
        """Load ``weights`` (default :attr:`weights`) into ``network`` on ``device``, in eval mode.

        Raises:
            FileNotFoundError: no weights, with how to get them.
            UnsafeCheckpointError: see :func:`load_state_dict`.
            ValueError: a corrupt checkpoint, or weights of another network.
        """
        path = Path(weights) if weights else self.weights
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: bundle {self.name} has no weights here. mednet's releases ship reference weights in "
                "each bundle's models/model.pt; in a clone without them, train them with `python "
                f"scripts/train_reference.py --disease <disease> --install` (hours on CPU), train on your own data "
                f"(python -m monai.bundle run --config_file {self.path}/configs/train.json --datalist <datalist.json>, "
                "see the bundle's docs/README.md), or point --bundles at a folder of trained bundles"
            )
        state = load_state_dict(path, device)
        try:
            network.load_state_dict(state)
        except RuntimeError as error:  # keys or shapes of another network
            first = str(error).strip().splitlines()[0]
            raise ValueError(
                f"{path}: not weights of bundle {self.name}'s network (another architecture or bundle?): {first}"
                + _width_hint(state, network)
            ) from error
        network.to(device).eval()


def _width_hint(checkpoint: Mapping, network: torch.nn.Module) -> str:
    """Where the first layer's filters differ in number: a checkpoint of another width, and how to load it.

    Args:
        checkpoint: the checkpoint's state dict (name -> tensor).
        network: the bundle's network; a MONAI ``UNet`` (``channels``) gets the channels to give.
    """
    wanted = network.state_dict()
    first = next((k for k, v in wanted.items() if v.ndim > 1), None)
    if first is None or first not in checkpoint or checkpoint[first].ndim < 2:
        return ""
    found, expected = int(checkpoint[first].shape[0]), int(wanted[first].shape[0])
    if found == expected:
        return ""
    hint = f". Its first layer has {found} filters where this network has {expected}: weights of another width"
    channels = getattr(network, "channels", None)
    if channels:
        scaled = ",".join(str(c * found // expected) for c in channels)
        hint += f"; give the channels they were trained with, e.g. --network_def#channels \"[{scaled}]\""
    return hint


def _lesion_floor(path: Path, value) -> float:
    """A segmentation bundle's ``max_lesion_floor_mm3``: a positive number of mm^3, or no bound (absent or null)."""
    if value is None:
        return math.inf
    floor = float(value)
    if not floor > 0:
        raise ValueError(f"{path.name}: evaluate.json's max_lesion_floor_mm3: expected a positive volume in mm^3, "
                         f"found {value!r}")
    return floor
