"""Neuroblastoma phantoms: a child's torso with a primary tumour, staged by INRG.

Anatomy (scaled to the child's size): body outline with subcutaneous fat and
abdominal wall, lungs and heart above the diaphragm, liver, spleen, kidneys, adrenal
glands, spine (vertebral bodies, canal, paraspinal muscles), aorta and IVC with renal
vessels, and the retroperitoneal fat. The primary tumour arises in an adrenal gland,
the retroperitoneum or the posterior mediastinum; it is heterogeneous (necrosis,
calcification) and bright on DWI.

Stage (INRG): ``L1`` localised, clear of the aorta and renal vessels; ``L2``
localised and encasing the aorta or a renal pedicle (an image-defined risk factor:
the vessel runs through the mass); ``M`` with distant metastases in the liver or
bone. Labels: each organ, 12 primary tumour, 13 metastasis.

``varied=True`` (randomised cohorts) varies each organ's size, shape and position
(:func:`~mednet.synthetic.randomise.jitter_anatomy`), the body from infant to adult size, and the
metastases' number and size.
"""

from __future__ import annotations

import numpy as np

from mednet.synthetic.abdomen import TEXTURE as ABDOMEN_TEXTURE
from mednet.synthetic.abdomen import gallbladder, peritoneal_cavity
from mednet.synthetic.phantom import Phantom
from mednet.synthetic.randomise import Randomisation, jitter_anatomy
from mednet.synthetic.shapes import Ellipsoid, Tube, draw_seed, rotation

__all__ = [
    "BRAIN", "CLASSES", "DEFAULT_BALANCE", "LABELS", "LESION_LABELS", "OPTIONAL_SEQUENCES", "SEQUENCES", "build",
]  # fmt: skip

SEQUENCES = ("t2w", "t1c")
#: Skull stripping does not apply.
BRAIN = False
#: Organs whose size, shape and position vary in randomised cohorts.
VARIED_ORGANS = {"liver", "spleen", "kidney:right", "kidney:left", "adrenal:right", "adrenal:left", "lung", "heart"}
OPTIONAL_SEQUENCES = ("dwi", "t1")
CLASSES = ("L1", "L2", "M")
#: Roughly the INRG distribution of newly diagnosed patients.
DEFAULT_BALANCE = {"L1": 0.3, "L2": 0.3, "M": 0.4}
LABELS = [
    (1, "liver", "#8c564b"), (2, "spleen", "#9467bd"), (3, "kidney_right", "#e377c2"),
    (4, "kidney_left", "#f7b6d2"), (5, "adrenal_right", "#17becf"), (6, "adrenal_left", "#9edae5"),
    (7, "aorta", "#d62728"), (8, "ivc", "#1f77b4"), (9, "spine", "#c7c7c7"), (10, "lungs", "#aec7e8"),
    (11, "retroperitoneum", "#dbdb8d"), (12, "primary_tumour", "#ff7f0e"), (13, "metastasis", "#ffdd00"),
]  # fmt: skip
LESION_LABELS = (12, 13)
FOV_MM = (240.0, 240.0, 240.0)
SLICE_MM = {"small": (5.0, 7.0), "demo": (4.0, 6.0), "full": (2.0, 2.0)}
PREFIX = "NB"


