"""The lesion table: connected lesion components measured in world millimetres.

From a label map (and optionally the network's lesion probability), each connected
component of each lesion class becomes one row: id, class, voxel count, volume,
centroid and bounding box in world mm, largest diameter, mean probability, the organ
it sits in or next to, and its compartment.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist

from mednet.io.atomic import atomic_path
from mednet.io.validation import spacing_from_affine

__all__ = ["TABLE_COLUMNS", "find_lesions", "largest_diameter_mm", "write_lesion_table"]

#: Column order of the CSV lesion table.
TABLE_COLUMNS = (
    "lesion_id", "label", "class_name", "voxels", "volume_ml", "centroid_x_mm", "centroid_y_mm", "centroid_z_mm",
    "bbox_min_voxel", "bbox_max_voxel", "bbox_min_mm", "bbox_max_mm", "largest_diameter_mm", "mean_probability",
    "host_organ", "host_distance_mm", "compartment",
)  # fmt: skip

_FULL_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


def _world(affine: np.ndarray, index: np.ndarray) -> np.ndarray:
    return index @ affine[:3, :3].T + affine[:3, 3]


def largest_diameter_mm(index: np.ndarray, affine: np.ndarray) -> float:
    """Largest distance (mm) between the centres of two voxels of a lesion.

    Args:
        index: ``(N, 3)`` voxel indices of the lesion.
        affine: 4x4 voxel -> world mm.

    Returns:
        The diameter, 0 for a single voxel. Only the convex hull's vertices are
        compared, so large lesions cost little.
    """
    points = _world(affine, index.astype(float))
    if len(points) < 2:
        return 0.0
    if len(points) > 4:
        with contextlib.suppress(QhullError):  # a flat or linear lesion: compare every point
            points = points[ConvexHull(points).vertices]
    return float(pdist(points).max())


def _host(
    lesion: np.ndarray,
    labels: np.ndarray,
    organs: Mapping[int, str],
    spacing: np.ndarray,
    max_distance_mm: float,
    box: tuple[slice, ...] | None = None,
) -> tuple[str | None, float | None, list[str]]:
    """The organ most overlapped by the lesion dilated by one voxel, else the nearest within reach.

    ``box``: a region holding the lesion with one voxel to spare on every side that the
    volume has (the ring is found there: the same ring, for a fraction of the cost).

    Returns ``(host, distance_mm, touching)``: ``touching`` names every organ the dilated lesion overlaps.
    """
    near = box or (slice(None),) * labels.ndim
    ring = ndimage.binary_dilation(lesion[near], _FULL_CONNECTIVITY) & ~lesion[near]
    values, counts = np.unique(labels[near][ring], return_counts=True)
    touching = {int(v): int(c) for v, c in zip(values, counts, strict=True) if int(v) in organs}
    if touching:
        best = max(touching, key=lambda v: (touching[v], -v))
        return organs[best], 0.0, [organs[v] for v in sorted(touching, key=lambda v: (-touching[v], v))]
    present = [v for v in organs if np.any(labels == v)]
    if not present:
        return None, None, []
    distance = ndimage.distance_transform_edt(~lesion, sampling=spacing)
    nearest = {v: float(distance[labels == v].min()) for v in present}
    best = min(nearest, key=lambda v: (nearest[v], v))
    if nearest[best] > max_distance_mm:
        return None, None, []
    return organs[best], round(nearest[best], 2), []


def _compartment(
    centroid_z: float,
    host: str | None,
    touching: Sequence[str],
    compartments: Mapping[str, str],
    priority: Sequence[str],
    tops: Mapping[str, tuple[float, str]],
) -> str:
    """A lesion's compartment (the thorax rule is applied by the caller).

    In order: a lesion touching an organ of ``tops`` with its centroid above that
    organ's highest point takes the compartment given there (a suprarenal mass is
    adrenal); then the first compartment of ``priority`` among the touched organs';
    then the host organ's compartment; else ``"other"``.
    """
    for name in touching:
        if name in tops and centroid_z > tops[name][0]:
            return tops[name][1]
    touched = {compartments[n] for n in touching if n in compartments}
    for compartment in priority:
        if compartment in touched:
            return compartment
    return compartments.get(host, "other") if host else "other"


def find_lesions(
    labels: np.ndarray,
    affine: np.ndarray,
    lesion_classes: Mapping[int, str],
    *,
    organs: Mapping[int, str] | None = None,
    compartments: Mapping[str, str] | None = None,
    thorax_organs: Sequence[str] = (),
    compartment_priority: Sequence[str] = (),
    above_organs: Mapping[str, str] | None = None,
    probability: np.ndarray | None = None,
    min_volume_mm3: float = 0.0,
    host_distance_mm: float = 10.0,
) -> list[dict]:
    """Measure every connected lesion component of a label map.

    Components are 26-connected and taken per lesion class, so two touching lesions
    of one class are one lesion.

    Args:
        labels: ``(x, y, z)`` integer label map.
        affine: 4x4 voxel -> RAS world mm of ``labels``.
        lesion_classes: lesion label value -> class name (e.g. ``{12: "primary", 13: "metastasis"}``).
        organs: organ label value -> organ name, for the host organ.
        compartments: organ name -> compartment (e.g. ``"adrenal_left": "adrenal"``).
        thorax_organs: organs whose lowest point marks the thorax (e.g. ``["lungs"]``):
            a lesion whose centroid lies above it is in the ``"thorax"`` compartment.
        compartment_priority: when a lesion touches organs of several compartments, the
            first listed wins (``["adrenal", "retroperitoneum"]``: a mass touching the
            adrenal gland and the kidney is adrenal) over the host organ's compartment.
        above_organs: organ name -> compartment of a lesion that touches the organ with
            its centroid above the organ's highest point (``{"kidney_left": "adrenal"}``:
            a suprarenal mass, even when it has replaced the adrenal gland).
        probability: ``(x, y, z)`` lesion probability, for each lesion's mean.
        min_volume_mm3: smaller components are dropped.
        host_distance_mm: farthest an organ may be from a lesion that touches none
            and still be called its host.

    Returns:
        One dict per lesion with the keys of :data:`TABLE_COLUMNS`, ordered by class
        then decreasing volume; ``lesion_id`` counts from 1.

    Raises:
        ValueError: ``labels`` is not 3D or ``probability`` has another shape.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels: expected a 3D (x, y, z) array, found shape {labels.shape}")
    if probability is not None and np.shape(probability) != labels.shape:
        raise ValueError(f"probability: expected shape {labels.shape}, found {np.shape(probability)}")
    affine = np.asarray(affine, dtype=float)
    spacing = spacing_from_affine(affine)
    voxel_mm3 = float(abs(np.linalg.det(affine[:3, :3])))
    organs = dict(organs or {})
    compartments = dict(compartments or {})
    tops = {}
    for name, compartment in (above_organs or {}).items():
        index = np.argwhere(np.isin(labels, [v for v, n in organs.items() if n == name]))
        if len(index):
            tops[name] = (float(_world(affine, index.astype(float))[:, 2].max()), compartment)
    thorax_floor = None
    for name in thorax_organs:
        values = [v for v, n in organs.items() if n == name]
        index = np.argwhere(np.isin(labels, values))
        if len(index):
            floor = float(_world(affine, index.astype(float))[:, 2].min())
            thorax_floor = floor if thorax_floor is None else min(thorax_floor, floor)

    rows = []
    for value, class_name in sorted(lesion_classes.items()):
        components, _ = ndimage.label(labels == value, structure=_FULL_CONNECTIVITY)
        for component, found in enumerate(ndimage.find_objects(components), start=1):
            # each lesion inside its box (and one voxel around it for the host's ring): the same
            # rows as from whole-volume masks, without a pass over the volume per lesion
            near = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in found)
            mask = np.zeros(labels.shape, dtype=bool)
            mask[near] = components[near] == component
            index = np.argwhere(mask[found]) + np.array([b.start for b in found])
            volume = len(index) * voxel_mm3
            if volume < min_volume_mm3:
                continue
            centroid = _world(affine, index.mean(axis=0))
            low, high = index.min(axis=0), index.max(axis=0)
            corners = _world(affine, np.array(np.meshgrid(*zip(low - 0.5, high + 0.5, strict=True))).reshape(3, -1).T)
            host, distance, touching = (
                _host(mask, labels, organs, spacing, host_distance_mm, near) if organs else (None, None, [])
            )
            if thorax_floor is not None and centroid[2] > thorax_floor:
                compartment = "thorax"
            else:
                compartment = _compartment(centroid[2], host, touching, compartments, compartment_priority, tops)
            rows.append({
                "label": int(value), "class_name": class_name, "voxels": len(index),
                "volume_ml": round(volume / 1000.0, 4),
                "centroid_x_mm": round(float(centroid[0]), 2), "centroid_y_mm": round(float(centroid[1]), 2),
                "centroid_z_mm": round(float(centroid[2]), 2),
                "bbox_min_voxel": low.tolist(), "bbox_max_voxel": high.tolist(),
                "bbox_min_mm": np.round(corners.min(axis=0), 2).tolist(),
                "bbox_max_mm": np.round(corners.max(axis=0), 2).tolist(),
                "largest_diameter_mm": round(largest_diameter_mm(index, affine), 2),
                "mean_probability": None if probability is None
                else round(float(np.asarray(probability)[near][mask[near]].mean()), 4),
                "host_organ": host, "host_distance_mm": distance, "compartment": compartment,
            })  # fmt: skip
    rows.sort(key=lambda r: (r["label"], -r["voxels"]))
    return [{"lesion_id": i, **row} for i, row in enumerate(rows, start=1)]


def write_lesion_table(lesions: list[dict], json_path: os.PathLike | str, csv_path: os.PathLike | str) -> None:
    """Write the lesion table as JSON and CSV, each atomically (:func:`mednet.io.atomic.atomic_path`)."""
    for path, write in ((json_path, _write_json), (csv_path, _write_csv)):
        with atomic_path(path, parents=True) as tmp, tmp.open("w", newline="", encoding="utf-8") as stream:
            write(lesions, stream)


def _write_json(lesions: list[dict], stream) -> None:
    json.dump({"lesions": lesions, "count": len(lesions)}, stream, indent=2)
    stream.write("\n")


def _write_csv(lesions: list[dict], stream) -> None:
    writer = csv.DictWriter(stream, fieldnames=list(TABLE_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in lesions:
        writer.writerow(
            {k: (" ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v)) for k, v in row.items()}
        )
