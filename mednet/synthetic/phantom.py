"""From a painted phantom to MRI volumes: tissue contrast, texture, partial volume, bias, noise.

A :class:`Phantom` is an ordered list of (tissue, shape) layers in the subject's
frame; later layers paint over earlier ones. :func:`render` samples it on an
acquisition grid: each voxel is sampled at several points along its thick axes and
the signals averaged (partial volume), tissue signal follows a per-sequence contrast
table with smooth texture, then a smooth multiplicative bias field, a per-subject
intensity scale and Rician noise are applied. The label map takes the tissue at each
voxel centre.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

from mednet.io.grid import Grid
from mednet.synthetic.randomise import CaseStyle, ghosting
from mednet.synthetic.shapes import Shape, rotation

__all__ = ["PLANE_AXES", "TISSUES", "Phantom", "acquisition_grid", "render"]

# Relative signal of each tissue per sequence, 0..1, from the usual MRI appearances:
# T1 fat bright and fluid dark; T2 fluid bright; FLAIR fluid suppressed; T1 after
# gadolinium: vessels and enhancing tissue bright; DWI (high b): restricted diffusion
# (cellular tumour) bright, free fluid dark. Flowing blood is dark on T2 (flow void).
TISSUES: dict[str, dict[str, float]] = {
    #                   t1     t1c    t2     flair  dwi
    "air":         dict(t1=0.00, t1c=0.00, t2=0.00, flair=0.00, dwi=0.00),
    "fat":         dict(t1=0.92, t1c=0.92, t2=0.75, flair=0.70, dwi=0.10),
    "muscle":      dict(t1=0.35, t1c=0.38, t2=0.22, flair=0.25, dwi=0.20),
    "bone":        dict(t1=0.06, t1c=0.07, t2=0.05, flair=0.05, dwi=0.03),
    "marrow":      dict(t1=0.70, t1c=0.72, t2=0.45, flair=0.45, dwi=0.15),
    "csf":         dict(t1=0.12, t1c=0.13, t2=1.00, flair=0.06, dwi=0.05),
    "grey":        dict(t1=0.42, t1c=0.44, t2=0.58, flair=0.55, dwi=0.40),
    "white":       dict(t1=0.60, t1c=0.61, t2=0.42, flair=0.44, dwi=0.35),
    "vessel":      dict(t1=0.30, t1c=0.95, t2=0.08, flair=0.10, dwi=0.05),
    "oedema":      dict(t1=0.36, t1c=0.38, t2=0.84, flair=0.86, dwi=0.35),
    "tumour":      dict(t1=0.34, t1c=0.37, t2=0.80, flair=0.74, dwi=0.55),
    "enhancing":   dict(t1=0.40, t1c=0.92, t2=0.66, flair=0.66, dwi=0.65),
    "necrosis":    dict(t1=0.20, t1c=0.22, t2=0.92, flair=0.42, dwi=0.15),
    "cyst":        dict(t1=0.14, t1c=0.15, t2=0.97, flair=0.12, dwi=0.05),
    "calcification": dict(t1=0.10, t1c=0.10, t2=0.05, flair=0.06, dwi=0.04),
    "liver":       dict(t1=0.55, t1c=0.62, t2=0.25, flair=0.25, dwi=0.30),
    "spleen":      dict(t1=0.40, t1c=0.58, t2=0.55, flair=0.45, dwi=0.50),
    "kidney":      dict(t1=0.38, t1c=0.75, t2=0.60, flair=0.45, dwi=0.45),
    "adrenal":     dict(t1=0.42, t1c=0.60, t2=0.40, flair=0.40, dwi=0.35),
    "bowel":       dict(t1=0.40, t1c=0.48, t2=0.55, flair=0.45, dwi=0.30),
    "lung":        dict(t1=0.03, t1c=0.04, t2=0.04, flair=0.03, dwi=0.02),
    "heart":       dict(t1=0.40, t1c=0.70, t2=0.35, flair=0.30, dwi=0.20),
    "nerve":       dict(t1=0.45, t1c=0.47, t2=0.50, flair=0.50, dwi=0.30),
    "dura":        dict(t1=0.35, t1c=0.85, t2=0.30, flair=0.35, dwi=0.20),
    "retroperitoneum": dict(t1=0.85, t1c=0.86, t2=0.70, flair=0.65, dwi=0.10),
    "gliosis":     dict(t1=0.48, t1c=0.49, t2=0.66, flair=0.74, dwi=0.33),
    "fluid":       dict(t1=0.10, t1c=0.11, t2=0.95, flair=0.10, dwi=0.08),
    "gas":         dict(t1=0.01, t1c=0.01, t2=0.01, flair=0.01, dwi=0.01),
    "stool":       dict(t1=0.45, t1c=0.47, t2=0.35, flair=0.35, dwi=0.25),
}  # fmt: skip

#: World axes (0 x, 1 y, 2 z) that the array axes of each acquisition plane follow; the last is the slice axis.
PLANE_AXES: dict[str, tuple[int, int, int]] = {"axial": (0, 1, 2), "coronal": (0, 2, 1), "sagittal": (1, 2, 0)}

_SEQUENCE_COLUMN = {"t1": "t1", "t1c": "t1c", "t2": "t2", "t2w": "t2", "flair": "flair", "dwi": "dwi"}


@dataclass
class Phantom:
    """A subject as painted layers.

    Attributes:
        layers: ``(tissue, shape)`` in painting order; a later layer paints over earlier ones.
        labels: tissue -> label value in the label map; unlisted tissues are 0.
        texture: tissue (full name) -> ``(coarse, fine)`` relative amplitude of smooth intensity
            variation (fine ~3 mm grain, coarse ~15 mm); unlisted tissues get ``(0.04, 0.02)``.
        contrast: per-subject overrides, tissue -> {sequence column -> signal}.
        offset: the subject centre's world position, mm.
        foreground: what skull stripping keeps (the brain), or None where it does not apply.
    """

    layers: list[tuple[str, Shape]]
    labels: dict[str, int]
    texture: dict[str, tuple[float, float]] = field(default_factory=dict)
    contrast: dict[str, dict[str, float]] = field(default_factory=dict)
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    foreground: Shape | None = None

    def tissues(self) -> list[str]:
        """Tissue names, index 0 being air."""
        names = ["air"]
        for tissue, _ in self.layers:
            if tissue not in names:
                names.append(tissue)
        return names

    def paint_grid(self, grid: Grid, shift: np.ndarray, names: list[str]) -> np.ndarray:
        """Tissue index at every voxel of ``grid``, sampled at ``voxel + shift`` (voxel units).

        Each layer is evaluated only on the block of voxels that its bounding box
        can reach, so small structures cost little on a large grid.

        Returns:
            ``grid.shape`` int16 array.
        """
        out = np.zeros(grid.shape, dtype=np.int16)
        to_index = np.linalg.inv(grid.affine)
        shape = np.asarray(grid.shape)
        for tissue, layer in self.layers:
            low, high = layer.bounds()
            corners = np.array(np.meshgrid(*zip(low, high, strict=True), indexing="ij")).reshape(3, -1).T + self.offset
            index = corners @ to_index[:3, :3].T + to_index[:3, 3] - shift
            start = np.clip(np.floor(index.min(axis=0)).astype(int) - 1, 0, shape)
            stop = np.clip(np.ceil(index.max(axis=0)).astype(int) + 2, 0, shape)
            if np.any(stop <= start):
                continue
            # world point of voxel (i, j, k) = origin + i * column0 + j * column1 + k * column2
            steps = [
                np.arange(a, b)[:, None] + shift[axis] for axis, (a, b) in enumerate(zip(start, stop, strict=True))
            ]
            x, y, z = (steps[axis] * grid.affine[:3, axis] for axis in range(3))
            origin = grid.affine[:3, 3] - self.offset
            points = (x[:, None, None] + y[None, :, None] + z[None, None, :] + origin).reshape(-1, 3)
            view = out[start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]]
            view[layer.inside(points).reshape(view.shape)] = names.index(tissue)
        return out

    def signal(self, names: list[str], sequence: str) -> np.ndarray:
        """Signal per tissue index for one sequence.

        A tissue named ``"base:variant"`` (e.g. ``"kidney:right"``) has its base
        tissue's contrast unless ``contrast`` overrides the full name.
        """
        column = _SEQUENCE_COLUMN[sequence]
        return np.array(
            [self.contrast.get(t, {}).get(column, TISSUES[t.split(":")[0]][column]) for t in names], np.float32
        )


def acquisition_grid(
    rng: np.random.Generator,
    centre: np.ndarray,
    fov_mm: tuple[float, float, float],
    matrix: int,
    slice_mm: float,
    orientation: str,
    tilt_deg: float = 4.0,
    plane: str = "axial",
) -> Grid:
    """An acquisition: ``matrix`` voxels along the first in-plane axis, square pixels, slices of ``slice_mm``.

    Args:
        rng: random source for the obliquity and the centring jitter.
        centre: world point (mm) the field of view is centred on (plus up to 5 mm jitter).
        fov_mm: field of view along the world axes x, y, z, mm.
        matrix: in-plane voxels along the first in-plane axis (the other scaled to keep
            square pixels).
        slice_mm: slice spacing, mm.
        orientation: ``"RAS"``, ``"LPS"`` or ``"LAS"``: which way the world axes x, y, z
            are walked by the array axes that follow them.
        tilt_deg: largest obliquity about the world z axis, degrees.
        plane: ``"axial"`` (slices along z), ``"coronal"`` (along y) or ``"sagittal"``
            (along x); see :data:`PLANE_AXES`.

    Returns:
        The :class:`~mednet.io.grid.Grid`.
    """
    order = PLANE_AXES[plane]
    pixel = fov_mm[order[0]] / matrix
    shape = (matrix, max(2, round(fov_mm[order[1]] / pixel)), max(2, round(fov_mm[order[2]] / slice_mm)))
    signs = {"R": 1.0, "L": -1.0, "A": 1.0, "P": -1.0, "S": 1.0}
    axes = np.diag([signs[orientation[0]], signs[orientation[1]], signs[orientation[2]]])[:, list(order)]
    direction = rotation(np.deg2rad(rng.uniform(-tilt_deg, tilt_deg))) @ axes
    affine = np.eye(4)
    affine[:3, :3] = direction * np.array([pixel, pixel, slice_mm])
    middle = (np.asarray(shape) - 1) / 2
    affine[:3, 3] = np.asarray(centre) + rng.uniform(-5, 5, 3) - affine[:3, :3] @ middle
    return Grid(shape, affine)


def _subsamples(spacing: tuple[float, ...], fine_mm: float) -> np.ndarray:
    """Sub-voxel offsets (voxel units), an odd count per axis so the centre is one of them."""
    counts = [1 if s <= fine_mm else 3 for s in spacing]
    axes = [(np.arange(n) - (n - 1) / 2) / n for n in counts]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def _smooth_field(
    rng: np.random.Generator, shape: tuple[int, ...], spacing: tuple[float, ...], mm: float
) -> np.ndarray:
    field_ = gaussian_filter(rng.standard_normal(shape).astype(np.float32), [mm / s for s in spacing], mode="wrap")
    return field_ / max(float(field_.std()), 1e-6)


def _bias_field(rng: np.random.Generator, shape: tuple[int, ...], strength: float) -> np.ndarray:
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    terms = [x, y, z, x * y, x * z, y * z, x * x, y * y, z * z]
    coefficients = rng.normal(0, strength / 2, len(terms))
    return np.exp(sum(c * t for c, t in zip(coefficients, terms, strict=True))).astype(np.float32)


def render(
    phantom: Phantom,
    grid: Grid,
    sequences: list[str],
    rng: np.random.Generator,
    fine_mm: float = 2.0,
    noise: float = 0.025,
    style: CaseStyle | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Sample the phantom on a grid as MRI volumes and a label map.

    Args:
        phantom: the subject.
        grid: the acquisition grid (world mm).
        sequences: sequence keys to render (``t1``, ``t1c``, ``t2``, ``t2w``, ``flair``, ``dwi``).
        rng: random source for texture, bias, scale and noise.
        fine_mm: voxels larger than this along an axis are sampled 3 times along it.
        noise: Rician noise standard deviation relative to the subject's intensity scale
            (the style's own noise level when a style is given).
        style: the case's randomised look (:mod:`mednet.synthetic.randomise`); None renders
            with mednet's contrast table as it is.

    Returns:
        ``({sequence: (x, y, z) image}, (x, y, z) uint8 labels)``: images int16, or
        float32 when the style z-scores them.
    """
    names = phantom.tissues()
    offsets = _subsamples(grid.spacing, fine_mm)
    tissue = np.stack([phantom.paint_grid(grid, offset, names).reshape(-1) for offset in offsets], axis=1)
    centre = tissue[:, len(offsets) // 2]
    lut = np.array([phantom.labels.get(t, 0) for t in names], dtype=np.uint8)
    labels = lut[centre].reshape(grid.shape)

    coarse = _smooth_field(rng, grid.shape, grid.spacing, 15.0).reshape(-1, 1)
    fine = _smooth_field(rng, grid.shape, grid.spacing, 3.0).reshape(-1, 1)
    amp_coarse = np.array([phantom.texture.get(t, (0.04, 0.02))[0] for t in names], np.float32)
    amp_fine = np.array([phantom.texture.get(t, (0.04, 0.02))[1] for t in names], np.float32)
    modulation = np.clip(1.0 + amp_coarse[tissue] * coarse + amp_fine[tissue] * fine, 0.2, 2.0)
    if style is None:
        images = {}
        for sequence in sequences:
            signal = (phantom.signal(names, sequence)[tissue] * modulation).mean(axis=1).reshape(grid.shape)
            scale = 1000.0 * rng.uniform(0.7, 1.35)
            clean = signal * _bias_field(rng, grid.shape, 0.25) * scale
            sigma = noise * scale * rng.uniform(0.7, 1.3)
            noisy = np.hypot(clean + rng.normal(0, sigma, grid.shape), rng.normal(0, sigma, grid.shape))
            images[sequence] = np.clip(np.rint(noisy), 0, 32767).astype(np.int16)
        return images, labels
    return _render_styled(phantom, grid, sequences, rng, style, names, tissue, modulation, offsets), labels


def _render_styled(phantom, grid, sequences, rng, style, names, tissue, modulation, offsets) -> dict[str, np.ndarray]:
    """The randomised counterpart of :func:`render`'s image loop (same arguments, drawn look)."""
    # smooth sub-regions of every tissue (SynthSeg's sub-classes): one field cut into bands
    bands = _smooth_field(rng, grid.shape, grid.spacing, 20.0).reshape(-1)
    sub = np.digitize(bands, np.quantile(bands, np.linspace(0, 1, style.subclasses + 1)[1:-1]))[:, None]
    keep = None
    if style.strip and phantom.foreground is not None:
        inside = Phantom([("fg", phantom.foreground)], {}, offset=phantom.offset)
        fraction = np.mean([inside.paint_grid(grid, o, ["air", "fg"]) for o in offsets], axis=0)
        keep = fraction >= 0.5
    slice_axis = int(np.argmax(grid.spacing))
    images = {}
    for sequence in sequences:
        table = style.signal_table(rng, names, sequence, phantom.signal(names, sequence))
        signal = (table[tissue, sub] * modulation).mean(axis=1).reshape(grid.shape)
        signal = np.power(np.clip(signal, 0, None), np.exp(rng.uniform(*np.log(style.preset.gamma))))
        scale = 1000.0 * rng.uniform(0.5, 2.0)
        clean = signal * _bias_field(rng, grid.shape, style.bias) * scale
        if rng.random() < style.preset.ghosting:  # phase encoding along one of the in-plane axes
            axis = int(rng.choice([a for a in range(3) if a != slice_axis]))
            clean = ghosting(clean, axis, int(rng.integers(2, 6)), rng.uniform(0.1, 0.5))
        sigma = style.noise * scale
        image = np.hypot(clean + rng.normal(0, sigma, grid.shape), rng.normal(0, sigma, grid.shape))
        if keep is not None:
            image = np.where(keep, image, 0.0)
        if style.zscore and keep is not None and keep.any():
            inside_values = image[keep]
            z = (image - inside_values.mean()) / max(float(inside_values.std()), 1e-6)
            images[sequence] = np.where(keep, z, 0.0).astype(np.float32)
        else:
            images[sequence] = np.clip(np.rint(image), 0, 32767).astype(np.int16)
    return images
