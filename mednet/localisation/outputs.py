"""Write a case's localisation outputs: label map, label table and lesion table.

:func:`localise_from_probabilities` turns class probabilities into the final label map and
lesion table (used through :class:`mednet.transforms.Localised`, whose result MONAI Label
also returns); :func:`write_localisation` writes them (through
:class:`mednet.transforms.WriteLocalisationd`):

- ``<out>/<case>/<case>_labels.nii.gz``: organ and lesion labels on exactly the
  reference input's grid (shape, sform and qform copied from its header);
- ``<out>/<case>/<case>_labels.json``: the label table (value, name, colour);
- ``<out>/<case>/<case>_lesions.json`` and ``.csv``: the lesion table;
- ``<out>/<case>/<case>_labels.seg.dcm``, only when the reference input is a DICOM series
  folder: the same label map as a DICOM SEG referencing that series
  (:func:`mednet.io.dicom_seg.write_dicom_seg`); a series that a SEG cannot reference
  (no UIDs or frame of reference, multi-frame instances) gets a :class:`DicomSegWarning`
  instead, and the case keeps its other files.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from monai.data import MetaTensor
from monai.utils import ImageMetaKey
from scipy import ndimage

from mednet.errors import InvalidImageError
from mednet.io.atomic import write_json_atomic
from mednet.io.dicom_seg import write_dicom_seg
from mednet.io.grid import bounding_box
from mednet.io.write import write_image
from mednet.localisation.lesions import find_lesions, write_lesion_table
from mednet.localisation.organs import clean_organs

__all__ = [
    "DicomSegWarning",
    "LabelScheme",
    "LocalisationResult",
    "decide_labels",
    "localise_from_labels",
    "localise_from_probabilities",
    "write_localisation",
]


class DicomSegWarning(UserWarning):
    """A case read from DICOM got no DICOM SEG (its series cannot be referenced); its other outputs stand."""


def _int_keys(mapping: Mapping | None) -> dict[int, object]:
    return {int(k): v for k, v in (mapping or {}).items()}


@dataclass
class LabelScheme:
    """What the values of a localisation label map mean.

    Bundle configs give the mappings with string keys (JSON); they are converted here.

    Args:
        labels: label table, ``[{"value": 1, "name": "liver", "colour": "#8c564b"}, ...]``
            (background 0 is implied).
        lesion_classes: lesion value -> class name, e.g. ``{12: "primary_tumour"}``.
        organ_components: organ value -> connected components to keep (1 for most,
            2 for paired organs under one label); organs not listed are left as predicted.
        compartments: organ name -> compartment, for the lesion table.
        thorax_organs: organs whose lowest point bounds the thorax (e.g. ``["lungs"]``).
        compartment_priority: compartments in the order they win when a lesion touches several.
        above_organs: organ name -> compartment of a lesion touching it from above (suprarenal).
        min_lesion_mm3: smaller lesion components are removed from the map and the table.
        host_distance_mm: farthest organ that can still host a lesion touching none.
        lesion_threshold: when set, a voxel is a lesion (of its most likely lesion class)
            exactly where the lesion classes' summed probability reaches it, and otherwise
            takes its most likely other class; ``None`` keeps the plain arg-max. Values
            under 0.5 find faint lesions at the price of false positives, values above it
            trim lesions the network draws too large: choose it on validation data
            (:mod:`mednet.localisation.tuning`).
    """

    labels: Sequence[Mapping]
    lesion_classes: Mapping = field(default_factory=dict)
    organ_components: Mapping = field(default_factory=dict)
    compartments: Mapping[str, str] = field(default_factory=dict)
    thorax_organs: Sequence[str] = ()
    compartment_priority: Sequence[str] = ()
    above_organs: Mapping[str, str] = field(default_factory=dict)
    min_lesion_mm3: float = 0.0
    host_distance_mm: float = 10.0
    lesion_threshold: float | None = None

    def __post_init__(self) -> None:
        if self.lesion_threshold is not None and not 0.0 < float(self.lesion_threshold) <= 1.0:
            raise ValueError(
                f"lesion_threshold: expected a probability in (0, 1] or None, found {self.lesion_threshold}"
            )
        self.labels = [
            {"value": int(row["value"]), "name": str(row["name"]), "colour": _colour(row.get("colour", "#ffffff"))}
            for row in self.labels
        ]
        self.lesion_classes = _int_keys(self.lesion_classes)
        self.organ_components = _int_keys(self.organ_components)
        values = {row["value"] for row in self.labels}
        unknown = (set(self.lesion_classes) | set(self.organ_components)) - values
        if unknown:
            raise ValueError(f"label values {sorted(unknown)} are not in the label table (values {sorted(values)})")

    @property
    def organs(self) -> dict[int, str]:
        """Non-lesion label value -> name."""
        return {row["value"]: row["name"] for row in self.labels if row["value"] not in self.lesion_classes}


@dataclass
class LocalisationResult:
    """A case's localisation: ``labels`` ``(x, y, z)`` and its lesion table ``lesions``."""

    labels: np.ndarray
    lesions: list[dict]


