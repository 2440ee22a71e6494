"""Solid shapes for painting phantoms: ellipsoids with irregular margins, tubes, cuts.

Every shape answers ``contains(points)`` for points given in the subject's frame:
millimetres from the subject's centre along RAS axes (+x towards the patient's
right, +y anterior, +z superior). A bounding-box test comes first, so a small shape
costs little on a large grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Cut", "Ellipsoid", "Outside", "Shape", "Tube", "Within", "draw_seed", "rotation"]


def draw_seed(rng: np.random.Generator) -> int:
    """A seed for a shape's irregular margin, drawn from the case's random stream."""
    return int(rng.integers(0, 2**31))


def rotation(rz: float = 0.0, ry: float = 0.0, rx: float = 0.0) -> np.ndarray:
    """A 3x3 rotation from angles (radians) about z, then y, then x."""
    cz, sz, cy, sy, cx, sx = np.cos(rz), np.sin(rz), np.cos(ry), np.sin(ry), np.cos(rx), np.sin(rx)
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    return rot_z @ rot_y @ rot_x


class Shape:
    """A solid: ``contains(points)`` for an ``(N, 3)`` array gives an ``(N,)`` boolean mask."""

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned box ``(low, high)`` that holds the shape."""
        raise NotImplementedError

    def inside(self, points: np.ndarray) -> np.ndarray:
        """Exact membership for points already inside the bounds."""
        raise NotImplementedError

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Membership of every point, ``(N, 3)`` -> ``(N,)`` bool."""
        low, high = self.bounds()
        candidate = np.all((points >= low) & (points <= high), axis=1)
        mask = np.zeros(len(points), dtype=bool)
        if candidate.any():
            mask[candidate] = self.inside(points[candidate])
        return mask


@dataclass
class Ellipsoid(Shape):
    """An ellipsoid, optionally with an irregular (lobulated) margin.

    Attributes:
        centre: ``(3,)`` mm.
        radii: ``(3,)`` semi-axes, mm, along the rotated axes.
        rot: 3x3 rotation of the axes.
        wobble: relative amplitude of the margin's irregularity (0 = smooth).
        seed: fixes the irregular margin's pattern.
        lobes: spatial frequency of the irregularity (higher = more, smaller lobes).
    """

    centre: np.ndarray
    radii: np.ndarray
    rot: np.ndarray = field(default_factory=lambda: np.eye(3))
    wobble: float = 0.0
    seed: int = 0
    lobes: float = 2.0

    def __post_init__(self):
        self.centre = np.asarray(self.centre, dtype=float)
        self.radii = np.asarray(self.radii, dtype=float)
        rng = np.random.default_rng(self.seed)
        self._freq = rng.normal(0, self.lobes, (5, 3))
        self._phase = rng.uniform(0, 2 * np.pi, 5)

    def bounds(self):
        """The bounding box of the rotated ellipsoid, widened by the wobble."""
        # the irregularity is a sum of 5 sines over sqrt(5): at most sqrt(5) in size
        half = np.sqrt(((self.rot * self.radii) ** 2).sum(axis=1)) * (1 + abs(self.wobble) * np.sqrt(len(self._phase)))
        return self.centre - half, self.centre + half

    def inside(self, points):
        """Normalised radius <= 1 + irregularity in the point's direction."""
        q = (points - self.centre) @ self.rot / self.radii
        d = np.sqrt((q**2).sum(axis=1))
        if not self.wobble:
            return d <= 1.0
        # only points in the shell that the irregular margin can reach need the margin
        reach = abs(self.wobble) * np.sqrt(len(self._phase))
        inside = d <= 1.0 - reach
        shell = np.flatnonzero((d > 1.0 - reach) & (d <= 1.0 + reach))
        u = q[shell] / np.maximum(d[shell], 1e-9)[:, None]
        bumps = np.sin(u @ self._freq.T + self._phase).sum(axis=1) / np.sqrt(len(self._phase))
        inside[shell] = d[shell] <= 1.0 + self.wobble * bumps
        return inside


@dataclass
class Tube(Shape):
    """All points within ``radius`` of the segment (or polyline) through ``points``."""

    path: np.ndarray
    radius: float

    def __post_init__(self):
        self.path = np.atleast_2d(np.asarray(self.path, dtype=float))

    def bounds(self):
        """The polyline's box widened by the radius."""
        return self.path.min(axis=0) - self.radius, self.path.max(axis=0) + self.radius

    def inside(self, points):
        """Distance to the nearest segment <= radius."""
        best = np.full(len(points), np.inf)
        for a, b in zip(self.path[:-1], self.path[1:], strict=True):
            ab = b - a
            t = np.clip((points - a) @ ab / max(ab @ ab, 1e-12), 0.0, 1.0)
            best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * ab), axis=1))
        return best <= self.radius


@dataclass
class Cut(Shape):
    """A shape kept only on one side of a plane: where ``normal . (p - origin) >= 0``."""

    shape: Shape
    origin: np.ndarray
    normal: np.ndarray

    def bounds(self):
        """The cut shape's bounds (the plane only removes)."""
        return self.shape.bounds()

    def inside(self, points):
        """Inside the shape and on the kept side of the plane."""
        side = (points - np.asarray(self.origin, dtype=float)) @ np.asarray(self.normal, dtype=float) >= 0
        mask = np.zeros(len(points), dtype=bool)
        if side.any():
            mask[side] = self.shape.inside(points[side])
        return mask


@dataclass
class Within(Shape):
    """A shape kept only inside a container (a lesion kept inside the brain)."""

    shape: Shape
    container: Shape

    def bounds(self):
        """The intersection of the two boxes."""
        (low_a, high_a), (low_b, high_b) = self.shape.bounds(), self.container.bounds()
        return np.maximum(low_a, low_b), np.minimum(high_a, high_b)

    def inside(self, points):
        """Inside the shape and inside the container."""
        return self.shape.inside(points) & self.container.contains(points)


@dataclass
class Outside(Shape):
    """A shape kept only outside another (an orbit or a sinus kept out of the brain)."""

    shape: Shape
    hole: Shape

    def bounds(self):
        """The shape's bounds (the hole only removes)."""
        return self.shape.bounds()

    def inside(self, points):
        """Inside the shape and not inside the hole."""
        return self.shape.inside(points) & ~self.hole.contains(points)
