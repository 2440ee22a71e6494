"""Array transforms: one ``(C, *spatial)`` image at a time."""

from __future__ import annotations

from monai.data import MetaTensor
from monai.transforms import Transform

from mednet.io.grid import resample_to_grid

__all__ = ["ResampleToReference"]


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
