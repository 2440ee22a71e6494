"""Glioma phantoms: a brain with skull, CSF, ventricles, grey and white matter, and a glioma.

``HGG``: ring-enhancing tumour with a necrotic core, surrounding oedema, irregular
margin, mass effect on the ventricles. ``LGG``: non-enhancing, fairly homogeneous,
well-defined, T2/FLAIR bright, little oedema. About a quarter of the HGG enhance
faintly or have little necrosis, and a fifth of the LGG enhance in a patch, so that
the classes overlap as they do in practice. Labels follow BraTS: 1 necrotic /
non-enhancing core, 2 oedema, 3 enhancing tumour.

``varied=True`` (randomised cohorts) draws the lesion's kind as well: typical,
multifocal, cystic or infiltrative for either grade, plus white-matter hyperintensities
(gliosis, not labelled) that a localiser must not call tumour. ``MET`` (not in the
default balance) is a third kind of case: one to six brain metastases, small
ring- or solid-enhancing lesions at the grey-white junction with oedema, labelled as
BraTS labels them, for localisation training and for checking that the glioma grading
does not call them confidently.
"""

from __future__ import annotations

import numpy as np

from mednet.synthetic.phantom import Phantom
from mednet.synthetic.shapes import Ellipsoid, Tube, Within, draw_seed, rotation

__all__ = [
    "BRAIN", "CLASSES", "DEFAULT_BALANCE", "FOV_MM", "KINDS", "LABELS", "LESION_LABELS", "OTHER_CLASSES", "SEQUENCES",
    "build",
]  # fmt: skip

SEQUENCES = ("t1", "t1c", "t2", "flair")
CLASSES = ("HGG", "LGG")
#: Cases of another kind a cohort may hold (not graded): ``MET``, brain metastases.
OTHER_CLASSES = ("MET",)
#: Skull stripping applies.
BRAIN = True
#: Lesion kinds drawn with ``varied=True``, per class, with their probabilities.
KINDS = {
    "HGG": {"typical": 0.45, "multifocal": 0.15, "cystic": 0.2, "infiltrative": 0.2},
    "LGG": {"typical": 0.45, "multifocal": 0.1, "cystic": 0.2, "infiltrative": 0.25},
}
#: BraTS 2019 as used by the glioma method: 259 HGG, 76 LGG.
DEFAULT_BALANCE = {"HGG": 259, "LGG": 76}
LABELS = [
    (1, "necrotic_core", "#d62728"),
    (2, "oedema", "#2ca02c"),
    (3, "enhancing_tumour", "#ffdd00"),
]
LESION_LABELS = (1, 2, 3)
FOV_MM = (220.0, 220.0, 160.0)
#: Slice spacing range (mm) per size; ``full`` is BraTS-like (240 x 240 x 155).
SLICE_MM = {"small": (4.0, 6.0), "demo": (3.0, 6.0), "full": (1.03, 1.03)}
PREFIX = "GLI"


