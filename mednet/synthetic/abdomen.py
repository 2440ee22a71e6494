"""The peritoneal cavity of a real abdomen, for torso phantoms: what a localiser must not call tumour.

A torso phantom whose abdomen is one textured block of "bowel" teaches a network that
anything heterogeneous in the abdomen is tumour: on a real abdominal MRI it then calls the
bowel and the mesentery tumour and finds no organ. Real abdomens hold mesenteric fat
(bright on T1 and T2), small-bowel loops and a colon filled with fluid (T2 bright), gas
(dark on every sequence) or stool (mottled), a stomach with an air-fluid level, a
gallbladder under the liver, and subcutaneous fat from a few millimetres (a child) to
several centimetres (an adult). :func:`peritoneal_cavity` draws these for one phantom,
in the subject's frame (mm from the subject's centre; +x the patient's right, +y
anterior, +z superior), scaled to the body by ``k`` (1 at a half body width of 85 mm).

None of these tissues is labelled: the bowel, stomach and gallbladder are background to
the neuroblastoma localisation, as they are to every organ map it is compared with.
"""

from __future__ import annotations

import itertools

import numpy as np

from mednet.synthetic.shapes import Cut, Ellipsoid, Shape, Tube, Within, draw_seed, rotation

__all__ = ["TEXTURE", "gallbladder", "peritoneal_cavity"]

#: Texture of the bowel's contents (see :class:`~mednet.synthetic.phantom.Phantom`): stool is mottled.
TEXTURE = {"stool": (0.12, 0.25), "fluid": (0.03, 0.02), "fat:mesentery": (0.05, 0.04)}
#: What a loop of bowel holds, with probabilities: fluid, gas, or nothing (a collapsed loop, wall only).
SMALL_BOWEL = {"fluid": 0.45, "gas": 0.15, None: 0.4}
COLON = {"stool": 0.5, "gas": 0.35, "fluid": 0.15}


def _choose(rng: np.random.Generator, table: dict):
    keys = list(table)
    return keys[int(rng.choice(len(keys), p=list(table.values())))]


def _loop(rng: np.random.Generator, start: np.ndarray, points: int, step: float, low: np.ndarray,
          high: np.ndarray) -> np.ndarray:
    """A bowel loop's centre line: a random walk of ``points`` points, turning smoothly, kept in a box."""
    path = [start]
    direction = rng.normal(0, 1, 3)
    for _ in range(points - 1):
        direction = direction / np.linalg.norm(direction) + rng.normal(0, 0.7, 3)
        direction /= np.linalg.norm(direction)
        path.append(np.clip(path[-1] + step * rng.uniform(0.7, 1.3) * direction, low, high))
    return np.array(path)


def _tube_with_contents(rng: np.random.Generator, path: np.ndarray, radius: float, contents,
                        cavity: Shape) -> list[tuple[str, Shape]]:
    """A bowel segment: its wall (``bowel``), then what it holds inside a wall 1-3 mm thick."""
    layers = [("bowel", Within(Tube(path, radius), cavity))]
    wall = rng.uniform(1.0, 3.0)
    if contents is not None and radius > wall + 1.0:
        layers.append((contents, Within(Tube(path, radius - wall), cavity)))
    return layers


def peritoneal_cavity(rng: np.random.Generator, rx: float, ry: float, k: float, inner: tuple[float, float]
                      ) -> list[tuple[str, Shape]]:
    """Mesenteric fat, small-bowel loops, the colon and the stomach, as phantom layers.

    Paint them after the abdominal wall and before the organs: the liver, spleen, kidneys,
    vessels and tumour painted later cover them where they overlap.

    Args:
        rng: the case's random stream.
        rx: the body's half width, mm.
        ry: the body's half depth, mm.
        k: body scale (``rx / 85``).
        inner: half width and half depth of the cavity inside the abdominal wall, mm.

    Returns:
        ``(tissue, shape)`` layers: ``fat:mesentery``, ``bowel`` (walls), ``fluid``, ``gas``, ``stool``.
    """
    cavity = Ellipsoid([0, 0, 0], [inner[0], inner[1], 1000])
    layers: list[tuple[str, Shape]] = [
        ("fat:mesentery", Within(Ellipsoid([0, 0.15 * ry, -45 * k], [inner[0], 0.85 * ry, 72 * k], wobble=0.05,
                                           seed=draw_seed(rng)), cavity)),
    ]
    # small bowel: loops in the middle and lower abdomen, in front of the retroperitoneum
    low = np.array([-0.6 * rx, -0.15 * ry, -105 * k])
    high = np.array([0.6 * rx, 0.8 * ry, -5 * k])
    for _ in range(int(rng.integers(10, 27))):
        path = _loop(rng, rng.uniform(low, high), int(rng.integers(3, 7)), rng.uniform(10, 22) * k, low, high)
        layers += _tube_with_contents(rng, path, rng.uniform(4.5, 10.0) * k, _choose(rng, SMALL_BOWEL), cavity)
    # colon: caecum, ascending, transverse, descending, sigmoid; each part holds its own contents
    frame = np.array([
        [0.55, 0.0, -85], [0.62, -0.1, -20], [0.5, 0.2, 5], [0.0, 0.55, -15],
        [-0.55, 0.1, 15], [-0.62, -0.15, -30], [-0.4, 0.1, -95],
    ])  # fmt: skip
    colon = frame * [rx, ry, k] + rng.normal(0, 0.05 * rx, frame.shape)
    radius = rng.uniform(8.0, 15.0) * k
    for a, b in itertools.pairwise(colon):
        layers += _tube_with_contents(rng, np.array([a, b]), radius * rng.uniform(0.8, 1.1), _choose(rng, COLON),
                                      cavity)
    # stomach in the left upper quadrant, supine: gas rises to the front (an air-fluid level)
    centre = np.array([-0.25 * rx, 0.35 * ry, 35 * k]) + rng.normal(0, 4 * k, 3)
    radii = np.array([0.28 * rx, 0.22 * ry, 28 * k]) * rng.uniform(0.7, 1.2, 3)
    turn = rotation(rng.uniform(0.3, 0.9))
    layers.append(("bowel", Ellipsoid(centre, radii, turn, 0.04, draw_seed(rng))))
    lumen = Ellipsoid(centre, radii - rng.uniform(2.0, 4.0), turn, 0.04, draw_seed(rng))
    layers.append((_choose(rng, {"fluid": 0.6, "stool": 0.25, "gas": 0.15}), lumen))
    if rng.random() < 0.6:
        level = centre[1] + rng.uniform(0.2, 0.8) * radii[1]
        layers.append(("gas", Cut(lumen, [0, level, 0], [0, 1, 0])))
    return layers


def gallbladder(rng: np.random.Generator, liver: Ellipsoid, rx: float) -> list[tuple[str, Shape]]:
    """A fluid-filled gallbladder at the liver's lower surface (absent in one case in five: eaten, removed).

    Paint it after the liver: it takes the liver's place (it is not liver).
    """
    if rng.random() < 0.2:
        return []
    bottom = liver.centre + liver.rot @ np.array([-0.1 * liver.radii[0], 0.45 * liver.radii[1], -0.75 * liver.radii[2]])
    radii = np.array([0.09, 0.09, 0.2]) * rx * rng.uniform(0.7, 1.3, 3)
    return [("fluid", Ellipsoid(bottom, radii, rotation(0, rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6)), 0.03,
                                draw_seed(rng)))]
