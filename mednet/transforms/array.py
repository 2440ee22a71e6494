"""Array transforms: one ``(C, *spatial)`` image at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import RandomizableTransform, Transform
from monai.utils import ImageMetaKey, TransformBackends

from mednet.io.field_of_view import MIN_WEDGE_FRACTION, field_of_view_bytes, fill_from_nearest, outside_field_of_view
from mednet.io.grid import resample_to_grid
from mednet.io.memory import check_memory

__all__ = ["FieldOfViewFill", "RandFieldOfViewCut", "RandSequenceDropout", "ResampleToReference"]


def _probability(prob: object, who: str) -> float:
    """``prob`` as a float, or a ``ValueError`` naming ``who`` and ``prob`` when it is not a number in [0, 1]."""
    try:
        value = float(prob)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{who}: prob: expected a probability in [0, 1], found {prob!r}")
    return value


class ResampleToReference(Transform):
    """Bring an image onto a reference image's grid, in world coordinates, only if it is off it.

    Unlike MONAI's ``ResampleToMatch``, an image already on the reference grid (same
    shape, corners within 1% of a voxel) is not interpolated: it only takes the
    reference's affine exactly.

    Args:
        label: nearest-neighbour interpolation (label maps) instead of trilinear.

    Example:
        >>> t2_on_t1 = ResampleToReference()(t2, t1)  # doctest: +SKIP
    """

    def __init__(self, label: bool = False):
        self.label = label

    def __call__(self, img: MetaTensor, reference: MetaTensor) -> MetaTensor:
        """Return ``img`` (``(C, x, y, z)``) on ``reference``'s grid: ``(C, x', y', z')``."""
        return resample_to_grid(img, reference, label=self.label)


class RandSequenceDropout(RandomizableTransform):
    """Zero a random proper subset of an image's channels (MRI sequences), as if they had not been acquired.

    The localisation networks take a case's sequences stacked as channels; at inference a
    missing sequence is given as an all-zero channel. Training with this transform shows
    the network such cases. With probability ``prob`` it first draws how many channels to
    keep, uniformly from 1 to ``C - 1``, then which ones (each subset of that size alike),
    and sets every other channel to 0; at least one channel always stays as it was. An
    image with a single channel is returned unchanged. Put it after the intensity
    normalisation and after every transform that could make a zero channel non-zero (an
    intensity shift), so that a dropped channel is exactly 0, as at inference.

    Seeded as MONAI's random transforms: ``set_random_state(seed)``, or through
    ``monai.data.DataLoader``, which seeds the transforms of its dataset.

    Args:
        prob: probability of dropping channels from an image, in [0, 1]; 0 leaves every
            image as it is.

    Raises:
        ValueError: ``prob`` outside [0, 1].

    Example:
        >>> import torch
        >>> dropout = RandSequenceDropout(prob=1.0).set_random_state(seed=0)
        >>> image = torch.ones(4, 8, 8, 8)  # (C, x, y, z): t1, t1c, t2, flair
        >>> out = dropout(image)
        >>> out.shape, 1 <= int((out.flatten(1).abs().sum(1) > 0).sum()) <= 3
        (torch.Size([4, 8, 8, 8]), True)
    """

    backend: ClassVar[list[TransformBackends]] = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, prob: float = 0.3):
        super().__init__(_probability(prob, "RandSequenceDropout"))
        self._keep: np.ndarray | None = None

    @property
    def kept(self) -> np.ndarray | None:
        """The last draw: a boolean mask of the channels kept, ``(C,)``, or ``None`` when nothing is dropped."""
        return self._keep if self._do_transform else None

    def randomize(self, data: int) -> None:
        """Draw whether to drop channels of an image with ``data`` channels, and which."""
        super().randomize(None)
        self._keep = None
        if self._do_transform and data < 2:
            self._do_transform = False  # one sequence: nothing can be dropped
        if not self._do_transform:
            return
        n_keep = int(self.R.randint(1, data))  # uniform in 1 .. C - 1
        keep = np.zeros(data, dtype=bool)
        keep[self.R.choice(data, size=n_keep, replace=False)] = True
        self._keep = keep

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """Return ``img`` (``(C, *spatial)``) with the dropped channels set to 0: same shape, type and metadata.

        Args:
            img: a channel-first image, one channel per sequence.
            randomize: draw anew; ``False`` applies the last draw (that of :meth:`randomize`).

        Raises:
            ValueError: ``img`` has no channel dimension, or (with ``randomize=False``) a
                different number of channels from the last draw's.
        """
        if img.ndim < 2:
            shape = tuple(img.shape)
            raise ValueError(f"RandSequenceDropout: img: expected a channel-first image (C, *spatial), found {shape}")
        channels = int(img.shape[0])
        if randomize:
            self.randomize(channels)
        if not self._do_transform:
            return img
        if self._keep is None or len(self._keep) != channels:
            drawn = "none" if self._keep is None else len(self._keep)
            raise ValueError(f"RandSequenceDropout: img has {channels} channels, the last draw was for {drawn}")
        drop = ~self._keep
        if isinstance(img, torch.Tensor):
            out = img.clone()  # a MetaTensor keeps its affine and metadata
            out[torch.as_tensor(drop, device=img.device)] = 0
        else:
            out = np.array(img, copy=True)
            out[drop] = 0
        return out


class RandFieldOfViewCut(RandomizableTransform):
    """Draw a random oblique plane that cuts a sample's field of view: the voxels a scan would not reach.

    A scan acquired obliquely and then reformatted, or resampled onto an axis-aligned grid
    (a PACS export, ``nibabel.processing.resample_to_output``), holds wedges of exact zeros
    where the acquisition did not reach; ``NormalizeIntensityd(nonzero=True)`` leaves them
    0. A network that has only seen field-of-view edges along its grid's axes can take such
    a wedge's edge for a lesion. With probability ``prob`` this transform draws a plane with
    a normal uniform on the sphere, placed so that it cuts off a fraction of the sample's
    voxels drawn uniformly from ``fraction``; :meth:`__call__` gives the mask of the voxels
    beyond it. :class:`mednet.transforms.RandFieldOfViewCutd` applies it to images and
    labels.

    With ``prob`` 0 nothing is drawn at all: a training run without it draws the same random
    numbers as one before the transform existed.

    Args:
        prob: probability of cutting a sample, in [0, 1].
        fraction: ``(low, high)``, the range of the fraction of voxels cut off, in (0, 1).

    Raises:
        ValueError: ``prob`` outside [0, 1]; ``fraction`` not ``0 < low <= high < 1``.

    Example:
        >>> cut = RandFieldOfViewCut(prob=1.0, fraction=(0.2, 0.2)).set_random_state(seed=0)
        >>> mask = cut((16, 16, 8))
        >>> mask.shape, round(float(mask.mean()), 1)
        ((16, 16, 8), 0.2)
    """

    def __init__(self, prob: float = 0.0, fraction: Sequence[float] = (0.05, 0.35)):
        super().__init__(_probability(prob, "RandFieldOfViewCut"))
        low, high = (float(f) for f in fraction)
        if not 0.0 < low <= high < 1.0:
            raise ValueError(f"RandFieldOfViewCut: fraction: expected (low, high) with 0 < low <= high < 1, "
                             f"found {tuple(fraction)!r}")  # fmt: skip
        self.fraction = (low, high)
        self._normal: np.ndarray | None = None
        self._cut = 0.0

    def randomize(self, data: int) -> None:
        """Draw whether to cut a sample with ``data`` spatial dimensions, the plane's normal and the fraction cut."""
        self._do_transform = False
        if self.prob == 0.0:
            return  # no draw at all
        super().randomize(None)
        if self._do_transform:
            normal = self.R.normal(size=data)
            self._normal = normal / max(float(np.linalg.norm(normal)), 1e-12)
            self._cut = float(self.R.uniform(*self.fraction))

    def __call__(self, spatial_shape: Sequence[int], randomize: bool = True) -> np.ndarray | None:
        """The ``spatial_shape`` boolean mask of the voxels beyond the plane, or ``None`` when nothing is cut."""
        shape = tuple(int(s) for s in spatial_shape)
        if randomize:
            self.randomize(len(shape))
        if not self._do_transform or self._normal is None:
            return None
        grids = np.meshgrid(*(np.arange(s, dtype=np.float32) for s in shape), indexing="ij", sparse=True)
        projection = sum(g * w for g, w in zip(grids, self._normal.astype(np.float32), strict=True))
        projection = np.broadcast_to(projection, shape)
        n_cut = round(self._cut * projection.size)
        if n_cut < 1:
            return None
        # the n_cut voxels furthest along the normal
        threshold = np.partition(projection, projection.size - n_cut, axis=None)[projection.size - n_cut]
        return projection >= threshold