def channel_argmax(probabilities: np.ndarray, channels: list[int] | None = None) -> np.ndarray:
    """``probabilities[channels].argmax(axis=0)`` as int16, the first channel winning ties, as numpy's.

    One pass per channel over contiguous ``(x, y, z)`` arrays: numpy's ``argmax`` along the
    first axis of a ``(C, x, y, z)`` array first copies it channel-last (14 channels of a
    torso volume: 0.4 s of 0.5). Finite values assumed (softmax outputs).

    Args:
        probabilities: ``(C, x, y, z)``.
        channels: the channels to compare (default all), in order; the result indexes this list.
    """
    channels = list(range(probabilities.shape[0])) if channels is None else list(channels)
    best = np.array(probabilities[channels[0]], copy=True)
    index = np.zeros(best.shape, dtype=np.int16)
    for position, channel in enumerate(channels[1:], start=1):
        better = probabilities[channel] > best
        index[better] = position
        np.maximum(best, probabilities[channel], out=best)
    return index


def decide_labels(
    probabilities: np.ndarray, lesion_classes, lesion_threshold: float | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The label each voxel's class probabilities decide, and its summed lesion probability.

    The one home of the decision rule: the arg-max (the first class winning ties); with a
    ``lesion_threshold``, a voxel is a lesion of its likeliest lesion class exactly where the
    lesion classes' summed probability reaches it, and otherwise takes its likeliest other
    class. Each part (which side of the threshold, the arg-max within the lesion classes,
    the arg-max within the others) is preserved by linear interpolation between voxels that
    decide alike (:class:`mednet.transforms.InvertLabelsd` relies on this).

    Args:
        probabilities: ``(C, ...)`` softmax output, channel ``c`` is label value ``c``.
        lesion_classes: the lesion label values (channels beyond ``C`` are ignored).
        lesion_threshold: see :class:`LabelScheme`; None for the plain arg-max.

    Returns:
        ``(...)`` int16 labels, and the ``(...)`` float32 summed lesion probability (None
        without lesion classes).
    """
    probabilities = np.asarray(probabilities, dtype=np.float32)
    channels = [int(v) for v in lesion_classes if int(v) < probabilities.shape[0]]
    if not channels:
        return channel_argmax(probabilities), None
    lesion_probability = probabilities[channels].sum(axis=0)
    if lesion_threshold is None:
        return channel_argmax(probabilities), lesion_probability
    likeliest = np.asarray(channels, dtype=np.int16)[channel_argmax(probabilities, channels)]
    others = [c for c in range(probabilities.shape[0]) if c not in channels]
    if not others:  # every class a lesion (never a LabelScheme's, whose background is not): the likeliest
        return likeliest, lesion_probability
    other = np.asarray(others, dtype=np.int16)[channel_argmax(probabilities, others)]
    return np.where(lesion_probability >= lesion_threshold, likeliest, other).astype(np.int16), lesion_probability


def localise_from_probabilities(
    probabilities: np.ndarray, affine: np.ndarray, scheme: LabelScheme
) -> LocalisationResult:
    """Turn class probabilities into a cleaned label map and its lesion table.

    Args:
        probabilities: ``(C, x, y, z)`` softmax output on the target grid, channel ``c``
            is label value ``c`` (channel 0 background).
        affine: 4x4 voxel -> RAS mm of that grid.
        scheme: label meanings and post-processing settings.

    Returns:
        The label map :func:`decide_labels` gives (the arg-max; with
        ``scheme.lesion_threshold``, lesions exactly where their summed probability reaches
        it) after organ clean-up (largest components,
        holes filled) and removal of lesions under ``min_lesion_mm3``, with the lesion
        table (mean probability = summed lesion-class probability over each lesion).
    """
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.ndim != 4:
        raise ValueError(f"probabilities: expected (C, x, y, z), found shape {probabilities.shape}")
    labels, lesion_probability = decide_labels(probabilities, scheme.lesion_classes, scheme.lesion_threshold)
    return localise_from_labels(labels, lesion_probability, affine, scheme)


def localise_from_labels(
    labels: np.ndarray, lesion_probability: np.ndarray | None, affine: np.ndarray, scheme: LabelScheme
) -> LocalisationResult:
    """Clean decided labels (:func:`decide_labels`) into the final label map and its lesion table.

    Args:
        labels: ``(x, y, z)`` decided labels on the target grid.
        lesion_probability: ``(x, y, z)`` summed lesion probability, needed at the lesion
            voxels only (for each lesion's mean), or None.
        affine: 4x4 voxel -> RAS mm of that grid.
        scheme: label meanings and post-processing settings.

    Returns:
        As :func:`localise_from_probabilities`.
    """
    labels = clean_organs(np.asarray(labels), scheme.organ_components)
    kwargs = {
        "organs": scheme.organs, "compartments": scheme.compartments, "thorax_organs": scheme.thorax_organs,
        "compartment_priority": scheme.compartment_priority, "above_organs": scheme.above_organs,
        "probability": lesion_probability, "host_distance_mm": scheme.host_distance_mm,
    }  # fmt: skip
    labels = _drop_small_lesions(labels, scheme, affine)
    return LocalisationResult(labels, find_lesions(labels, affine, scheme.lesion_classes, **kwargs))


def _drop_small_lesions(labels: np.ndarray, scheme: LabelScheme, affine: np.ndarray) -> np.ndarray:
    """Set lesion components (26-connected) under ``scheme.min_lesion_mm3`` to background.

    Not MONAI's ``RemoveSmallObjects``: it delegates to scikit-image, whose 0.26 release
    removes objects *equal* to the threshold too (measured: a 4-voxel lesion dropped at
    ``min_size=4``), so the same bundle would give different maps with different
    scikit-image versions, and it would add that dependency for 15 lines of ``scipy``.
    """
    if scheme.min_lesion_mm3 <= 0:
        return labels
    voxel_mm3 = float(abs(np.linalg.det(np.asarray(affine, dtype=float)[:3, :3])))
    out = labels.copy()
    for value in scheme.lesion_classes:
        box = bounding_box(out == value)
        if box is None:
            continue
        mask = out[box] == value  # components are found within the class's bounding box: the same, faster
        components, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
        sizes = np.bincount(components.ravel(), minlength=count + 1)
        small = sizes * voxel_mm3 < scheme.min_lesion_mm3
        small[0] = False
        region = out[box]
        region[small[components]] = 0
    return out


def write_localisation(
    result: LocalisationResult,
    reference: MetaTensor,
    out_dir: os.PathLike | str,
    case_id: str,
    scheme: LabelScheme,
    *,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write a case's label map, label table and lesion table (and a DICOM SEG for a DICOM input).

    Args:
        result: the label map ``(x, y, z)`` on the reference grid and its lesion table
            (:func:`localise_from_probabilities`).
        reference: the reference input (its file's header gives the output's sform/qform;
            when it was read from a DICOM series folder, the SEG references that series).
        out_dir: files go to ``out_dir/<case_id>/``.
        case_id: used in the file names.
        scheme: gives the label table.
        overwrite: replace existing outputs.

    Returns:
        ``{"labels", "label_table", "lesions_json", "lesions_csv"}`` -> paths written, and
        ``"dicom_seg"`` when the reference is a DICOM series.

    Warns:
        DicomSegWarning: the reference is a DICOM series a SEG cannot reference (no frame of
            reference, no UIDs, multi-frame instances): no SEG, the message names the file and
            says why; the other files are written all the same.
    """
    case_dir = Path(out_dir) / case_id
    case_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "labels": case_dir / f"{case_id}_labels.nii.gz",
        "label_table": case_dir / f"{case_id}_labels.json",
        "lesions_json": case_dir / f"{case_id}_lesions.json",
        "lesions_csv": case_dir / f"{case_id}_lesions.csv",
    }
    write_image(result.labels, paths["labels"], reference, label=True, overwrite=overwrite)
    table = [{"value": 0, "name": "background", "colour": "#000000"}, *scheme.labels]
    write_json_atomic(paths["label_table"], {"labels": table}, indent=2)
    write_lesion_table(result.lesions, paths["lesions_json"], paths["lesions_csv"])
    series = _dicom_series(reference)
    if series is not None:
        try:
            paths["dicom_seg"] = write_dicom_seg(result.labels, series, scheme, case_dir / f"{case_id}_labels.seg.dcm",
                                                 affine=np.asarray(reference.affine),
                                                 lesion_values=scheme.lesion_classes, overwrite=overwrite)  # fmt: skip
        except InvalidImageError as err:  # a series mednet can read but a SEG cannot reference: the rest stands
            warnings.warn(f"{case_id}: no DICOM SEG written: {err}", DicomSegWarning, stacklevel=2)
    return paths


def _dicom_series(reference: MetaTensor) -> Path | None:
    """The DICOM series folder the reference image was read from, or None (a file: NIfTI, NRRD, ...)."""
    source = Path(str(reference.meta.get(ImageMetaKey.FILENAME_OR_OBJ, "")))
    return source if reference.meta.get("format") == "dicom" and source.is_dir() else None


def _colour(value: object) -> str:
    """A label colour as ``#rrggbb``, from ``"#rrggbb"`` or ``[r, g, b]``.

    Bundle configs hold ``[r, g, b]`` (0-255): MONAI's config parser rewrites ``#`` in every
    config string as its ID separator.

    Raises:
        ValueError: anything else.
    """
    if isinstance(value, str) and len(value) == 7 and value.startswith("#"):
        int(value[1:], 16)
        return value.lower()
    if isinstance(value, list | tuple) and len(value) == 3 and all(0 <= int(v) <= 255 for v in value):
        return "#" + "".join(f"{int(v):02x}" for v in value)
    raise ValueError(f"label colour: expected '#rrggbb' or [r, g, b] with 0-255 values, found {value!r}")
