"""Dictionary transforms for bundle pipelines; names end in ``d``."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import ImageMetaKey

from mednet.localisation.outputs import LabelScheme, write_localisation
from mednet.transforms.array import ResampleToReference

__all__ = ["ResampleToReferenced", "WriteLocalisationd"]


class ResampleToReferenced(MapTransform):
    """Bring every key onto the grid of ``ref_key`` (see :class:`ResampleToReference`).

    Args:
        keys: the images to bring onto the reference grid (``ref_key`` itself is skipped).
        ref_key: the reference sequence, e.g. the first listed one.
        label_keys: keys resampled with nearest-neighbour interpolation.
        allow_missing_keys: skip absent keys instead of raising.

    Example:
        ``{"_target_": "mednet.transforms.ResampleToReferenced", "keys": ["t1c", "t2", "label"],
        "ref_key": "t1", "label_keys": ["label"]}``
    """

    def __init__(
        self,
        keys: KeysCollection,
        ref_key: str,
        label_keys: Sequence[str] = (),
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.ref_key = ref_key
        self.label_keys = set(label_keys)
        self._image = ResampleToReference(label=False)
        self._label = ResampleToReference(label=True)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        """Resample each key of ``data`` onto ``data[ref_key]``'s grid."""
        d = dict(data)
        if self.ref_key not in d:
            raise KeyError(f"ResampleToReferenced: reference key {self.ref_key!r} not in the data (keys {list(d)})")
        for key in self.key_iterator(d):
            if key != self.ref_key:
                resample = self._label if key in self.label_keys else self._image
                d[key] = resample(d[key], d[self.ref_key])
        return d


class WriteLocalisationd(MapTransform):
    """Write each case's label map, label table and lesion table (:func:`mednet.localisation.write_localisation`).

    ``data[key]`` must hold the class probabilities ``(C, x, y, z)`` already inverted
    onto the reference input's grid (``Invertd``), as a MetaTensor whose metadata
    names the reference file. The case's name is ``data["case_id"]`` when present,
    else the reference file's name without its suffix. Adds ``<key>_files`` (the paths
    written) to the data.

    Args:
        keys: the probability key, usually ``"pred"``.
        output_dir: files go to ``output_dir/<case>/``.
        labels: the label table (see :class:`mednet.localisation.LabelScheme`, as are the next six).
        lesion_classes: lesion value -> class name.
        organ_components: organ value -> connected components to keep.
        compartments: organ name -> compartment.
        thorax_organs: organs whose lowest point bounds the thorax.
        compartment_priority: compartments in the order they win when a lesion touches several.
        above_organs: organ name -> compartment of a lesion touching it from above.
        min_lesion_mm3: smaller lesions are removed.
        host_distance_mm: farthest organ that can host a lesion touching none.
        lesion_threshold: summed lesion probability that makes a voxel a lesion (None: arg-max).
        overwrite: replace existing outputs.

    Example:
        ``{"_target_": "mednet.transforms.WriteLocalisationd", "keys": "pred", "output_dir": "@output_dir",
        "labels": "@label_table", "lesion_classes": {"1": "tumour"}}``
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: os.PathLike | str,
        labels: Sequence[Mapping],
        lesion_classes: Mapping | None = None,
        organ_components: Mapping | None = None,
        compartments: Mapping[str, str] | None = None,
        thorax_organs: Sequence[str] = (),
        compartment_priority: Sequence[str] = (),
        above_organs: Mapping[str, str] | None = None,
        min_lesion_mm3: float = 0.0,
        host_distance_mm: float = 10.0,
        lesion_threshold: float | None = None,
        overwrite: bool = False,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.scheme = LabelScheme(
            labels, lesion_classes or {}, organ_components or {}, compartments or {}, thorax_organs,
            compartment_priority, above_organs or {}, min_lesion_mm3, host_distance_mm, lesion_threshold,
        )  # fmt: skip
        self.overwrite = overwrite

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        """Write the files of one case."""
        d = dict(data)
        for key in self.key_iterator(d):
            probabilities = d[key]
            if not isinstance(probabilities, MetaTensor):
                raise TypeError(f"WriteLocalisationd: {key!r} must be a MetaTensor on the input grid (use Invertd)")
            case_id = d.get("case_id") or _stem(str(probabilities.meta.get(ImageMetaKey.FILENAME_OR_OBJ, "case")))
            paths = write_localisation(
                probabilities, probabilities, self.output_dir, str(case_id), self.scheme, overwrite=self.overwrite
            )
            d[f"{key}_files"] = {name: str(path) for name, path in paths.items()}
        return d


def _stem(path: str) -> str:
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name
