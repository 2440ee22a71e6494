"""Dictionary transforms that make the grading stage's inputs from a loaded case.

A case dict after :class:`mednet.transforms.LoadCased` (and ``Orientationd``) holds one
``(1, x, y, z)`` image per sequence key and a label map. These transforms cut the lesion
out of it:

- :class:`LesionSlicesd` (2D mode, paper B): the ``n`` axial slices around the slice of
  largest lesion area, one output dict per slice (MONAI flattens the list, as it does for
  ``RandCropByPosNegLabeld``'s samples), each sequence ``(C', H, W)``;
- :class:`ClassIndexd`: the case's class name -> integer target;
- :class:`LesionFeaturesd`: the staging features of the label map (neuroblastoma).

The label map is the ground truth in training and the localisation stage's output at
inference; either way it must lie on the images' grid.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from mednet.grading.features import lesion_features
from mednet.grading.roi import _image_4d, _labels_3d, _spacing, _to_numpy, crop_slices, slice_plan
from mednet.io.validation import spacing_from_affine
from mednet.options import choose

__all__ = ["ClassIndexd", "LesionFeaturesd", "LesionSlicesd"]


def _labels(d: Mapping, label_key: str, case: str) -> np.ndarray:
    if label_key not in d:
        raise KeyError(f"{case}: no {label_key!r} label map to find the lesion in")
    return _to_numpy(d[label_key])


def _case(d: Mapping) -> str:
    return str(d.get("case_id", "case"))


def _lesion_error(error: ValueError, case: str, label_key: str, lesion_values) -> ValueError:
    return ValueError(f"{case}: cannot cut the lesion out of {label_key!r} (lesion values {lesion_values}): {error}")


class LesionSlicesd(MapTransform):
    """The lesion's ``n`` axial slices per sequence, one output dict per slice (2D grading input).

    For each key, :func:`mednet.grading.extract_slices` on that sequence and the label map
    (all sequences get the same slices and the same in-plane box, as they share the label
    map's grid). Each output dict holds every non-image entry of the input (``case_id``,
    ``patient_id``, the class, ...), each key's slice as a ``(C', H, W)`` float tensor,
    ``slice_index`` (the ``z`` of the slice in the volume) and ``slice_rank`` (0 to n - 1);
    the label map and the volumes are not copied into the slices.

    Args:
        keys: the sequence keys, each ``(C, x, y, z)`` after ``EnsureChannelFirstd``.
        label_key: the label map, ``(1, x, y, z)`` or ``(x, y, z)``, on the sequences' grid.
        lesion_values: the lesion's label value(s).
        n: slices per case (paper B: 20).
        size: ``(H, W)`` of each slice (paper B: 224 x 224).
        margin_fraction: margin around the lesion box (see ``extract_slices``).
        channels_out: e.g. 3 to replicate a single channel for ImageNet weights.
        zscore: standardise each sequence over its crop.
        drop_keys: further keys not copied into the slices (e.g. other volumes).
        ranks_key: when a case has this key (a slice-level split, see
            :func:`mednet.io.slice_split_partitions`), only the slices of those ranks are kept.
        min_area_fraction: None for paper B's contiguous window of ``n`` slices; a fraction
            to keep only the (at most ``n``) slices showing the lesion (see
            :func:`mednet.grading.lesion_slices`), so that cases give different numbers of slices.
        allow_missing_keys: cut the slices of the sequences present (a case lacking one is
            graded by the others).
        fill_missing: with ``allow_missing_keys``, a sequence the case lacks becomes zero
            slices, and every slice says for each key whether it was there
            (``<key>_present``, a bool): a batch of cases with different sequences then
            collates, and :class:`mednet.engines.GradingWriter` drops what the network
            made of the absent ones (``python -m monai.bundle run`` of a classification
            bundle on a cohort where some cases lack a sequence).

    Raises:
        KeyError: ``fill_missing`` and the case has none of the keys (nothing to grade it by).
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str,
        lesion_values: int | Sequence[int],
        n: int = 20,
        size: Sequence[int] = (224, 224),
        margin_fraction: float | None = None,
        channels_out: int | None = None,
        zscore: bool = True,
        drop_keys: Sequence[str] = (),
        ranks_key: str = "slice_ranks",
        min_area_fraction: float | None = None,
        allow_missing_keys: bool = False,
        fill_missing: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.fill_missing = bool(fill_missing) and allow_missing_keys
        self.ranks_key = ranks_key
        self.label_key = label_key
        self.lesion_values = lesion_values
        self.n, self.size = int(n), tuple(int(s) for s in size)
        self.margin_fraction, self.channels_out, self.zscore = margin_fraction, channels_out, zscore
        self.min_area_fraction = min_area_fraction
        self.drop = {label_key, ranks_key, *self.keys, *drop_keys}

    def __call__(self, data: Mapping[Hashable, object]) -> list[dict]:
        """One dict per selected slice."""
        d = dict(data)
        case = _case(d)
        labels = _labels(d, self.label_key, case)
        stacks, plans = {}, {}  # the sequences share the label map's grid: one plan per spacing (in practice one)
        slice_index: list[int] = []
        for key in self.key_iterator(d):
            try:
                labels = _labels_3d(labels)
                step = tuple(float(v) for v in _spacing(d[key], None))
                if step not in plans:
                    plans[step] = slice_plan(labels, self.lesion_values, self.n, self.min_area_fraction,
                                             margin_fraction=self.margin_fraction, spacing=step)  # fmt: skip
                slice_index, box = plans[step]
                stacks[key] = crop_slices(_image_4d(d[key], labels), slice_index, box, self.size,
                                          channels_out=self.channels_out, zscore=self.zscore)  # fmt: skip
            except ValueError as error:
                raise _lesion_error(error, case, self.label_key, self.lesion_values) from error
        shared = {k: v for k, v in d.items() if k not in self.drop and not str(k).endswith("_meta_dict")}
        if self.fill_missing:
            if not stacks:
                raise KeyError(f"{case}: none of the sequences {list(self.keys)} to grade it by; "
                               f"found {sorted(map(str, d))}")  # fmt: skip
            shared.pop("sequences_used", None)  # a list whose length differs between cases: the flags say it
            shared.update({f"{key}_present": key in stacks for key in self.keys})
            zeros = np.zeros_like(next(iter(stacks.values())))
            stacks = {key: stacks.get(key, zeros) for key in self.keys}
        keep = set(d[self.ranks_key]) if self.ranks_key in d else None
        return [
            {
                **shared,
                **{key: torch.from_numpy(stack[rank]) for key, stack in stacks.items()},
                "slice_index": int(z),
                "slice_rank": rank,
            }
            for rank, z in enumerate(slice_index)
            if keep is None or rank in keep
        ]


