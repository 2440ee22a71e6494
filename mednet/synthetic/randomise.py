"""Domain randomisation of synthetic cohorts: contrast, resolution, artefacts, preprocessing look.

A network trained on phantoms that all look alike learns the phantoms' look. As
SynthSeg does for brain MRI of any contrast and resolution, a randomised cohort draws
for every case (and every sequence) how the scan looks, so that the only thing common
to all cases is the anatomy and the lesions:

- **contrast**: tissue intensities either physics-plausible (mednet's contrast table,
  each tissue's value jittered per case and sequence) or fully random (every tissue an
  intensity drawn uniformly); each tissue split into up to ``subclasses`` smooth
  sub-regions with intensities of their own; a gamma curve per sequence;
- **resolution**: axial, coronal or sagittal acquisitions with slices ``slice_mm`` thick
  (thick voxels averaged over their depth: partial volume), in-plane matrix and field of
  view scaled, the field of view shifted (partial coverage happens, as in real scans),
  each sequence on its own grid with probability ``own_grids``;
- **artefacts**: a smooth multiplicative bias field, Rician noise and motion ghosting
  (every n-th k-space line along the phase-encoding axis damped);
- **preprocessing**: for brain diseases, skull-stripped (zero outside the brain) with
  probability ``strip``, and the BraTS-preprocessed look with probability ``brats``: an
  atlas-like isotropic axis-aligned LPS grid (240 x 240 x 155 voxels of 1 mm at the ``full`` size), skull
  stripped, zero background, z-scored inside the brain with probability ``zscore``.

The lesions' variety (multifocal, infiltrative, cystic, rim- and non-enhancing,
metastasis-like) and the anatomy's are drawn by the disease builders when asked
(``build(rng, label, varied=True)``).

Three presets (:data:`PRESETS`): ``"full"`` (half the cases with fully random contrasts,
SynthSeg-like), ``"moderate"`` (one in six: what the localisation bundles' reference weights
are trained on) and ``"plausible"`` (physics-plausible contrasts only: what the grading
bundles are trained on, since a sequence's classifier reads that sequence's contrast).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from mednet.io.grid import Grid
from mednet.synthetic.shapes import Ellipsoid

__all__ = ["PRESETS", "CaseStyle", "Randomisation", "draw_style", "flagged_preset", "ghosting", "jitter_anatomy"]


@dataclass(frozen=True)
class Randomisation:
    """The distributions a randomised cohort draws each case's look from.

    Attributes:
        name: the preset's name (recorded in ``cases.json``).
        random_contrast: probability that a case's contrasts are fully random.
        contrast_jitter: log-normal sigma of each tissue's physics-plausible intensity.
        subclasses: each tissue is split into 1 to this many intensity sub-regions.
        gamma: range of the per-sequence gamma exponent (log-uniform).
        bias: range of the bias field's strength (0: none).
        noise: range of the Rician noise, relative to the intensity scale.
        ghosting: probability of motion ghosting per sequence.
        slice_mm: range of the slice thickness, mm.
        planes: acquisition plane -> probability.
        matrix_scale: range of the in-plane matrix relative to the cohort size's.
        fov_scale: range of the field of view relative to the disease's.
        fov_shift_mm: largest shift of the field of view's centre, mm, per axis.
        own_grids: probability that each sequence after the first has its own grid.
        strip: probability of skull stripping (brain diseases).
        brats: probability of the BraTS-preprocessed look (glioma).
        zscore: probability, given the BraTS look, of z-scored float intensities.
        csf_spaces: brain (glioma) phantoms get the CSF spaces real brains have, of varied size
            (``mednet.synthetic.glioma._csf_spaces``: lateral ventricles with their horns,
            third and fourth ventricles, basal cisterns around a brainstem, Sylvian fissures,
            cortical sulci, a fissure of varied width), instead of two small ventricles. Off in
            ``plausible``, the grading cohorts' preset, whose released weights were trained without.
        abdomen: torso (neuroblastoma) phantoms get the peritoneal cavity of a real abdomen
            (:mod:`mednet.synthetic.abdomen`: mesenteric fat, small-bowel loops and a colon holding
            fluid, gas or stool, a stomach with an air-fluid level, a gallbladder), subcutaneous fat
            of varied thickness, and in one case in five a limited slab of 40 to 140 mm along the
            body axis, instead of one textured block of bowel and a whole torso. On in ``full``;
            off in ``moderate`` until a neuroblastoma localiser trained with it is released (the
            shipped weights were trained without, and their recipe must reproduce them).
        slab: probability, given ``abdomen``, of a limited slab along the body axis.
        head: glioma phantoms get a real head around the brain (:mod:`mednet.synthetic.head`:
            a scalp of varied thickness, temporal muscles, a skull with marrow between its
            tables, a face with orbits and air-filled sinuses, a neck), seen in the
            cases that are not skull-stripped, instead of an ellipsoid of fat and bone. On in
            ``full``; off in ``moderate`` (a glioma localiser trained with it cut a native scan's
            false positives but did worse on the BraTS-preprocessed real scan: not released).
    """

    name: str
    random_contrast: float = 0.5
    contrast_jitter: float = 0.2
    subclasses: int = 3
    gamma: tuple[float, float] = (0.6, 1.6)
    bias: tuple[float, float] = (0.0, 0.6)
    noise: tuple[float, float] = (0.005, 0.08)
    ghosting: float = 0.15
    slice_mm: tuple[float, float] = (1.0, 7.0)
    planes: dict[str, float] = field(default_factory=lambda: {"axial": 0.7, "coronal": 0.15, "sagittal": 0.15})
    matrix_scale: tuple[float, float] = (0.75, 1.25)
    fov_scale: tuple[float, float] = (0.85, 1.25)
    fov_shift_mm: float = 20.0
    own_grids: float = 0.5
    strip: float = 0.2
    brats: float = 0.25
    zscore: float = 0.5
    csf_spaces: bool = True
    abdomen: bool = True
    slab: float = 0.2
    head: bool = True


#: ``full``: every kind of variation, half the cases with fully random contrasts (SynthSeg's
#: recipe, for long training runs); ``moderate``: the same variety with one case in six fully
#: random (what the localisation bundles' reference weights are trained on: with an hour of
#: CPU training per bundle, ``full`` left the network under-fitted on every case);
#: ``plausible``: physics-plausible contrasts only (grading training: each branch reads its sequence).
PRESETS: dict[str, Randomisation] = {
    "full": Randomisation("full"),
    "moderate": Randomisation("moderate", random_contrast=0.15, subclasses=2, gamma=(0.7, 1.4), brats=0.3,
                              abdomen=False, head=False),
    "plausible": Randomisation("plausible", random_contrast=0.0, contrast_jitter=0.12, subclasses=2, gamma=(0.8, 1.25),
                               csf_spaces=False, abdomen=False, head=False),
}


@contextlib.contextmanager
def flagged_preset(preset: str, flags: Sequence[str] = ()) -> Iterator[str]:
    """A preset with boolean ``flags`` turned on (e.g. ``abdomen``), registered in :data:`PRESETS` while in use.

    Yields its name, ``"<preset>+<flag>+..."`` (the preset's own name without flags), which
    :func:`mednet.synthetic.generate_cohort` takes as ``randomise`` and ``cohort.json``
    records with every setting. A name registered before is left as it was.

    Raises:
        KeyError: an unknown preset.
        ValueError: a flag that is not a boolean setting of :class:`Randomisation`.
    """
    base = PRESETS[preset]
    switches = {f.name for f in dataclasses.fields(Randomisation) if isinstance(getattr(base, f.name), bool)}
    unknown = sorted(set(flags) - switches)
    if unknown:
        raise ValueError(f"not a Randomisation flag: {unknown} (flags: {sorted(switches)})")
    name = "+".join([preset, *flags])
    added = name not in PRESETS
    if added:
        PRESETS[name] = dataclasses.replace(base, name=name, **dict.fromkeys(flags, True))
    try:
        yield name
    finally:
        if added:
            del PRESETS[name]


@dataclass
class CaseStyle:
    """How one case's scans look: drawn once per case by :func:`draw_style`.

    Attributes:
        preset: the :class:`Randomisation` it was drawn from.
        contrast: ``"random"`` or ``"physics"``.
        subclasses: intensity sub-regions per tissue in this case.
        bias: bias field strength.
        noise: Rician noise level relative to the intensity scale.
        strip: zero outside the phantom's foreground (the brain).
        brats: the BraTS-preprocessed look (atlas grid, stripped).
        zscore: z-scored float intensities inside the foreground.
    """

    preset: Randomisation
    contrast: str
    subclasses: int
    bias: float
    noise: float
    strip: bool = False
    brats: bool = False
    zscore: bool = False

    def describe(self) -> dict:
        """JSON-ready record for ``cases.json``."""
        record = {k: v for k, v in asdict(self).items() if k != "preset"}
        record["preset"] = self.preset.name
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()}

    def signal_table(
        self, rng: np.random.Generator, names: list[str], sequence: str, plausible: np.ndarray
    ) -> np.ndarray:
        """Intensity of each tissue's sub-regions for one sequence.

        Args:
            rng: the case's random stream.
            names: tissue names (index 0 is air, which stays 0).
            sequence: the sequence key.
            plausible: ``(T,)`` the physics-plausible intensities (contrast table and the
                phantom's own overrides).

        Returns:
            ``(T, subclasses)`` float32 intensities, 0 for air.
        """
        if self.contrast == "random":
            # one draw per base tissue (left and right kidney alike), then per sub-region
            base: dict[str, float] = {}
            values = np.array([base.setdefault(n.split(":")[0], rng.uniform(0.02, 1.0)) for n in names])
            spread = 0.12
        else:
            values = plausible * np.exp(rng.normal(0.0, self.preset.contrast_jitter, len(names)))
            spread = 0.06
        table = values[:, None] * (1.0 + rng.normal(0.0, spread, (len(names), self.subclasses)))
        table[:, 0] = values
        table[0] = 0.0
        return np.clip(table, 0.0, None).astype(np.float32)


def draw_style(rng: np.random.Generator, preset: Randomisation, brain: bool, glioma: bool) -> CaseStyle:
    """Draw one case's look from ``preset``.

    Args:
        rng: the case's random stream.
        preset: the distributions.
        brain: the disease is a brain disease (skull stripping applies).
        glioma: the BraTS-preprocessed look applies.
    """
    brats = glioma and rng.random() < preset.brats
    return CaseStyle(
        preset=preset,
        contrast="random" if rng.random() < preset.random_contrast else "physics",
        subclasses=int(rng.integers(1, preset.subclasses + 1)),
        bias=float(rng.uniform(*preset.bias)),
        noise=float(rng.uniform(*preset.noise)) * (0.3 if brats else 1.0),
        strip=brats or (brain and rng.random() < preset.strip),
        brats=brats,
        zscore=brats and rng.random() < preset.zscore,
    )


def ghosting(image: np.ndarray, axis: int, n: int, strength: float) -> np.ndarray:
    """Motion ghosts: every ``n``-th k-space line along a phase-encoding axis damped.

    Periodic motion during the acquisition leaves copies of the object shifted by
    ``1/n`` of the field of view along the phase-encoding direction (as TorchIO's
    ``RandomGhosting``): damping every ``n``-th line of k-space by ``strength`` does the same.
    The centre line is kept, so the image's mean is unchanged.

    Args:
        image: ``(x, y, z)`` float magnitude image.
        axis: the phase-encoding axis (an in-plane axis).
        n: the ghosts' period in k-space lines (>= 2).
        strength: how much the lines are damped, in (0, 1].

    Returns:
        ``(x, y, z)`` float32 magnitude image with ghosts.
    """
    spectrum = np.fft.fftshift(np.fft.fft(image, axis=axis), axes=axis)
    lines = np.arange(image.shape[axis])
    damp = np.where(lines % n == 0, 1.0 - strength, 1.0)
    damp[image.shape[axis] // 2] = 1.0
    shape = [1] * image.ndim
    shape[axis] = -1
    spectrum = spectrum * damp.reshape(shape)
    return np.abs(np.fft.ifft(np.fft.ifftshift(spectrum, axes=axis), axis=axis)).astype(np.float32)


def jitter_anatomy(layers: list, rng: np.random.Generator, tissues: set[str], amount: float) -> list:
    """Organs of varied size, shape and position: each ellipsoid of ``tissues`` scaled and moved.

    Args:
        layers: the phantom's ``(tissue, shape)`` layers.
        rng: the case's random stream.
        tissues: the tissue names (full names, e.g. ``"kidney:left"``) to vary.
        amount: relative size jitter (per axis); positions move by ``amount * radius``.

    Returns:
        The layers, with new ellipsoids for the varied tissues (others unchanged).
    """
    out = []
    for tissue, shape in layers:
        if tissue in tissues and isinstance(shape, Ellipsoid):
            radii = shape.radii * np.exp(rng.normal(0, amount, 3))
            centre = shape.centre + rng.normal(0, amount, 3) * np.minimum(shape.radii, 60.0)
            wobble = shape.wobble + rng.uniform(0, 0.06)
            shape = Ellipsoid(centre, radii, shape.rot, wobble, int(rng.integers(0, 2**31)), shape.lobes)
        out.append((tissue, shape))
    return out


def atlas_grid(centre: np.ndarray, spacing_mm: float) -> Grid:
    """An atlas-like grid (SRI24 as BraTS uses): 240 x 240 x 155 mm, isotropic, axis-aligned, LPS."""
    shape = tuple(max(2, round(n / spacing_mm)) for n in (240.0, 240.0, 155.0))
    affine = np.diag([-spacing_mm, -spacing_mm, spacing_mm, 1.0])
    affine[:3, 3] = np.asarray(centre) - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return Grid(shape, affine)
