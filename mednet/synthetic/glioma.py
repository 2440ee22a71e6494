"""Glioma phantoms: a brain with skull, CSF, ventricles, grey and white matter, and a glioma.

``HGG``: ring-enhancing tumour with a necrotic core, surrounding oedema, irregular
margin, mass effect on the ventricles. ``LGG``: non-enhancing, fairly homogeneous,
well-defined, T2/FLAIR bright, little oedema. About a quarter of the HGG enhance
faintly or have little necrosis, and a fifth of the LGG enhance in a patch, so that
the classes overlap as they do in practice. Labels follow BraTS: 1 necrotic /
non-enhancing core, 2 oedema, 3 enhancing tumour.
"""

from __future__ import annotations

import numpy as np

from mednet.synthetic.phantom import Phantom
from mednet.synthetic.shapes import Ellipsoid, Tube, draw_seed, rotation

__all__ = ["CLASSES", "DEFAULT_BALANCE", "FOV_MM", "LABELS", "LESION_LABELS", "SEQUENCES", "build"]

SEQUENCES = ("t1", "t1c", "t2", "flair")
CLASSES = ("HGG", "LGG")
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


def build(rng: np.random.Generator, label: str) -> tuple[Phantom, dict]:
    """A glioma phantom of class ``label`` (``"HGG"`` or ``"LGG"``).

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
    if label == "HGG":
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
        *tumour_layers,
        ("vessel", Tube(np.array(arc) @ tilt.T, 3.0)),  # superior sagittal sinus
    ]
    labels = {"necrosis": 1, "oedema": 2, "enhancing": 3, "tumour": 1}
    texture = {"tumour": (0.05, 0.06), "enhancing": (0.08, 0.1), "necrosis": (0.05, 0.08), "oedema": (0.05, 0.04)}
    facts = {
        "tumour_radius_mm": round(float(radius), 2),
        "hemisphere": "left" if side < 0 else "right",
        "atypical": bool(atypical),
    }
    return Phantom(layers, labels, texture, contrast), facts
