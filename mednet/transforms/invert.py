"""Class probabilities back onto the input's grid, resampled only where the decision is open.

MONAI's ``Invertd`` undoes the preprocessing on the network's output: for the resampling
step (``Spacingd``) it interpolates every class's probability at every voxel of the input's
grid, full size (a 240 x 240 x 155 brain: 9 million voxels per class). Almost all of them
are background far from any organ or lesion, where the answer is known before
interpolating: linear interpolation gives a convex combination of the neighbouring
low-resolution voxels, so when every neighbour has background as its arg-max (and a
lesion probability below the lesion threshold), so does the interpolated voxel.

:class:`InvertProbabilitiesd` therefore undoes ``Spacingd`` only inside the bounding box
of the low-resolution voxels where a foreground class is at least ``min(0.5, threshold)``
probable (plus the interpolation's neighbourhood and a margin), with MONAI's own resampler
and the settings ``Spacingd`` recorded, and fills the rest with background (probability 1).
Every other step (orientation, crops, pads) is undone by MONAI's inverses. The label map
(arg-max or lesion threshold) and the lesion probabilities are the same as ``Invertd``'s;
only the probabilities of background voxels far from any foreground are rounded to 1.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import Compose, InvertibleTransform, MapTransform, SpatialResample
from monai.transforms import Spacingd as MonaiSpacingd
from monai.transforms.utils import allow_missing_keys_mode
from monai.utils import TraceKeys, ensure_tuple_rep, get_torch_dtype_from_string

__all__ = ["InvertProbabilitiesd", "foreground_box"]

#: Low-resolution voxels kept around the open region: the interpolation's neighbours and one more.
_LOW_MARGIN = 2
#: Input-grid voxels added around the resampled box.
_FULL_MARGIN = 1


def foreground_box(probabilities: torch.Tensor, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The voxel box ``[lo, hi]`` (inclusive) where the decision is open, or None when it is background everywhere.

    Args:
        probabilities: ``(C, x, y, z)`` softmax output, channel 0 background.
        threshold: the lesion threshold (summed lesion probability that makes a lesion), if any.

    Returns:
        ``(lo, hi)`` integer arrays of the voxels where a foreground class is at least
        ``min(0.5, threshold)`` probable (arg-max other than background needs more than 0.5).
    """
    floor = min(0.5, float(threshold)) if threshold is not None else 0.5
    open_ = (1.0 - probabilities[0]) >= floor - 1e-4  # a little wider than needed: never narrower
    if not bool(open_.any()):
        return None
    where = [torch.nonzero(open_.any(dim=tuple(d for d in range(3) if d != axis))).flatten() for axis in range(3)]
    return np.array([int(w[0]) for w in where]), np.array([int(w[-1]) for w in where])


