"""The head around the brain, for brain phantoms that are not skull-stripped: what a localiser must not call tumour.

A brain phantom whose head is an ellipsoid with a thin scalp and a uniform skull, and
nothing below the brain, teaches a network nothing about what surrounds a real brain in
an unprocessed scan: on a native-space glioma exam it then calls the orbits, the
sinuses and a thick fatty scalp tumour. Real heads have a scalp of varied thickness with
fat bright on T1, T2 and FLAIR, temporal muscles, a skull with fatty marrow between its
tables, a face below the frontal lobes with eyes (vitreous: fluid) in orbital fat,
air-filled sinuses (sometimes with mucosal thickening or fluid), a nasal cavity,
mastoid air cells, and a neck. :func:`extracranial` draws these for one phantom, in the
head's frame (mm from the head's centre; +y anterior, +z superior) before the head's
tilt, which it applies.

None of these tissues is labelled, and each is kept outside the brain.
"""

from __future__ import annotations

import numpy as np

from mednet.synthetic.shapes import Cut, Ellipsoid, Outside, Shape, Tube, Within, draw_seed

__all__ = ["extracranial", "skull"]


def skull(rng: np.random.Generator, head: np.ndarray, tilt: np.ndarray, csf_margin: float
          ) -> list[tuple[str, Shape]]:
    """Scalp, temporal muscles and a skull with marrow between its tables, as the head's outer layers.

    Replaces the plain ``fat`` / ``bone`` pair: skin at ``head`` plus 0-7 mm (a fatty scalp),
    temporal muscles under the scalp, the outer table 4 mm inside ``head``, marrow (diploe)
    and the inner table; the CSF layer the caller paints at ``head - csf_margin`` covers
    the rest.

    Args:
        rng: the case's random stream.
        head: ``(3,)`` the head's semi-axes, mm (where the plain phantom's skin is).
        tilt: 3x3 rotation of the head.
        csf_margin: how far inside ``head`` the caller's CSF layer starts, mm.

    Returns:
        ``(tissue, shape)`` layers, outermost first.
    """
    skin = head + rng.uniform(0.0, 7.0)
    layers: list[tuple[str, Shape]] = [("fat", Ellipsoid(np.zeros(3), skin, tilt, 0.01, draw_seed(rng)))]
    inside_skin = Ellipsoid(np.zeros(3), skin - 1.5, tilt)
    for x in (-1.0, 1.0):  # temporalis: under the scalp, over the temporal bone
        centre = tilt @ np.array([x * (head[0] - 6.0), 0.12 * head[1], -0.12 * head[2]])
        radii = np.array([rng.uniform(7.0, 12.0), 0.38 * head[1], 0.33 * head[2]])
        layers.append(("muscle", Within(Ellipsoid(centre, radii, tilt, 0.03, draw_seed(rng)), inside_skin)))
    table = rng.uniform(1.0, 2.0)
    diploe = rng.uniform(0.8, max(0.9, csf_margin - 4.0 - 2 * table))
    layers += [
        ("bone", Ellipsoid(np.zeros(3), head - 4.0, tilt)),
        ("marrow", Ellipsoid(np.zeros(3), head - 4.0 - table, tilt, 0.02, draw_seed(rng))),
        ("bone", Ellipsoid(np.zeros(3), head - 4.0 - table - diploe, tilt)),
    ]
    return layers


