"""Dictionary transforms for bundle pipelines; names end in ``d``."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from monai.config import KeysCollection
from monai.transforms import MapTransform

from mednet.transforms.array import ResampleToReference

__all__ = ["ResampleToReferenced"]


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
