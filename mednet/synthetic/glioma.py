"""Glioma phantoms: a brain with skull, CSF, ventricles, grey and white matter, and a glioma.

``HGG``: ring-enhancing tumour with a necrotic core, surrounding oedema, irregular
margin, mass effect on the ventricles. ``LGG``: non-enhancing, fairly homogeneous,
well-defined, T2/FLAIR bright, little oedema. About a quarter of the HGG enhance
faintly or have little necrosis, and a fifth of the LGG enhance in a patch, so that
the classes overlap as they do in practice. Labels follow BraTS: 1 necrotic /
non-enhancing core, 2 oedema, 3 enhancing tumour.

``varied=True`` (randomised cohorts) draws the lesion's kind as well: typical,
multifocal, cystic or infiltrative for either grade, plus white-matter hyperintensities
(gliosis, not labelled) that a localiser must not call tumour; a cohort whose
randomisation asks for ``csf_spaces`` gets the CSF spaces of real brains instead of two
small ventricles (:func:`_csf_spaces`). ``MET`` (not in the
default balance) is a third kind of case: one to six brain metastases, small
ring- or solid-enhancing lesions at the grey-white junction with oedema, labelled as
BraTS labels them, for localisation training and for checking that the glioma grading
does not call them confidently.
"""

from __future__ import annotations

import numpy as np

from mednet.synthetic.head import extracranial, skull
from mednet.synthetic.phantom import Phantom
from mednet.synthetic.randomise import Randomisation
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
#: Scalp and skull together, mm: the CSF around the brain starts this far inside the head's surface.
SKULL_MM = 9.0