def build(rng: np.random.Generator, label: str, varied: bool = False) -> tuple[Phantom, dict]:
    """A glioma phantom of class ``label`` (``"HGG"``, ``"LGG"`` or ``"MET"``).

    Args:
        rng: the case's random stream.
        label: the class.
        varied: draw the lesion's kind and white-matter hyperintensities (randomised cohorts).

    Returns:
        ``(phantom, facts)``: facts record the tumour's drawn parameters.
    """
    s = rng.uniform(0.9, 1.08)
    head = np.array([70.0, 88.0, 76.0]) * s * rng.uniform(0.96, 1.04, 3)
    tilt = rotation(rng.uniform(-0.06, 0.06), rng.uniform(-0.05, 0.05), rng.uniform(-0.08, 0.08))
    brain = head - 13
    white = head - 21

    side = rng.choice([-1.0, 1.0])
    # LGG are often large at diagnosis; HGG cores smaller within wider oedema: whole-lesion volumes overlap
    radius = rng.uniform(7, 18) if label == "HGG" else rng.uniform(11, 29)
    # centre inside the white matter of one hemisphere
    while True:
        centre = np.array([side * rng.uniform(14, 42), rng.uniform(-50, 50), rng.uniform(-12, 38)]) * s
        if np.sum((centre / white) ** 2) < 0.55:
            break
    axes = radius * rng.uniform(0.8, 1.2, 3)
    orient = rotation(*rng.uniform(-np.pi, np.pi, 3))
    atypical = rng.random() < (0.25 if label == "HGG" else 0.2)
    contrast: dict[str, dict[str, float]] = {}
    tumour_layers = []
    if label == "MET":
        tumour_layers, mass_effect = _metastases(rng, white, s), 2.0
    elif label == "HGG":
        oedema_factor = rng.uniform(1.1, 1.4) if atypical else rng.uniform(1.3, 2.0)
        tumour_layers.append(
            ("oedema", Ellipsoid(centre, axes * oedema_factor, orient, rng.uniform(0.15, 0.3), draw_seed(rng), 3))
        )
        tumour_layers.append(("enhancing", Ellipsoid(centre, axes, orient, rng.uniform(0.12, 0.3), draw_seed(rng), 4)))
        core = rng.uniform(0.15, 0.45) if atypical else rng.uniform(0.45, 0.8)
        offset = rng.normal(0, 0.1 * radius, 3)
        tumour_layers.append(("necrosis", Ellipsoid(centre + offset, axes * core, orient, 0.15, draw_seed(rng), 3)))
        if atypical:
            contrast["enhancing"] = {"t1c": rng.uniform(0.48, 0.66)}
        mass_effect = radius * oedema_factor * 0.25
    else:
        tumour_layers.append(
            ("oedema", Ellipsoid(centre, axes * rng.uniform(1.05, 1.3), orient, 0.08, draw_seed(rng), 2))
        )
        tumour_layers.append(("tumour", Ellipsoid(centre, axes, orient, rng.uniform(0.03, 0.1), draw_seed(rng), 2)))
        contrast["tumour"] = {"t2": rng.uniform(0.78, 0.95), "flair": rng.uniform(0.66, 0.85)}
        if atypical:
            patch = centre + rng.normal(0, 0.3 * radius, 3)
            tumour_layers.append(
                ("enhancing", Ellipsoid(patch, axes * rng.uniform(0.2, 0.45), orient, 0.2, draw_seed(rng), 3))
            )
            contrast["enhancing"] = {"t1c": rng.uniform(0.5, 0.72)}
        mass_effect = radius * 0.1
    kind = "metastases" if label == "MET" else "typical"
    spots = []
    if varied:
        if label != "MET":
            kinds = KINDS[label]
            kind = str(rng.choice(list(kinds), p=list(kinds.values())))
            tumour_layers = _vary(rng, kind, tumour_layers, white, s)
        spots = _hyperintensities(rng, white, s)
        inside = Ellipsoid(np.zeros(3), brain - 1.0, tilt)  # lesions stay in the brain
        tumour_layers = [(t, Within(shape, inside)) for t, shape in tumour_layers]

    # lateral ventricles, pushed away from the tumour by the mass effect
    ventricles = []
    for x in (-1.0, 1.0):
        v_centre = np.array([x * 7.0, 4.0, 14.0]) * s
        if x == side:
            v_centre[0] -= side * min(mass_effect, 6.0)
        size = np.array([5.0, 24.0, 9.0]) * s * rng.uniform(0.75, 1.3)
        if x == side:
            size[0] *= max(0.4, 1 - mass_effect / 12)
        ventricles.append(("csf", Ellipsoid(v_centre, size, rotation(rx=0.15), 0.05, draw_seed(rng), 2)))
    arc = [
        np.array([0.0, head[1] * np.cos(a), 0.0]) * 0.92 + np.array([0, 0, head[2] * np.sin(a) * 0.9])
        for a in np.linspace(0.35, np.pi - 0.35, 7)
    ]
    layers = [
        ("fat", Ellipsoid(np.zeros(3), head, tilt, 0.01, draw_seed(rng))),
        ("bone", Ellipsoid(np.zeros(3), head - 4, tilt)),
        ("csf", Ellipsoid(np.zeros(3), head - 9, tilt)),
        ("grey", Ellipsoid(np.zeros(3), brain, tilt, 0.025, draw_seed(rng), 7)),
        ("white", Ellipsoid(np.zeros(3), white, tilt, 0.05, draw_seed(rng), 5)),
        (
            "csf",
            Ellipsoid(np.array([0.0, 0.0, 10.0]) * s, np.array([1.5, 60.0, 35.0]) * s, tilt),
        ),  # interhemispheric fissure
        *ventricles,
        *spots,
        *tumour_layers,
        ("vessel", Tube(np.array(arc) @ tilt.T, 3.0)),  # superior sagittal sinus
    ]
    labels = {"necrosis": 1, "oedema": 2, "enhancing": 3, "tumour": 1, "cyst": 1}
    texture = {"tumour": (0.05, 0.06), "enhancing": (0.08, 0.1), "necrosis": (0.05, 0.08), "oedema": (0.05, 0.04)}
    facts = {
        "tumour_radius_mm": round(float(radius), 2),
        "hemisphere": "left" if side < 0 else "right",
        "atypical": bool(atypical),
    }
    if varied:
        facts["kind"] = kind
    phantom = Phantom(layers, labels, texture, contrast, foreground=Ellipsoid(np.zeros(3), brain + 1.5, tilt))
    return phantom, facts