class FieldOfViewFill(Transform):
    """Fill the zeros beyond a scan's acquired field of view (a reformat's corners, bands at the edges) for the network.

    The counterpart at inference of :class:`RandFieldOfViewCut`: a scan reformatted onto an
    axis-aligned grid holds wedges of exact zeros where the scanner did not reach, and their
    plane edges, cut through the anatomy, look like lesions to a network. :meth:`find`
    recognises them (:func:`mednet.io.field_of_view.outside_field_of_view`: exactly 0 in
    every present channel, connected to the border, meeting the content on at most six
    planes); so are bands of zeros along the image's edges. A skull-stripped scan's zero
    background and a body's masked air follow the anatomy, not planes, and are left alone.
    :meth:`__call__` gives every voxel found, in every channel, the values of the nearest
    voxel outside the region found (in mm), so that the network sees no edge there; an image
    without such voxels comes back unchanged (the same object).

    Args:
        min_fraction: zero regions smaller than this fraction of the volume are left alone.

    Example:
        >>> filled = FieldOfViewFill()(image)  # doctest: +SKIP
    """

    backend: ClassVar = [TransformBackends.NUMPY, TransformBackends.TORCH]

    def __init__(self, min_fraction: float = MIN_WEDGE_FRACTION):
        self.min_fraction = float(min_fraction)

    def find(self, img: NdarrayOrTensor, spacing: Sequence[float] | None = None) -> np.ndarray | None:
        """The ``(x, y, z)`` mask of ``img``'s (``(C, x, y, z)``) voxels beyond its field of view, or ``None``.

        ``spacing`` (mm) defaults to a MetaTensor's ``pixdim``, else 1 mm.

        Raises:
            InvalidImageError: a zero region is left to search and finding and filling it
                would need more memory than is available
                (:func:`mednet.io.field_of_view.field_of_view_bytes`, checked before the search
                allocates anything); the message names the file (a MetaTensor's
                ``filename_or_obj``) and gives the estimate.
        """
        array = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
        if array.ndim != 4:
            raise ValueError(f"FieldOfViewFill: expected a (C, x, y, z) image, found shape {tuple(array.shape)}")
        name = img.meta.get(ImageMetaKey.FILENAME_OR_OBJ) if isinstance(img, MetaTensor) else None

        def check() -> None:  # only when a zero region is left to search: most scans never get here
            check_memory(name or "image", field_of_view_bytes(array.shape, array.dtype.itemsize),
                         "find and fill the zeros beyond its field of view",
                         f"{' x '.join(map(str, array.shape))} {array.dtype} voxels (sequences x grid)")  # fmt: skip

        return outside_field_of_view(array, _voxel_mm(img, spacing), self.min_fraction, before_search=check)

    def fill(self, img: NdarrayOrTensor, mask: np.ndarray | None, spacing: Sequence[float] | None = None):
        """``img`` with each voxel of ``mask`` given the nearest outside voxel's values (``img`` if no mask)."""
        if mask is None:
            return img
        spacing = _voxel_mm(img, spacing)
        if isinstance(img, torch.Tensor):
            filled = fill_from_nearest(img.detach().cpu().numpy(), mask, spacing)
            out = img.clone()
            out.copy_(torch.as_tensor(filled))
            return out
        return fill_from_nearest(np.asarray(img), mask, spacing)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """``img`` (``(C, x, y, z)``) filled beyond its field of view: the same shape, type and metadata."""
        return self.fill(img, self.find(img))


def _voxel_mm(img: NdarrayOrTensor, spacing: Sequence[float] | None) -> list[float]:
    """``spacing`` when given, else a MetaTensor's ``pixdim``, else 1 mm per voxel."""
    if spacing is not None:
        return [float(s) for s in spacing]
    return [float(s) for s in img.pixdim] if isinstance(img, MetaTensor) else [1.0, 1.0, 1.0]