class InvertProbabilitiesd(MapTransform):
    """``Invertd`` for class probabilities: the same label map, resampling only where it is open.

    ``data[key]``: ``(C, x, y, z)`` softmax probabilities on the preprocessed grid; replaced
    by ``(C, X, Y, Z)`` on the grid of ``data[orig_key]`` before ``transform`` (its
    ``affine`` and metadata). See the module's docstring for why the label map is unchanged.

    Args:
        keys: the probabilities' key, usually ``"pred"``.
        transform: the preprocessing (a ``Compose``) applied to ``orig_keys``.
        orig_keys: the preprocessed image's key, whose applied operations are undone.
        lesion_threshold: summed lesion probability that makes a voxel a lesion (as
            :class:`mednet.transforms.Localised` uses it), or None for arg-max.
    """

    def __init__(
        self,
        keys: KeysCollection,
        transform: Compose,
        orig_keys: KeysCollection,
        lesion_threshold: float | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.transform = transform
        self.orig_keys = ensure_tuple_rep(orig_keys, len(self.keys))
        self.lesion_threshold = lesion_threshold

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        """Undo the preprocessing on each key's probabilities."""
        d = dict(data)
        for key, orig_key in self.key_iterator(d, self.orig_keys):
            source = d[orig_key]
            pred = d[key].detach() if isinstance(d[key], torch.Tensor) else torch.as_tensor(d[key])
            pred = MetaTensor(pred.as_tensor() if isinstance(pred, MetaTensor) else pred)
            pred.meta = copy.deepcopy(dict(source.meta))
            pred.applied_operations = copy.deepcopy(list(source.applied_operations))
            inputs = {orig_key: pred}
            flat = self.transform.flatten().transforms if isinstance(self.transform, Compose) else [self.transform]
            for t in reversed([t for t in flat if isinstance(t, InvertibleTransform)]):
                if isinstance(t, MonaiSpacingd):
                    inputs[orig_key] = self._undo_resampling(inputs[orig_key])
                else:
                    with allow_missing_keys_mode(t):
                        inputs = dict(t.inverse(inputs))
            d[key] = inputs[orig_key]
        return d

    def _undo_resampling(self, pred: MetaTensor) -> MetaTensor:
        """Undo the last applied operation, a ``SpatialResample``, inside the open box only."""
        op = pred.applied_operations[-1]
        if op.get(TraceKeys.CLASS_NAME) not in ("SpatialResample", "Spacing"):
            found = op.get(TraceKeys.CLASS_NAME)
            raise RuntimeError(f"InvertProbabilitiesd: expected Spacingd's resampling last, found {found}")
        info = op[TraceKeys.EXTRA_INFO]
        empty = pred.as_tensor().sum(0) == 0  # padded back by a crop's inverse (a softmax sums to 1): background
        if bool(empty.any()):  # pred is this transform's own copy
            pred.as_tensor()[0][empty] = 1.0
        full_affine = torch.as_tensor(info["src_affine"], dtype=torch.float64)
        full_size = np.asarray(op[TraceKeys.ORIG_SIZE], dtype=int)
        remaining = pred.applied_operations[:-1]
        channels = pred.shape[0]
        out = torch.zeros((channels, *full_size.tolist()), dtype=pred.dtype)
        out[0] = 1.0
        box = foreground_box(pred, self.lesion_threshold)
        if box is not None:
            low_affine = torch.as_tensor(pred.affine, dtype=torch.float64)
            lo = np.maximum(box[0] - _LOW_MARGIN, 0)
            hi = np.minimum(box[1] + _LOW_MARGIN, np.asarray(pred.shape[1:]) - 1)
            # the input-grid voxels whose sample point falls within the open box and its neighbours
            corners = np.array(
                np.meshgrid(*[(a - 1.0, b + 1.0) for a, b in zip(box[0], box[1], strict=True)], indexing="ij")
            )
            corners = np.vstack([corners.reshape(3, -1), np.ones((1, 8))])
            to_full = np.linalg.inv(full_affine.numpy()) @ low_affine.numpy()
            spots = (to_full @ corners)[:3]
            f_lo = np.clip(np.floor(spots.min(axis=1)).astype(int) - _FULL_MARGIN, 0, full_size - 1)
            f_hi = np.clip(np.ceil(spots.max(axis=1)).astype(int) + _FULL_MARGIN, 0, full_size - 1)
            crop = pred.as_tensor()[:, lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1]
            shift = torch.eye(4, dtype=torch.float64)
            shift[:3, 3] = torch.as_tensor(lo, dtype=torch.float64)
            f_shift = torch.eye(4, dtype=torch.float64)
            f_shift[:3, 3] = torch.as_tensor(f_lo, dtype=torch.float64)
            resampler = SpatialResample()
            corners_aligned = info.get("align_corners")
            with resampler.trace_transform(False):
                part = resampler(
                    MetaTensor(crop, affine=low_affine @ shift),
                    dst_affine=full_affine @ f_shift,
                    spatial_size=(f_hi - f_lo + 1).tolist(),
                    mode=info.get("mode", "bilinear"),
                    padding_mode=info.get("padding_mode", "border"),
                    align_corners=False if corners_aligned in (None, TraceKeys.NONE) else corners_aligned,
                    dtype=get_torch_dtype_from_string(info["dtype"]) if "dtype" in info else torch.float64,
                )
            region = tuple(slice(int(a), int(b) + 1) for a, b in zip(f_lo, f_hi, strict=True))
            out[(slice(None), *region)] = torch.as_tensor(part).to(out.dtype)
        meta = dict(pred.meta)
        meta["affine"] = full_affine
        result = MetaTensor(out, meta=meta)
        result.applied_operations = remaining
        return result
