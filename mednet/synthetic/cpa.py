"""Cerebellopontine-angle phantoms: acoustic neuroma (``AN``) or meningioma (``MG``).

An axial slab through the internal auditory canals: skull, temporal lobes,
cerebellum, pons, fourth ventricle, CSF cisterns, basilar artery, both petrous bones
with their internal auditory canals (IAC) and the vestibulocochlear nerves.

- ``AN``: rounded, centred on the porus of the IAC and (in most) extending into the
  canal; heterogeneous on T2, heterogeneous enhancement, cystic parts in some.
- ``MG``: broad dural base on the petrous bone's posterior face, centred away from the
  porus, a dural tail on T1c, homogeneous enhancement, calcification in some.

Atypical cases blur the line as in practice: some AN stay in the cistern, some MG sit
at the porus and reach into the canal. The label map holds one label, 1 = tumour.

``varied=True`` (randomised cohorts) widens the tumours' sizes (small intracanalicular
schwannomas to large masses) and lets meningiomas lie flat on the dura (en plaque).
"""

from __future__ import annotations

import numpy as np

from mednet.synthetic.phantom import Phantom
from mednet.synthetic.shapes import Cut, Ellipsoid, Tube, draw_seed, rotation

__all__ = ["BRAIN", "CLASSES", "DEFAULT_BALANCE", "FOV_MM", "LABELS", "LESION_LABELS", "SEQUENCES", "build"]

SEQUENCES = ("t1c", "t2")
#: Skull stripping applies.
BRAIN = True
CLASSES = ("AN", "MG")
#: The CPA paper's cohort: 427 acoustic neuromas, 116 meningiomas.
DEFAULT_BALANCE = {"AN": 427, "MG": 116}
LABELS = [(1, "tumour", "#ff7f0e")]
LESION_LABELS = (1,)
FOV_MM = (200.0, 200.0, 56.0)
SLICE_MM = {"small": (2.0, 3.0), "demo": (2.0, 3.0), "full": (1.0, 1.0)}
PREFIX = "CPA"