def _segment_distance(point: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = np.clip((point - a) @ ab / (ab @ ab), 0, 1)
    return float(np.linalg.norm(point - (a + t * ab)))


def build(rng: np.random.Generator, label: str, varied: bool | Randomisation = False) -> tuple[Phantom, dict]:
    """A torso phantom of stage ``label`` (``"L1"``, ``"L2"`` or ``"M"``); returns ``(phantom, facts)``.

    ``varied``: organs of varied size, shape and position, metastases of varied number and
    size (randomised cohorts); a :class:`~mednet.synthetic.randomise.Randomisation` asking for
    ``abdomen`` adds a real abdomen's contents (:mod:`mednet.synthetic.abdomen`), subcutaneous
    fat of varied thickness and sometimes a limited slab along the body axis.

    ``facts`` holds the field of view (``fov_mm``; ``fov_centre_mm``, its centre relative to the
    subject's, when it is a slab), the tumour's site and radius, and the metastases' sites.
    """
    rx = rng.uniform(55, 150) if varied else rng.uniform(62, 105)  # half body width, mm: infant to school age (adult)
    ry = rx * rng.uniform(0.68, 0.8)
    k = rx / 85.0
    spine_y = -0.62 * ry
    vertebra_r = 0.11 * rx
    detail = bool(getattr(varied, "abdomen", False))  # the randomised cohort asked for a real abdomen's contents
    if detail:
        fat = rng.uniform(3, 14) * k  # subcutaneous fat, mm: a few in a child, centimetres in an adult
        wall, inner = (rx - fat, ry - fat), (rx - fat - 5 * k, ry - fat - 4 * k)
    else:
        wall, inner = (rx - 6 * k, ry - 6 * k), (rx - 11 * k, ry - 10 * k)
    layers = [
        ("fat", Ellipsoid([0, 0, 0], [rx, ry, 1000], wobble=0.02, seed=draw_seed(rng))),
        ("muscle", Ellipsoid([0, 0, 0], [*wall, 1000])),
        ("bowel", Ellipsoid([0, 0, 0], [*inner, 1000], wobble=0.03, seed=draw_seed(rng))),
    ]
    if detail:
        layers += peritoneal_cavity(rng, rx, ry, k, inner)
    layers.append(("retroperitoneum", Ellipsoid([0, -0.38 * ry, -25 * k], [0.5 * rx, 0.28 * ry, 85 * k])))
    for x in (-1.0, 1.0):
        layers.append(("muscle", Ellipsoid([x * 0.18 * rx, spine_y - 0.1 * ry, 0], [0.13 * rx, 0.16 * ry, 1000])))
        layers.append(
            (
                "lung",
                Ellipsoid(
                    [x * 0.42 * rx, -0.05 * ry, 115 * k],
                    [0.36 * rx, 0.72 * ry, 75 * k],
                    wobble=0.03,
                    seed=draw_seed(rng),
                ),
            )
        )
    layers.append(("heart", Ellipsoid([-0.12 * rx, 0.22 * ry, 80 * k], [0.32 * rx, 0.38 * ry, 38 * k], rotation(0.4))))
    liver = Ellipsoid(
        [0.3 * rx, 0.05 * ry, 22 * k], [0.55 * rx, 0.62 * ry, 40 * k], rotation(0.2), 0.04, draw_seed(rng)
    )
    layers += [
        ("liver", liver),
        ("spleen", Ellipsoid([-0.55 * rx, -0.3 * ry, 22 * k], [0.17 * rx, 0.26 * ry, 28 * k], rotation(0.5))),
    ]
    if detail:
        layers += gallbladder(rng, liver, rx)
    kidneys, adrenals = {}, {}
    for x, name in ((1.0, "right"), (-1.0, "left")):
        kidneys[name] = np.array([x * 0.4 * rx, -0.42 * ry, (-28 if x > 0 else -18) * k])
        layers.append(
            (
                f"kidney:{name}",
                Ellipsoid(
                    kidneys[name],
                    np.array([0.15, 0.2, 0.0]) * [rx, ry, 0] + [0, 0, 36 * k],
                    rotation(x * 0.3),
                    0.03,
                    draw_seed(rng),
                ),
            )
        )
        adrenals[name] = kidneys[name] + np.array([-x * 0.08 * rx, 0.02 * ry, 42 * k])
        layers.append((f"adrenal:{name}", Ellipsoid(adrenals[name], [0.1 * rx, 0.035 * ry, 11 * k], rotation(x * 0.8))))
    aorta_r, ivc_r = rng.uniform(4.5, 6.5) * k, rng.uniform(5.0, 7.0) * k
    aorta = (
        np.array([-0.07 * rx, spine_y + vertebra_r + aorta_r + 2, -110 * k]),
        np.array([-0.07 * rx, spine_y + vertebra_r + aorta_r + 2, 120 * k]),
    )
    ivc = (np.array([0.14 * rx, -0.3 * ry, -110 * k]), np.array([0.14 * rx, -0.3 * ry, 30 * k]))
    renal = {
        name: (
            np.array([aorta[0][0], aorta[0][1], centre[2] + 4 * k]),
            centre + [-np.sign(centre[0]) * 0.1 * rx, 0.05 * ry, 4 * k],
        )
        for name, centre in kidneys.items()
    }

    # the primary tumour
    site = str(rng.choice(["adrenal", "retroperitoneum", "thorax"], p=[0.6, 0.25, 0.15]))
    side = str(rng.choice(["right", "left"]))
    radius = rng.uniform(12, 34) * k
    encase = label == "L2" or (label == "M" and rng.random() < 0.5)
    vessel_axes = [aorta, *renal.values()] if site != "thorax" else [aorta]
    if encase:
        a, b = vessel_axes[int(rng.integers(len(vessel_axes)))]
        if np.isclose(a[2], b[2]):  # a renal pedicle
            centre = a + rng.uniform(0.3, 0.7) * (b - a)
        else:  # the aorta, in the abdomen or the posterior mediastinum
            centre = np.array([a[0], a[1], (rng.uniform(60, 100) if site == "thorax" else rng.uniform(-45, 10)) * k])
        centre = centre + rng.normal(0, 0.25 * radius, 3)
    else:
        for _ in range(200):
            if site == "adrenal":
                centre = (
                    adrenals[side]
                    + rng.normal(0, 6 * k, 3)
                    + [np.sign(adrenals[side][0]) * 0.35 * radius, 0, radius * 0.3]
                )
            elif site == "retroperitoneum":
                centre = np.array(
                    [(1 if side == "right" else -1) * rng.uniform(0.25, 0.45) * rx, -0.35 * ry, rng.uniform(-60, 0) * k]
                )
            else:
                centre = np.array(
                    [(1 if side == "right" else -1) * 0.22 * rx, spine_y + 0.15 * ry, rng.uniform(60, 105) * k]
                )
            clearance = min(_segment_distance(centre, a, b) for a, b in vessel_axes) - radius * 1.25 - aorta_r
            if clearance > 3.0:
                break
            radius *= 0.95
    tumour_axes = radius * rng.uniform(0.8, 1.2, 3)
    orient = rotation(*rng.uniform(-1, 1, 3))
    layers.append(("tumour:primary", Ellipsoid(centre, tumour_axes, orient, rng.uniform(0.1, 0.25), draw_seed(rng), 3)))
    for _ in range(int(rng.integers(0, 4))):
        layers.append(
            (
                "necrosis:primary",
                Ellipsoid(
                    centre + rng.normal(0, 0.3 * radius, 3),
                    np.full(3, radius * rng.uniform(0.15, 0.35)),
                    wobble=0.2,
                    seed=draw_seed(rng),
                ),
            )
        )
    if rng.random() < 0.8:
        for _ in range(int(rng.integers(2, 8))):
            layers.append(
                (
                    "calcification:primary",
                    Ellipsoid(centre + rng.normal(0, 0.35 * radius, 3), np.full(3, rng.uniform(1.2, 3.0))),
                )
            )

    metastases, bone_metastases = [], []
    if label == "M":
        sites = ["liver", "bone"] if rng.random() < 0.3 else [str(rng.choice(["liver", "bone"]))]
        for where in sites:
            for _ in range(int(rng.integers(1, 9 if varied else 5))):
                r = rng.uniform(2 if varied else 3, 9) * k
                if where == "liver":
                    spot = liver.centre + liver.rot @ (rng.uniform(-0.55, 0.55, 3) * liver.radii)
                else:
                    spot = np.array([0, spine_y, rng.uniform(-100, 100) * k]) + rng.normal(0, 0.3 * vertebra_r, 3)
                    r = min(r, vertebra_r * 0.8)
                lesion = ("tumour:metastasis", Ellipsoid(spot, np.full(3, r), wobble=0.1, seed=draw_seed(rng)))
                (layers if where == "liver" else bone_metastases).append(lesion)
                metastases.append(where)

    # spine and vessels last, so an encased vessel stays visible through the mass
    layers += [
        ("bone", Tube([[0, spine_y, -1000], [0, spine_y, 1000]], vertebra_r * 1.1)),
        ("marrow:spine", Tube([[0, spine_y, -1000], [0, spine_y, 1000]], vertebra_r)),
        (
            "csf",
            Tube([[0, spine_y - vertebra_r * 1.7, -1000], [0, spine_y - vertebra_r * 1.7, 1000]], 0.5 * vertebra_r),
        ),
    ]
    layers += bone_metastases  # in the marrow they replace
    layers += [("vessel:aorta", Tube(list(aorta), aorta_r)), ("vessel:ivc", Tube(list(ivc), ivc_r))]
    layers += [("vessel:renal", Tube(list(pedicle), 2.2 * k)) for pedicle in renal.values()]
    labels = {
        "liver": 1,
        "spleen": 2,
        "kidney:right": 3,
        "kidney:left": 4,
        "adrenal:right": 5,
        "adrenal:left": 6,
        "vessel:aorta": 7,
        "vessel:ivc": 8,
        "marrow:spine": 9,
        "bone": 9,
        "lung": 10,
        "retroperitoneum": 11,
        "tumour:primary": 12,
        "necrosis:primary": 12,
        "calcification:primary": 12,
        "tumour:metastasis": 13,
    }
    texture = {
        "tumour:primary": (0.08, 0.14),
        "tumour:metastasis": (0.05, 0.08),
        "liver": (0.03, 0.02),
        "bowel": (0.08, 0.06),
        **(ABDOMEN_TEXTURE if detail else {}),
    }
    contrast = {
        "tumour:primary": {"t2": rng.uniform(0.55, 0.8), "t1c": rng.uniform(0.45, 0.7)},
        "tumour:metastasis": {"t2": rng.uniform(0.5, 0.75), "t1c": rng.uniform(0.4, 0.6)},
    }
    view = {"fov_mm": (2.6 * rx, 2.6 * rx, 250 * k)}
    if detail and rng.random() < varied.slab:  # a limited slab along the body axis, as abdominal protocols cover
        view = {"fov_mm": (2.6 * rx, 2.6 * rx, rng.uniform(40, 140)), "fov_centre_mm": (0, 0, rng.uniform(-70, 30) * k)}
    facts = {
        **view,
        "site": site,
        "side": side,
        "tumour_radius_mm": round(float(radius), 2),
        "encases_vessel": bool(encase),
        "metastases": metastases,
    }
    if varied:
        layers = jitter_anatomy(layers, rng, VARIED_ORGANS, 0.12)
    return Phantom(layers, labels, texture, contrast), facts