def build(rng: np.random.Generator, label: str, varied: bool | Randomisation = False) -> tuple[Phantom, dict]:
    """A glioma phantom of class ``label`` (``"HGG"``, ``"LGG"`` or ``"MET"``).

    Args:
        rng: the case's random stream.
        label: the class.
        varied: draw the lesion's kind and white-matter hyperintensities (randomised cohorts):
            ``True`` or the cohort's :class:`~mednet.synthetic.randomise.Randomisation`, whose
            ``csf_spaces`` draws the brain's CSF spaces (:func:`_csf_spaces`) instead of two small
            ventricles, and whose ``head`` draws a real head around the brain
            (:mod:`mednet.synthetic.head`: scalp, temporal muscles, skull with marrow, face, orbits,
            sinuses, neck) instead of a plain ellipsoid of fat and bone.

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

    if getattr(varied, "csf_spaces", False):  # the randomised cohort asked for the CSF spaces of real brains
        ventricles, fissure, contrast_csf = _csf_spaces(rng, brain, s, tilt, side, mass_effect)
    else:  # two lateral ventricles, pushed away from the tumour by the mass effect
        ventricles, fissure, contrast_csf = [], np.array([1.5, 60.0, 35.0]) * s, {}
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
    if getattr(varied, "head", False):  # the randomised cohort asked for a real head around the brain
        under, over = extracranial(rng, head, brain, tilt)
        outer = [*under, *skull(rng, head, tilt, csf_margin=SKULL_MM)]
    else:
        over, outer = [], [("fat", Ellipsoid(np.zeros(3), head, tilt, 0.01, draw_seed(rng))),
                           ("bone", Ellipsoid(np.zeros(3), head - 4, tilt))]  # fmt: skip
    layers = [
        *outer,
        ("csf", Ellipsoid(np.zeros(3), head - SKULL_MM, tilt)),
        ("grey", Ellipsoid(np.zeros(3), brain, tilt, 0.025, draw_seed(rng), 7)),
        ("white", Ellipsoid(np.zeros(3), white, tilt, 0.05, draw_seed(rng), 5)),
        (
            "csf",
            Ellipsoid(np.array([0.0, 0.0, 10.0]) * s, fissure, tilt),
        ),  # interhemispheric fissure
        *ventricles,
        *spots,
        *tumour_layers,
        ("vessel", Tube(np.array(arc) @ tilt.T, 3.0)),  # superior sagittal sinus
        *over,
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
    foreground = Ellipsoid(np.zeros(3), brain + 1.5, tilt)
    phantom = Phantom(layers, labels, texture, contrast | contrast_csf, foreground=foreground)
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


def _csf_spaces(rng: np.random.Generator, brain: np.ndarray, s: float, tilt: np.ndarray, side: float,
                mass_effect: float) -> tuple[list, np.ndarray, dict]:
    """The CSF spaces of a real brain, of varied size: what a localiser must not call tumour.

    Real brains hold CSF inside the brain mask in many places and shapes, bright on T2 and
    dark on FLAIR like a tumour's cyst or necrosis. A network that has seen only two small
    ventricles calls them tumour (TCGA-DU-7294: the lateral ventricles, the third ventricle,
    the quadrigeminal and ambient cisterns and the falx, 20 ml of false tumour). Drawn here,
    in the subject frame (mm; +x right, +y anterior, +z superior), all scaled by a per-case
    enlargement (0.8 to 2.2: young adult to atrophy or hydrocephalus):

    - lateral ventricles: frontal horn, body, atrium (with an enhancing choroid plexus),
      occipital horn and a temporal horn curving down and forward; on the tumour's side
      pushed away and squeezed by the mass effect;
    - third ventricle (a midline slit), fourth ventricle, a brainstem with the ambient and
      prepontine cisterns around it, quadrigeminal and suprasellar cisterns (lobulated);
      these fill with flowing CSF, which FLAIR often fails to suppress (``csf:flow``, a
      FLAIR signal drawn per case);
    - CSF's own signal drawn per case (T1, T1c and FLAIR, from well suppressed to poorly:
      scanners differ), so that it overlaps a tumour's necrosis and cysts;
    - Sylvian fissures, 15 to 45 cortical sulci reaching from the surface into the brain,
      and a half-width for the interhemispheric fissure;
    - sometimes FLAIR-bright caps at the frontal horns (gliosis, not labelled).

    Args:
        rng: the case's random stream.
        brain: ``(3,)`` the brain ellipsoid's semi-axes, mm.
        s: the head's scale.
        tilt: 3x3 the head's rotation.
        side: -1 or 1, the tumour's hemisphere (x sign).
        mass_effect: mm by which the tumour pushes the ventricle on its side.

    Returns:
        ``(layers, fissure, contrast)``: ``(tissue, shape)`` layers in painting order, the
        interhemispheric fissure's ``(3,)`` semi-axes, the phantom's contrast overrides.
    """

    def place(centre, radii, rot=None, wobble=0.06, lobes=2.0) -> Ellipsoid:  # subject frame -> the tilted head
        rot = np.eye(3) if rot is None else rot
        return Ellipsoid(tilt @ (np.asarray(centre) * s), np.asarray(radii) * s, tilt @ rot, wobble,
                         draw_seed(rng), lobes)  # fmt: skip

    e = float(np.exp(rng.uniform(np.log(0.8), np.log(2.2))))  # enlargement
    layers: list = []
    for x in (-1.0, 1.0):
        squeeze = max(0.4, 1 - mass_effect / 12) if x == side else 1.0
        push = -side * min(mass_effect, 6.0) if x == side else 0.0
        j = rng.uniform(0.85, 1.15, 3)  # left and right differ a little
        es = e * squeeze  # the width, squeezed on the tumour's side
        parts = [
            ((x * (4.0 + 1.5 * e) + push, 20.0, 14.0), (1.5 + 1.5 * es, 12.0, 3.0 + 2.5 * e), rotation(rx=0.3)),
            ((x * (5.0 + 2.0 * e) + push, -2.0, 18.0), (1.5 + 2.5 * es, 18.0, 2.0 + 2.5 * e), rotation(rx=0.1)),
            ((x * (12.0 + e) + push, -24.0, 12.0), (2.0 + 3.0 * es, 9.0, 3.0 + 3.0 * e), rotation(rz=x * 0.3)),
            ((x * (15.0 + e), -38.0, 9.0), (1.0 + 1.0 * e, 9.0 + 2.0 * e, 1.5 + 1.0 * e), rotation(rz=x * 0.25)),
        ]  # frontal horn, body, atrium, occipital horn
        for centre, radii, rot in parts:
            wobble, lobes = rng.uniform(0.03, 0.12), rng.uniform(2, 4)
            layers.append(("csf", place(centre, np.asarray(radii) * j, rot, wobble, lobes)))
        horn = np.array([(x * (16.0 + e), -24.0, 7.0), (x * 23.0, -16.0, -4.0), (x * 26.0, -4.0, -13.0),
                         (x * 26.0, 10.0, -17.0)]) * s  # fmt: skip
        layers.append(("csf", Tube(horn @ tilt.T, (0.7 + 0.9 * e) * s * rng.uniform(0.8, 1.2))))  # temporal horn
        if rng.random() < 0.7:  # choroid plexus in the atrium: enhances on T1c
            layers.append(("dura", place((x * (12.0 + e) + push, -24.0, 11.0), rng.uniform(1.5, 3.0, 3), wobble=0.2)))
        if rng.random() < 0.35:  # periventricular cap
            cap = place((x * (5.0 + 1.5 * e), 31.0, 15.0), rng.uniform(3.0, 6.0, 3), wobble=0.2)
            layers.insert(0, ("gliosis", cap))
    flow = [
        ((0.0, -2.0, 2.0), (0.8 + 1.2 * e, 12.0, 8.0), 0.05, 2.0),  # third ventricle
        ((0.0, -30.0, -30.0), (4.0 + e, 2.5 + e, 5.0), 0.1, 2.0),  # fourth ventricle
        ((0.0, -27.0, -9.0), (6.0 + 2.0 * e, 5.0, 4.0 + e), 0.3, 4.0),  # quadrigeminal cistern
        ((0.0, 12.0, -22.0), (8.0 + e, 6.0, 3.0 + e), 0.25, 3.0),  # suprasellar cistern
    ]
    stem = (np.array([0.0, -12.0, -32.0]), np.array([10.0, 11.0, 24.0]) * rng.uniform(0.9, 1.1, 3), rotation(rx=0.25))
    cistern = rng.uniform(1.0, 2.5) * e  # the CSF around the brainstem (ambient, prepontine)
    layers.append(("csf:flow", place(stem[0], stem[1] + cistern, stem[2], 0.1, 3.0)))
    layers.append(("white", place(*stem, wobble=0.03)))  # brainstem
    for centre, radii, wobble, lobes in flow:
        layers.append(("csf:flow", place(centre, np.asarray(radii) * rng.uniform(0.85, 1.15, 3), None, wobble, lobes)))
    for x in (-1.0, 1.0):  # Sylvian fissures: sheets from the lateral surface inwards, rising backwards
        depth = rng.uniform(14.0, 22.0)
        centre = (x * (brain[0] / s - depth * 0.8), 4.0, -6.0)
        layers.append(("csf", place(centre, (depth, rng.uniform(16.0, 26.0), 0.8 + 0.8 * e),
                                    rotation(ry=x * 0.25, rx=-0.35), 0.1, 3.0)))  # fmt: skip
    for _ in range(int(rng.integers(15, 46))):  # cortical sulci: thin, long sheets reaching in from the surface
        u = rng.normal(size=3)
        u[2] = abs(u[2]) * 0.8 if rng.random() < 0.7 else u[2]  # most over the convexity
        u /= np.linalg.norm(u)
        surface = u / np.sqrt(np.sum((u / brain) ** 2))  # the brain ellipsoid's surface along u
        t1 = np.cross(u, rng.normal(size=3))
        t1 /= np.linalg.norm(t1)
        axes = np.stack([t1, np.cross(u, t1), u], axis=1)  # thin, long, deep
        radii = np.array([rng.uniform(0.5, 1.1) * np.sqrt(e), rng.uniform(8.0, 24.0), rng.uniform(5.0, 14.0)])
        layers.append(("csf", Ellipsoid(tilt @ surface, radii, tilt @ axes, 0.1, draw_seed(rng), 3)))
    fissure = np.array([rng.uniform(1.0, 1.2 + 1.0 * e), 60.0, 35.0]) * s
    # CSF's signal varies between scanners far more than the contrast table's jitter: FLAIR's suppression is
    # often incomplete, T1 contrast poor (TCGA-DU-7294's ventricles: T1 0.56, FLAIR 0.43 of the brain's median,
    # the table 0.24 and 0.12); CSF then overlaps a tumour's necrosis or cyst, and only the context tells them apart
    csf = {"t1": float(rng.uniform(0.08, 0.32)), "t1c": float(rng.uniform(0.08, 0.32)),
           "flair": float(rng.uniform(0.03, 0.28))}  # fmt: skip
    flowing = dict(csf)
    if rng.random() < 0.6:  # flowing CSF: FLAIR suppression worse still, T2 flow voids
        flowing |= {"flair": max(csf["flair"], float(rng.uniform(0.1, 0.5))), "t2": float(rng.uniform(0.7, 1.0))}
    return layers, fissure, {"csf": csf, "csf:flow": flowing}


def _hyperintensities(rng: np.random.Generator, white: np.ndarray, s: float) -> list:
    """Up to eight small white-matter hyperintensities (gliosis: bright on FLAIR and T2, not labelled)."""
    return [("gliosis", Ellipsoid(_inside_white(rng, white, s, limit=0.6), rng.uniform(1.5, 5.0, 3), wobble=0.2,
                                  seed=draw_seed(rng)))
            for _ in range(int(rng.integers(0, 9)))]  # fmt: skip