def build(rng: np.random.Generator, label: str, varied: bool = False) -> tuple[Phantom, dict]:
    """A CPA phantom of class ``label`` (``"AN"`` or ``"MG"``); returns ``(phantom, facts)``.

    ``varied``: wider tumour sizes and en-plaque meningiomas (randomised cohorts).
    """
    k = rng.uniform(0.92, 1.08)
    head = np.array([70.0, 88.0, 80.0]) * k
    side = float(rng.choice([-1.0, 1.0]))  # +1: the patient's right (RAS +x)
    layers = [
        ("fat", Ellipsoid(np.zeros(3), head, wobble=0.01, seed=draw_seed(rng))),
        ("bone", Ellipsoid(np.zeros(3), head - 4)),
        ("csf", Ellipsoid(np.zeros(3), head - 8)),
        ("grey", Ellipsoid(np.zeros(3), head - 10, wobble=0.02, seed=draw_seed(rng), lobes=6)),
        (
            "white",
            Ellipsoid(
                np.array([0, 25.0, 0]) * k, np.array([50.0, 40.0, 60.0]) * k, wobble=0.06, seed=draw_seed(rng), lobes=4
            ),
        ),
        ("csf", Ellipsoid(np.array([0, -28.0, 0]) * k, np.array([56.0, 44.0, 60.0]) * k)),  # posterior fossa cisterns
    ]
    for x in (-1.0, 1.0):  # cerebellar hemispheres, grey cortex around a white core
        centre = np.array([x * 25.0, -42.0, -4.0]) * k
        layers.append(
            ("grey", Ellipsoid(centre, np.array([27.0, 29.0, 34.0]) * k, wobble=0.03, seed=draw_seed(rng), lobes=8))
        )
        layers.append(
            (
                "white",
                Ellipsoid(centre + [x * -4, 4, 0], np.array([12.0, 12.0, 18.0]) * k, wobble=0.1, seed=draw_seed(rng)),
            )
        )
    pons = np.array([0.0, -4.0, 0.0]) * k
    layers += [
        ("csf", Ellipsoid(pons + [0, 4, 0], np.array([21.0, 19.0, 60.0]) * k)),  # prepontine and CPA cisterns
        ("white", Ellipsoid(pons, np.array([15.0, 13.0, 60.0]) * k, wobble=0.02, seed=draw_seed(rng))),
        ("csf", Ellipsoid(pons + [0, -17 * k, 0], np.array([6.0, 3.0, 12.0]) * k)),  # fourth ventricle
        ("vessel", Tube([pons + [0, 15 * k, -40], pons + [0, 15 * k, 40]], 1.8)),  # basilar artery
    ]
    geometry = {}
    for x in (-1.0, 1.0):  # petrous bones: apex anteromedial, running lateral and posterior
        angle = np.deg2rad(rng.uniform(35, 48))
        along = np.array([x * np.cos(angle), -np.sin(angle), 0.0])  # apex -> base
        face = np.array([-x * np.sin(angle), -np.cos(angle), 0.0])  # posterior face normal, into the cistern
        apex = np.array([x * 16.0, 14.0, 0.0]) * k
        frame = np.column_stack([along, -face, [0, 0, 1.0]])
        layers.append(
            ("bone", Ellipsoid(apex + along * 26 * k, np.array([30.0, 9.0, 13.0]) * k, frame, 0.04, draw_seed(rng)))
        )
        porus = apex + along * 18 * k + face * 8.5 * k
        fundus = porus - face * 4 * k + along * 7 * k + np.array([x * 4.0, 0, 0])
        layers.append(("csf", Tube([porus + face * 1.5, fundus], 2.3)))  # internal auditory canal
        layers.append(("nerve", Tube([pons + [x * 13 * k, 2, 0], porus, fundus], 1.1)))
        geometry[x] = (apex, along, face, porus, fundus)

    apex, along, face, porus, fundus = geometry[side]
    radius = rng.uniform(*((3, 22) if varied else (5, 17)))
    atypical = rng.random() < 0.15
    contrast: dict[str, dict[str, float]] = {}
    texture: dict[str, tuple[float, float]] = {}
    facts = {
        "side": "right" if side > 0 else "left",
        "tumour_radius_mm": round(float(radius), 2),
        "atypical": bool(atypical),
    }
    if label == "AN":
        centre = porus + face * radius * rng.uniform(0.55, 0.9) + rng.normal(0, 1.0, 3)
        axes = radius * rng.uniform(0.85, 1.15, 3)
        layers.append(
            (
                "tumour:an",
                Ellipsoid(centre, axes, rotation(*rng.uniform(-1, 1, 3)), rng.uniform(0.04, 0.12), draw_seed(rng), 2),
            )
        )
        if not atypical:  # intracanalicular part
            layers.append(("tumour:an", Tube([porus + face * 2, fundus], 2.2)))
        if rng.random() < 0.3:
            for _ in range(int(rng.integers(1, 4))):
                layers.append(
                    (
                        "cyst",
                        Ellipsoid(
                            centre + rng.normal(0, 0.35 * radius, 3), np.full(3, radius * rng.uniform(0.15, 0.4))
                        ),
                    )
                )
            facts["cystic"] = True
        contrast["tumour:an"] = {
            "t1c": rng.uniform(0.62, 0.9),
            "t2": rng.uniform(0.55, 0.8),
            "t1": rng.uniform(0.3, 0.4),
        }
        texture["tumour:an"] = (0.08, rng.uniform(0.1, 0.2))
    else:
        shift = rng.uniform(0, 4) if atypical else rng.uniform(8, 20)
        base = porus + along * shift * rng.choice([-1.0, 1.0]) * k
        height = radius * rng.uniform(0.3 if varied else 0.7, 1.0)
        frame = np.column_stack([along, face, [0, 0, 1.0]])
        body = Ellipsoid(
            base,
            np.array([radius * rng.uniform(1.2, 1.6), height, radius * rng.uniform(0.9, 1.2)]),
            frame,
            rng.uniform(0.02, 0.06),
            draw_seed(rng),
            2,
        )
        layers.append(
            ("dura", Ellipsoid(base + face * 0.5, np.array([radius * 2.4, 1.2, radius * 0.9]), frame))
        )  # dural tail
        layers.append(("tumour:mg", Cut(body, base - face * 1.0, face)))
        if atypical:
            layers.append(("tumour:mg", Tube([porus + face * 2, porus - face * 2 + along * 3 * k], 2.0)))
        if rng.random() < 0.25:
            for _ in range(int(rng.integers(2, 6))):
                spot = base + face * height * rng.uniform(0.2, 0.6) + rng.normal(0, 0.3 * radius, 3)
                layers.append(("calcification", Ellipsoid(spot, np.full(3, rng.uniform(1.0, 2.2)))))
            facts["calcified"] = True
        contrast["tumour:mg"] = {
            "t1c": rng.uniform(0.72, 0.95),
            "t2": rng.uniform(0.5, 0.72),
            "t1": rng.uniform(0.32, 0.42),
        }
        texture["tumour:mg"] = (0.03, rng.uniform(0.02, 0.05))
    labels = {"tumour:an": 1, "tumour:mg": 1, "cyst": 1, "calcification": 1}
    return Phantom(layers, labels, texture, contrast, foreground=Ellipsoid(np.zeros(3), head - 8)), facts