class ClassIndexd(MapTransform):
    """Class name -> integer target (``torch.long`` scalar), in the order of ``classes``.

    Args:
        keys: the key holding the class name (e.g. ``"class"``).
        classes: the class names; index 0 is the first (the negative class of a binary task).
        target_key: where to put the index (default ``"target"``).
        allow_missing_keys: leave a case without the class alone (inference on unlabelled data).

    Raises:
        ValueError: a class that is not in ``classes`` (with the closest match).
    """

    def __init__(
        self,
        keys: KeysCollection,
        classes: Sequence[str],
        target_key: str = "target",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.classes = [str(c) for c in classes]
        if len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
            raise ValueError(f"classes: expected at least two distinct names, found {self.classes}")
        self.target_key = target_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        """The data with ``target_key`` set."""
        d = dict(data)
        for key in self.key_iterator(d):
            name = choose(d[key], self.classes, f"{_case(d)}: class", normalise=False)
            d[self.target_key] = torch.tensor(self.classes.index(name), dtype=torch.long)
        return d


class LesionFeaturesd(MapTransform):
    """The label map's staging features (:func:`mednet.grading.lesion_features`) as ``(F,)`` float32.

    Args:
        keys: the label map key (a MetaTensor, whose affine gives the spacing, or an array
            with ``spacing`` given).
        primary: the primary tumour's label value(s).
        metastasis: the distant lesions' label value(s).
        vessels: the great vessels' label values.
        compartments: organ label value -> compartment name.
        min_lesion_mm3: smaller metastasis components are not counted.
        features_key: where the features go (default ``"features"``).
        spacing: voxel size when the label map carries no affine.
    """

    def __init__(
        self,
        keys: KeysCollection,
        primary: int | Sequence[int],
        metastasis: int | Sequence[int],
        vessels: Sequence[int] = (),
        compartments: Mapping | None = None,
        min_lesion_mm3: float = 0.0,
        features_key: str = "features",
        spacing: Sequence[float] | None = None,
    ):
        super().__init__(keys)
        self.primary, self.metastasis, self.vessels = primary, metastasis, vessels
        self.compartments = {int(k): str(v) for k, v in (compartments or {}).items()}
        self.min_lesion_mm3, self.features_key, self.spacing = min_lesion_mm3, features_key, spacing

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        """The data with ``features_key`` set."""
        d = dict(data)
        for key in self.key_iterator(d):
            labels = d[key]
            if self.spacing is not None:
                spacing = self.spacing
            elif isinstance(labels, MetaTensor):
                spacing = spacing_from_affine(np.asarray(labels.affine, dtype=float))
            else:
                raise ValueError(f"{_case(d)}: {key!r} has no affine; give LesionFeaturesd a spacing")
            values = lesion_features(
                _to_numpy(labels), spacing, primary=self.primary, metastasis=self.metastasis, vessels=self.vessels,
                compartments=self.compartments, min_lesion_mm3=self.min_lesion_mm3,
            )  # fmt: skip
            d[self.features_key] = torch.from_numpy(values)
        return d