def _inside_white(rng: np.random.Generator, white: np.ndarray, s: float, limit: float = 0.55) -> np.ndarray:
    """A point well inside the white matter (normalised radius below ``limit``), either hemisphere."""
    while True:
        point = np.array([rng.choice([-1.0, 1.0]) * rng.uniform(12, 42), rng.uniform(-55, 55), rng.uniform(-15, 40)])
        if np.sum((point * s / white) ** 2) < limit:
            return point * s


def _reshape(shape: Ellipsoid, centre=None, scale: float = 1.0, wobble=None, lobes=None) -> Ellipsoid:
    """A copy of ``shape`` moved to ``centre``, scaled, with another margin (None keeps each)."""
    return Ellipsoid(shape.centre if centre is None else centre, shape.radii * scale, shape.rot,
                     shape.wobble if wobble is None else wobble, shape.seed, shape.lobes if lobes is None else lobes)


def _vary(rng: np.random.Generator, kind: str, layers: list, white: np.ndarray, s: float) -> list:
    """The tumour's layers turned into ``kind``: typical (unchanged), multifocal, cystic or infiltrative."""
    if kind == "multifocal":  # one or two smaller copies elsewhere in the white matter
        out = list(layers)
        for _ in range(int(rng.integers(1, 3))):
            scale, centre = rng.uniform(0.35, 0.7), _inside_white(rng, white, s)
            shift = centre - layers[0][1].centre
            out += [(t, _reshape(e, e.centre + shift, scale)) for t, e in layers]
        return out
    if kind == "cystic":  # a large fluid-filled part, with the tumour's rim around it
        main = layers[1][1]  # the enhancing (HGG) or non-enhancing (LGG) tumour body
        cyst = Ellipsoid(main.centre + rng.normal(0, 0.15, 3) * main.radii, main.radii * rng.uniform(0.55, 0.85),
                         main.rot, 0.05, draw_seed(rng), 2)  # fmt: skip
        return [*layers, ("cyst", cyst)]
    if kind == "infiltrative":  # ill-defined, lobulated, wide oedema
        return [(t, _reshape(e, scale=rng.uniform(1.0, 1.25) if t == "oedema" else 1.0,
                             wobble=rng.uniform(0.3, 0.45), lobes=rng.uniform(5, 8))) for t, e in layers]  # fmt: skip
    return layers


def _metastases(rng: np.random.Generator, white: np.ndarray, s: float) -> list:
    """One to six metastases at the grey-white junction: enhancing (ring when larger), with oedema."""
    layers = []
    for _ in range(int(rng.integers(1, 7))):
        radius = rng.uniform(3, 13)
        centre = _inside_white(rng, white, s, limit=1.0)
        centre = centre / np.sqrt(np.sum((centre / white) ** 2)) * rng.uniform(0.85, 1.0)  # near the cortex
        extent = np.full(3, radius * rng.uniform(1.3, 2.6))
        oedema = Ellipsoid(centre, extent, wobble=0.25, seed=draw_seed(rng), lobes=4)
        layers.append(("oedema", oedema))
        layers.append(("enhancing", Ellipsoid(centre, np.full(3, radius), wobble=0.08, seed=draw_seed(rng))))
        if radius > 6 and rng.random() < 0.7:
            layers.append(("necrosis", Ellipsoid(centre, np.full(3, radius * rng.uniform(0.4, 0.7)))))
    return layers


def _hyperintensities(rng: np.random.Generator, white: np.ndarray, s: float) -> list:
    """Up to eight small white-matter hyperintensities (gliosis: bright on FLAIR and T2, not labelled)."""
    return [("gliosis", Ellipsoid(_inside_white(rng, white, s, limit=0.6), rng.uniform(1.5, 5.0, 3), wobble=0.2,
                                  seed=draw_seed(rng)))
            for _ in range(int(rng.integers(0, 9)))]  # fmt: skip
