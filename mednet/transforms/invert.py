"""The label map a network's probabilities decide, on the input's grid: interpolated only where it is open.

MONAI's ``Invertd`` undoes the preprocessing on the network's output: for the resampling
step (``Spacingd``) it interpolates every class's probability at every voxel of the
input's grid (a torso of 240 x 240 x 131 voxels and 14 classes: 105 million values), and
the label map is decided from them afterwards. Most of that work decides nothing. Linear
interpolation gives a convex combination of the neighbouring low-resolution voxels, and
every part of the decision (:func:`mednet.localisation.decide_labels`: the arg-max; with a
lesion threshold, which side of it the lesion classes' summed probability lies, and the
arg-max within the lesion classes or within the others) is kept by convex combinations:
where every neighbour decides alike, so does the interpolated voxel.

:class:`InvertLabelsd` therefore decides on the network's grid, and interpolates the
class probabilities (linearly, with the padding ``Spacingd`` recorded) only at the
input-grid voxels whose low-resolution neighbourhood decides differently: the borders
between classes. The summed lesion probability, which the lesion table averages, is
interpolated at the lesion voxels. The other steps (orientation, crops, pads) are undone
by MONAI's inverses on two channels (labels and lesion probability) instead of one per
class. The label map is ``Invertd``'s followed by the same decision (tested on flipped,
permuted and oblique grids).
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import Compose, InvertibleTransform, MapTransform
from monai.transforms import Spacingd as MonaiSpacingd
from monai.transforms.utils import allow_missing_keys_mode
from monai.utils import TraceKeys, ensure_tuple_rep, get_torch_dtype_from_string
from scipy import ndimage

from mednet.localisation.outputs import decide_labels

__all__ = ["InvertLabelsd"]

#: Sample points this close to a low-resolution voxel centre (in voxels) look at the neighbours on both sides.
_EPS = 1e-6
#: Input-grid voxels handled at once (bounds the memory of the coordinates).
_CHUNK = 1 << 20


class InvertLabelsd(MapTransform):
    """The label map that ``Invertd``'s probabilities would decide, interpolating only where it is open.

    ``data[key]``: ``(C, x, y, z)`` softmax probabilities on the preprocessed grid
    (channel ``c`` is label value ``c``). Replaced by the ``(1, X, Y, Z)`` int16 decided
    labels on the grid of ``data[orig_key]`` before ``transform`` (its affine and
    metadata), before any clean-up; ``data[f"{key}_lesion_probability"]`` gets the
    ``(1, X, Y, Z)`` float32 summed lesion probability at the lesion voxels (0 elsewhere).
    :class:`mednet.transforms.Localised` takes both. See the module's docstring for why
    the labels are ``Invertd``'s.

    Args:
        keys: the probabilities' key, usually ``"pred"``.
        transform: the preprocessing (a ``Compose``) applied to ``orig_keys``; at most one
            ``Spacingd`` in it.
        orig_keys: the preprocessed image's key, whose applied operations are undone.
        lesion_classes: the lesion label values (a list, or a mapping value -> name).
        lesion_threshold: summed lesion probability that makes a voxel a lesion, or None
            for the arg-max (see :class:`mednet.localisation.LabelScheme`).
    """

    def __init__(
        self,
        keys: KeysCollection,
        transform: Compose,
        orig_keys: KeysCollection,
        lesion_classes: Sequence[int] | Mapping | None = None,
        lesion_threshold: float | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.transform = transform
        self.orig_keys = ensure_tuple_rep(orig_keys, len(self.keys))
        self.lesion_classes = sorted(int(v) for v in (lesion_classes or ()))
        self.lesion_threshold = None if lesion_threshold is None else float(lesion_threshold)

    @property
    def decision(self) -> dict:
        """The decision's settings, recorded in the output's metadata (``Localised`` checks them)."""
        return {"lesion_classes": self.lesion_classes, "lesion_threshold": self.lesion_threshold}

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        """Undo the preprocessing on each key's probabilities, deciding the labels on the way."""
        d = dict(data)
        for key, orig_key in self.key_iterator(d, self.orig_keys):
            source = d[orig_key]
            pred = d[key].detach() if isinstance(d[key], torch.Tensor) else torch.as_tensor(d[key])
            # on the CPU: the decision is numpy's (an evaluator on a GPU hands the output over on the GPU)
            pred = MetaTensor((pred.as_tensor() if isinstance(pred, MetaTensor) else pred).cpu())
            pred.meta = copy.deepcopy(dict(source.meta))
            pred.applied_operations = copy.deepcopy(list(source.applied_operations))
            inputs, decided = {orig_key: pred}, False
            flat = self.transform.flatten().transforms if isinstance(self.transform, Compose) else [self.transform]
            for t in reversed([t for t in flat if isinstance(t, InvertibleTransform)]):
                if isinstance(t, MonaiSpacingd):
                    if decided:
                        raise RuntimeError("InvertLabelsd: expected at most one Spacingd in the preprocessing, found 2")
                    inputs[orig_key], decided = self._decide_and_undo_resampling(inputs[orig_key]), True
                else:
                    with allow_missing_keys_mode(t):
                        inputs = dict(t.inverse(inputs))
            out = inputs[orig_key]
            if decided:
                labels, lesion = out.as_tensor()[0].round().to(torch.int16), out.as_tensor()[1]
            else:  # nothing resampled: the probabilities are on the input's grid already
                decided_labels, lesion_probability = self._decide(_with_background(out.as_tensor()).numpy())
                labels, lesion = torch.as_tensor(decided_labels), torch.as_tensor(lesion_probability)
            meta = {**dict(out.meta), "decision": self.decision}
            d[key] = MetaTensor(labels[None].contiguous(), meta=meta)
            d[f"{key}_lesion_probability"] = MetaTensor(lesion[None].float().contiguous(), meta=dict(out.meta))
        return d

    def _decide(self, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decided labels and the summed lesion probability at the lesion voxels (0 elsewhere), ``(...)`` each."""
        labels, lesion = decide_labels(probabilities, self.lesion_classes, self.lesion_threshold)
        if lesion is None:
            return labels, np.zeros(labels.shape, dtype=np.float32)
        return labels, np.where(np.isin(labels, self.lesion_classes), lesion, np.float32(0.0))

    def _decide_and_undo_resampling(self, pred: MetaTensor) -> MetaTensor:
        """Undo the last applied operation, a ``SpatialResample``: ``(2, X, Y, Z)`` labels and lesion probability."""
        op = pred.applied_operations[-1]
        if op.get(TraceKeys.CLASS_NAME) not in ("SpatialResample", "Spacing"):
            found = op.get(TraceKeys.CLASS_NAME)
            raise RuntimeError(f"InvertLabelsd: expected Spacingd's resampling last, found {found}")
        info = op[TraceKeys.EXTRA_INFO]
        mode, padding = info.get("mode", "bilinear"), info.get("padding_mode", "border")
        if mode != "bilinear":  # the convex-combination argument is linear interpolation's
            raise ValueError(f"InvertLabelsd: expected Spacingd's mode bilinear, found {mode!r} (invert with MONAI's "
                             "Invertd, then Localised)")  # fmt: skip
        dtype = get_torch_dtype_from_string(info["dtype"]) if "dtype" in info else torch.float64
        probabilities = _with_background(pred.as_tensor()).float()
        low_labels, low_lesion = decide_labels(probabilities.numpy(), self.lesion_classes, self.lesion_threshold)
        thresholded = low_lesion is not None and self.lesion_threshold is not None
        above = low_lesion >= self.lesion_threshold if thresholded else 0
        code = low_labels.astype(np.int32) * 2 + above  # the decision, both parts
        # around each low-resolution voxel, 3 x 3 x 3 of them decide alike (edges repeated: the border padding)
        padded = np.pad(code, 1, mode="edge")
        low, high = ndimage.minimum_filter(padded, size=3), ndimage.maximum_filter(padded, size=3)
        alike = low == high

        full_affine = torch.as_tensor(info["src_affine"], dtype=torch.float64)
        full_size = tuple(int(n) for n in op[TraceKeys.ORIG_SIZE])
        to_low = np.linalg.inv(np.asarray(pred.affine, dtype=np.float64)) @ full_affine.numpy()
        labels, opened = _decided_where_alike(alike, low // 2, to_low, full_size, padding != "border")
        low_grid = probabilities.to(dtype)
        if opened[0].size:  # the rest: interpolated and decided
            sampled = _sample(low_grid, _points(to_low, opened), padding)
            labels[opened] = decide_labels(sampled.numpy(), self.lesion_classes, self.lesion_threshold)[0]
        lesion = np.zeros(full_size, dtype=np.float32)
        voxels = np.nonzero(np.isin(labels, self.lesion_classes))
        if voxels[0].size:
            summed = low_grid[[c for c in self.lesion_classes if c < low_grid.shape[0]]].sum(0, keepdim=True)
            lesion[voxels] = _sample(summed, _points(to_low, voxels), padding)[0].numpy()
        out = torch.stack([torch.as_tensor(labels).float(), torch.as_tensor(lesion)])
        meta = dict(pred.meta)
        meta["affine"] = full_affine
        result = MetaTensor(out, meta=meta)
        result.applied_operations = pred.applied_operations[:-1]
        return result


def _decided_where_alike(
    alike: np.ndarray, decision: np.ndarray, to_low: np.ndarray, size: tuple[int, ...], outside_open: bool
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The labels of the input-grid voxels whose low-resolution neighbourhood decides alike, and the others.

    Args:
        alike: ``(x + 2, y + 2, z + 2)``: whether the 3 x 3 x 3 low-resolution voxels around
            each (edge-padded by one) decide alike.
        decision: the same shape, the label decided there (where alike).
        to_low: 4 x 4, input-grid voxel -> low-resolution voxel coordinates.
        size: the input grid's shape.
        outside_open: sample points outside the low-resolution grid are open (a padding
            other than the border's).

    Returns:
        ``size`` int16 labels (those of open voxels undefined) and the open voxels' indices
        (``np.nonzero`` style).
    """
    last = np.asarray(alike.shape) - 3
    labels = np.empty(size, dtype=np.int16)
    opened = []
    step = max(1, _CHUNK // max(1, size[1] * size[2]))
    for x0 in range(0, size[0], step):  # slabs of the input grid
        index = np.ix_(np.arange(x0, min(x0 + step, size[0])), np.arange(size[1]), np.arange(size[2]))
        # each axis's sample coordinate, broadcast over the axes it depends on (one each on a resampled grid)
        points = [sum((to_low[a, b] * index[b] for b in range(3) if to_low[a, b] != 0), start=to_low[a, 3])
                  for a in range(3)]  # fmt: skip
        # a point's interpolation neighbours lie within the 3 voxels from floor(point - eps): centred there
        centre = tuple(
            np.floor(np.clip(p, 0, n) - _EPS).astype(np.int64) + 2 for p, n in zip(points, last, strict=True)
        )
        decided = alike[centre]
        if outside_open:
            for p, n in zip(points, last, strict=True):
                decided = decided & (p >= 0) & (p <= n)
        labels[x0 : x0 + step] = decision[centre]
        where = np.nonzero(~decided)
        opened.append((where[0] + x0, where[1], where[2]))
    return labels, tuple(np.concatenate([part[a] for part in opened]) for a in range(3))


def _points(to_low: np.ndarray, voxels: tuple[np.ndarray, ...]) -> np.ndarray:
    """Low-resolution coordinates ``(3, N)`` of input-grid ``voxels`` (``np.nonzero`` style)."""
    return to_low[:3, :3] @ np.array(voxels, dtype=np.float64) + to_low[:3, 3:]


def _with_background(probabilities: torch.Tensor) -> torch.Tensor:
    """``(C, ...)`` with voxels whose probabilities sum to 0 (padded back by a crop's inverse) made background."""
    empty = probabilities.sum(0) == 0
    if not bool(empty.any()):
        return probabilities
    probabilities = probabilities.clone()
    probabilities[0][empty] = 1.0
    return probabilities


def _sample(grid: torch.Tensor, points: np.ndarray, padding: str) -> torch.Tensor:
    """``grid`` ``(C, x, y, z)`` linearly interpolated at ``points`` ``(3, N)`` (voxel indices): ``(C, N)``.

    ``grid_sample`` with corners aligned, where normalised -1 and 1 are the centres of the
    first and last voxels, so that a point is a voxel index as MONAI's resampler maps it.
    """
    size = torch.as_tensor(grid.shape[1:], dtype=torch.float64)
    where = torch.as_tensor(points, dtype=torch.float64).T  # (N, 3) as x, y, z
    normalised = torch.where(size > 1, 2.0 * where / (size - 1).clamp(min=1) - 1.0, torch.zeros_like(where))
    out = []
    for start in range(0, normalised.shape[0], _CHUNK):  # grid_sample takes (W, H, D) = (z, y, x) order
        part = normalised[start : start + _CHUNK].flip(-1).to(grid.dtype)[None, :, None, None, :]
        sampled = F.grid_sample(grid[None], part, mode="bilinear", padding_mode=padding, align_corners=True)
        out.append(sampled[0, :, :, 0, 0])
    return torch.cat(out, dim=1) if out else torch.zeros((grid.shape[0], 0), dtype=grid.dtype)