def extracranial(rng: np.random.Generator, head: np.ndarray, brain: np.ndarray, tilt: np.ndarray
                 ) -> tuple[list[tuple[str, Shape]], list[tuple[str, Shape]]]:
    """The neck and face (painted before the head) and the orbits, sinuses and nasal cavity (painted last).

    Args:
        rng: the case's random stream.
        head: ``(3,)`` the head's semi-axes, mm.
        brain: ``(3,)`` the brain's semi-axes, mm: the structures painted last stay outside it.
        tilt: 3x3 rotation of the head.

    Returns:
        ``(under, over)``: layers to paint before the head's own (the head covers them where
        they overlap) and layers to paint after everything else, each kept 2 mm outside the brain.
    """
    hx, hy, hz = head

    def at(point) -> np.ndarray:
        return tilt @ np.asarray(point, dtype=float)

    def ellipsoid(point, radii, wobble=0.05) -> Ellipsoid:
        return Ellipsoid(at(point), np.asarray(radii, dtype=float), tilt, wobble, draw_seed(rng))

    fat = rng.uniform(2.0, 8.0)
    neck = [at([0, -0.1 * hy, -0.55 * hz]), at([0, -0.15 * hy, -0.55 * hz - 160])]
    spine = [p + at([0, -0.3 * hy, 0]) for p in neck]
    airway = [p + at([0, 0.3 * hy, 0]) for p in neck]
    neck_r = 0.62 * hx * rng.uniform(0.85, 1.1)
    face_centre, face = [0, 0.5 * hy, -0.55 * hz], np.array([0.72 * hx, 0.55 * hy, 0.5 * hz])
    under: list[tuple[str, Shape]] = [
        ("fat", Tube(neck, neck_r)),
        ("muscle", Tube(neck, neck_r - fat)),
        ("bone", Tube(spine, 9.0)),
        ("marrow", Tube(spine, 7.0)),
        ("air", Tube(airway, rng.uniform(5.0, 8.0))),
        ("fat", ellipsoid(face_centre, face)),
        ("muscle", ellipsoid(face_centre, face - fat)),
    ]
    over: list[tuple[str, Shape]] = []
    z_orbit = -0.38 * hz + rng.normal(0, 3)
    for x in (-1.0, 1.0):  # the orbits: the globe in its fat, the lens at its front
        globe_r = rng.uniform(10.5, 12.5)
        globe = np.array([x * 0.4 * hx, 0.74 * hy, z_orbit])
        over += [
            ("fat", ellipsoid(globe + [0, -12, 0], [14, 18, 13])),
            ("fluid", ellipsoid(globe, np.full(3, globe_r), 0.01)),
            ("muscle", ellipsoid(globe + [0, globe_r - 2.0, 0], [4.5, 1.8, 4.5], 0.0)),  # the lens
        ]
    sinuses = [([x * 0.3 * hx, 0.6 * hy, -0.66 * hz], [13, 15, 17]) for x in (-1.0, 1.0)]  # maxillary
    sinuses += [([0, 0.72 * hy, z_orbit], [7, 14, 10]),  # ethmoid cells between the orbits
                ([0, 0.3 * hy, -0.5 * hz], [10, 10, 9]),  # sphenoid
                ([0, 0.85 * hy, -0.66 * hz], [8, 15, 15])]  # nasal cavity  # fmt: skip
    if rng.random() < 0.8:
        sinuses.append(([0, 0.86 * hy, -0.02 * hz], [12, 5, 10]))  # frontal
    if rng.random() < 0.7:
        sinuses += [([x * 0.86 * hx, -0.2 * hy, -0.45 * hz], [7, 8, 8]) for x in (-1.0, 1.0)]  # mastoid cells
    for centre, radii in sinuses:
        radii = np.asarray(radii, dtype=float) * rng.uniform(0.75, 1.2, 3)
        lining = rng.uniform(1.0, 5.0) if rng.random() < 0.35 else 1.0  # mucosal thickening
        over.append(("muscle", ellipsoid(centre, radii + lining)))
        air = ellipsoid(centre, radii)
        over.append(("air", air))
        if rng.random() < 0.15:  # fluid in the sinus, supine: it settles at the back
            level = at(np.asarray(centre) + [0, rng.uniform(-0.6, 0.2) * radii[1], 0])
            over.append(("fluid", Cut(air, level, at([0, -1, 0]))))
    keep_out = Ellipsoid(np.zeros(3), brain + 2.0, tilt)
    return under, [(tissue, Outside(shape, keep_out)) for tissue, shape in over]
