"""Write a label map as a DICOM Segmentation (SEG) that references its source DICOM series.

A case whose reference sequence came as a DICOM series gets, beside its NIfTI label
map, a DICOM SEG object (written with highdicom) that a PACS or a DICOM viewer (OHIF,
3D Slicer, Horos) shows over the source series:

- it references every instance of the source series (Referenced Series Sequence, and
  per frame the source image it was derived from) and takes its patient, study and
  frame of reference;
- its geometry is the source's: image position and orientation, pixel spacing and the
  rows and columns of each source slice (highdicom copies them from the source
  instances);
- one segment per row of the label table, in the table's order: segment number ``i``
  is the ``i``-th row (the label value itself when the values are ``1..n``, as in every
  mednet bundle), named and coloured from the table; lesion values are "Morphologically
  Abnormal Structure / Lesion", the others "Anatomical Structure / Organ";
- the segmentation type is BINARY (the one every SEG viewer reads): one frame per
  segment and source slice that holds any voxel of that segment. An empty label map is
  still a valid SEG: with nothing to show, every frame of every segment is written,
  empty (highdicom keeps them all when all are empty).

Axis orders: a mednet label map is ``(x, y, z)`` on the grid SimpleITK reads from the
series, where ``x`` runs along a slice's columns, ``y`` along its rows and ``z`` across
the slices; a DICOM frame is ``(rows, columns)``, i.e. ``(y, x)``. The writer does not
rely on that convention: each source slice's pixels are located on the label map's grid
from the slice's own ImagePositionPatient, ImageOrientationPatient and PixelSpacing and
the label map's affine, so a map reoriented (axes permuted or flipped) or a series
stored in any slice order gives the same SEG, and a map that is not on the series' grid
is refused.

Example:
    >>> image = read_image("case1/t2_dicom")  # doctest: +SKIP
    >>> write_dicom_seg(labels, "case1/t2_dicom", scheme.labels, "out/case1_labels.seg.dcm",
    ...                 affine=image.affine)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mednet.errors import InvalidImageError
from mednet.io.atomic import atomic_path
from mednet.io.sitk_reader import lps_to_ras

__all__ = ["read_source_series", "series_affine", "source_frames", "write_dicom_seg"]

#: How far (in voxels) a source pixel may lie from a voxel centre of the label map's grid.
GRID_TOLERANCE_VOXELS = 0.25

#: The UIDs by which a SEG references each source instance, its series and its study.
_REFERENCED_UIDS = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")

#: Mednet's SEG series number (the source series' own number is not reused).
SEG_SERIES_NUMBER = 9001


def read_source_series(source: os.PathLike | str | Sequence, series_uid: str | None = None) -> list:
    """The source series' instances as pydicom datasets (without pixel data), in the order given.

    Args:
        source: a folder holding the series (the files SimpleITK/GDCM reads as that series, as
            :func:`mednet.io.read_image` does), or a sequence of DICOM file paths or pydicom
            datasets.
        series_uid: the series to take from a folder holding several.

    Returns:
        One ``pydicom.Dataset`` per instance.

    Raises:
        InvalidImageError: no DICOM series, several series and no ``series_uid``, an unreadable
            file, or instances of several series (the message names the folder or file).
    """
    import pydicom

    if isinstance(source, str | os.PathLike):
        folder = Path(source)
        if not folder.is_dir():
            raise InvalidImageError(folder, "not a DICOM series folder", expected="a folder of DICOM files",
                                    found="a file" if folder.exists() else "nothing at this path")  # fmt: skip
        uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
        if not uids or (series_uid is not None and series_uid not in uids):
            raise InvalidImageError(folder, "DICOM series not found", expected=f"series {series_uid or '(any)'}",
                                    found="series " + ", ".join(uids) if uids else "no DICOM series")  # fmt: skip
        if series_uid is None and len(uids) > 1:
            raise InvalidImageError(folder, "DICOM folder holds several series, say which one (series_uid)",
                                    expected="one series", found=f"{len(uids)} series: {', '.join(uids)}")  # fmt: skip
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_uid or uids[0])
        source = [Path(f) for f in files]
    datasets = []
    for item in source:
        if isinstance(item, pydicom.Dataset):
            datasets.append(item)
            continue
        try:
            datasets.append(pydicom.dcmread(item, stop_before_pixels=True))
        except (OSError, pydicom.errors.InvalidDicomError) as err:
            raise InvalidImageError(item, "unreadable DICOM file", expected="a DICOM image",
                                    found=" ".join(str(err).split())) from err  # fmt: skip
    if not datasets:
        raise InvalidImageError(str(source), "no DICOM instance given", expected="the source series' instances",
                                found="an empty list")  # fmt: skip
    _check_series(datasets)
    return datasets


def _where(dataset) -> str:
    return str(getattr(dataset, "filename", None) or f"instance {getattr(dataset, 'SOPInstanceUID', '?')}")


def _check_series(datasets: Sequence) -> None:
    """Refuse instances a SEG cannot reference slice by slice: several series, multi-frame, no geometry."""
    series = {str(getattr(d, "SeriesInstanceUID", "")) for d in datasets}
    if len(series) != 1:
        raise InvalidImageError(_where(datasets[0]), "instances of several series", expected="one series",
                                found=f"series {', '.join(sorted(series))}")  # fmt: skip
    for dataset in datasets:
        missing = [k for k in _REFERENCED_UIDS if not getattr(dataset, k, None)]
        if missing:
            raise InvalidImageError(_where(dataset), "DICOM instance without the UIDs a SEG references it by "
                                    "(de-identified without new UIDs?)", expected=", ".join(_REFERENCED_UIDS),
                                    found=f"no {', '.join(missing)}")  # fmt: skip
        frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
        if frames > 1:
            raise InvalidImageError(_where(dataset), "multi-frame DICOM source (not supported for DICOM SEG output)",
                                    expected="a series of single-frame instances",
                                    found=f"one instance of {frames} frames")  # fmt: skip
        missing = [k for k in ("FrameOfReferenceUID", "ImagePositionPatient", "ImageOrientationPatient",
                               "PixelSpacing", "Rows", "Columns") if not getattr(dataset, k, None)]  # fmt: skip
        if missing:
            raise InvalidImageError(_where(dataset), "DICOM instance without the geometry a SEG references",
                                    expected="FrameOfReferenceUID, ImagePositionPatient, ImageOrientationPatient, "
                                    "PixelSpacing, Rows, Columns", found=f"no {', '.join(missing)}")  # fmt: skip


def _plane(dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """``(position, row_direction, column_direction, row_spacing, column_spacing)`` of an instance, LPS mm.

    ``row_direction`` is the direction of increasing column index (along a row);
    ``row_spacing`` is the distance between rows (DICOM's PixelSpacing order).
    """
    position = np.asarray(dataset.ImagePositionPatient, dtype=float)
    orientation = np.asarray(dataset.ImageOrientationPatient, dtype=float)
    row_spacing, column_spacing = (float(v) for v in dataset.PixelSpacing)
    return position, orientation[:3], orientation[3:], row_spacing, column_spacing


def series_affine(datasets: Sequence) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The grid mednet reads from a single-frame series: its RAS affine and ``(x, y, z)`` shape.

    ``x`` runs along the columns, ``y`` along the rows and ``z`` across the slices, in
    ascending position along the slice normal (row direction x column direction), as
    SimpleITK sorts them.

    Args:
        datasets: the series' instances (:func:`read_source_series`).

    Returns:
        ``(affine, shape)``: 4x4 voxel index -> RAS world mm, and the grid's shape.
    """
    _check_series(datasets)
    _, row_dir, column_dir, row_spacing, column_spacing = _plane(datasets[0])
    normal = np.cross(row_dir, column_dir)
    positions = sorted((_plane(d)[0] for d in datasets), key=lambda p: float(np.dot(normal, p)))
    step = (positions[-1] - positions[0]) / (len(positions) - 1) if len(positions) > 1 else normal
    affine = np.eye(4)
    affine[:3, 0] = row_dir * column_spacing
    affine[:3, 1] = column_dir * row_spacing
    affine[:3, 2] = step
    affine[:3, 3] = positions[0]
    return lps_to_ras(affine), (int(datasets[0].Columns), int(datasets[0].Rows), len(datasets))


def _as_array(label_map) -> tuple[np.ndarray, np.ndarray | None]:
    """A label map as an ``(x, y, z)`` integer array, and its affine when it carries one (a MetaTensor)."""
    affine = getattr(label_map, "affine", None)
    if hasattr(label_map, "detach"):
        label_map = label_map.detach().cpu().numpy()
    array = np.asarray(label_map)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"label_map: expected (x, y, z) or (1, x, y, z), found shape {array.shape}")
    if not np.all(np.isfinite(array)) or not np.array_equal(array, np.rint(array)) or array.min(initial=0) < 0:
        raise ValueError("label_map: expected non-negative integer label values")
    affine = None if affine is None else np.asarray(affine.detach().cpu() if hasattr(affine, "detach") else affine)
    return array.astype(np.int64), affine


def source_frames(label_map: np.ndarray, affine: np.ndarray, datasets: Sequence, where: str = "") -> np.ndarray:
    """The label map's values at each source instance's pixels: ``(instances, rows, columns)``.

    Each instance's pixel ``(r, c)`` lies at ``position + c * column_spacing * row_direction
    + r * row_spacing * column_direction`` (DICOM PS3.3 C.7.6.2.1.1); that point is taken to
    the label map's voxel indices through the inverse of ``affine``. Every pixel must land
    on a voxel centre (within :data:`GRID_TOLERANCE_VOXELS`), and the instances together
    must cover the grid exactly once.

    Args:
        label_map: ``(x, y, z)`` values.
        affine: 4x4 voxel index -> RAS world mm of ``label_map``.
        datasets: the source instances, in the order the frames are wanted.
        where: the source, named in error messages.

    Returns:
        ``(len(datasets), Rows, Columns)`` array: frame ``i`` is instance ``i``'s slice.

    Raises:
        ValueError: the label map is not on the source series' grid (the message says how).
    """
    where = where or _where(datasets[0])
    lps = lps_to_ras(np.asarray(affine, dtype=float))
    to_index = np.linalg.inv(lps)
    shape = np.asarray(label_map.shape)
    frames, slices, planes = [], [], set()
    for dataset in datasets:
        position, row_dir, column_dir, row_spacing, column_spacing = _plane(dataset)
        origin = to_index[:3, :3] @ position + to_index[:3, 3]
        along_row = to_index[:3, :3] @ (row_dir * column_spacing)  # one column further
        along_column = to_index[:3, :3] @ (column_dir * row_spacing)  # one row further
        steps = np.rint([along_row, along_column])
        axes = tuple(int(np.flatnonzero(s)[0]) if np.abs(s).sum() == 1 else -1 for s in steps)
        if np.abs(np.stack([along_row, along_column]) - steps).max() > 0.01 or -1 in axes or axes[0] == axes[1]:
            raise ValueError(
                f"{where}: the label map is not on the source series' grid: expected its axes along the "
                f"slices' rows and columns with the same pixel spacing, found one column step = "
                f"{np.round(along_row, 3).tolist()} and one row step = {np.round(along_column, 3).tolist()} voxels"
            )
        start = np.rint(origin)
        if np.abs(origin - start).max() > GRID_TOLERANCE_VOXELS:
            raise ValueError(
                f"{where}: the label map is not on the source series' grid: {_where(dataset)} starts at voxel "
                f"{np.round(origin, 3).tolist()}, off the voxel centres by more than {GRID_TOLERANCE_VOXELS}"
            )
        rows, columns = int(dataset.Rows), int(dataset.Columns)
        index = (start[:, None, None] + steps[1][:, None, None] * np.arange(rows)[None, :, None]
                 + steps[0][:, None, None] * np.arange(columns)[None, None, :]).astype(np.int64)  # fmt: skip
        if index.min() < 0 or np.any(index.reshape(3, -1).max(axis=1) >= shape):
            raise ValueError(
                f"{where}: the label map is not on the source series' grid: {_where(dataset)} ({rows} rows x "
                f"{columns} columns) reaches outside the label map of shape {tuple(shape.tolist())}"
            )
        frames.append(label_map[index[0], index[1], index[2]])
        planes.add((axes, columns, rows))
        slices.append(int(start[3 - sum(axes)]))
    (axes, columns, rows), *others = planes
    if (
        others
        or sorted(slices) != list(range(int(shape[3 - sum(axes)])))
        or (columns, rows) != (int(shape[axes[0]]), int(shape[axes[1]]))
    ):
        raise ValueError(
            f"{where}: the label map is not on the source series' grid: its shape {tuple(shape.tolist())} is not "
            f"covered once by the {len(datasets)} slices of {datasets[0].Rows} rows x {datasets[0].Columns} columns"
        )
    return np.stack(frames)


def _rows(label_table: Sequence[Mapping] | object) -> list[dict]:
    """The label table's rows without background: ``value``, ``name``, ``colour`` (``#rrggbb`` or ``[r, g, b]``)."""
    rows = getattr(label_table, "labels", label_table)
    out = []
    for row in rows:
        if int(row["value"]) == 0:
            continue
        colour = row.get("colour", "#ffffff")
        if isinstance(colour, str):
            if len(colour) != 7 or not colour.startswith("#"):
                raise ValueError(f"label table: colour of {row['name']!r}: expected '#rrggbb', found {colour!r}")
            colour = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
        out.append({"value": int(row["value"]), "name": str(row["name"]), "rgb": tuple(int(v) for v in colour)})
    values = [row["value"] for row in out]
    if not out or len(set(values)) != len(values):
        raise ValueError(f"label table: expected at least one label and distinct values, found values {values}")
    return out


def write_dicom_seg(
    label_map,
    source: os.PathLike | str | Sequence,
    label_table: Sequence[Mapping] | object,
    path: os.PathLike | str,
    *,
    affine: np.ndarray | None = None,
    lesion_values: Collection[int] = (),
    series_uid: str | None = None,
    series_description: str = "mednet labels",
    algorithm: str = "mednet",
    algorithm_version: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a label map as a DICOM SEG referencing its source series.

    Args:
        label_map: ``(x, y, z)`` or ``(1, x, y, z)`` integer labels (numpy array, tensor or
            MetaTensor) on the source series' grid, in any axis order and direction: the
            affine says which (see the module docstring).
        source: the source series: its folder, or its instances (file paths or pydicom
            datasets; see :func:`read_source_series`).
        label_table: rows ``{"value", "name", "colour"}`` (``#rrggbb`` or ``[r, g, b]``;
            background 0 skipped), or a :class:`mednet.localisation.outputs.LabelScheme`.
        path: the SEG file to write (``.dcm``), atomically.
        affine: 4x4 voxel index -> RAS world mm of ``label_map``. Default: a MetaTensor's
            own affine, else the grid mednet reads from the series (:func:`series_affine`).
        lesion_values: label values coded as lesions (the others as organs).
        series_uid: the series to take from a folder holding several.
        series_description: the SEG series' description.
        algorithm: the algorithm's name recorded with each segment (e.g. the bundle).
        algorithm_version: its version (default mednet's).
        overwrite: replace an existing file.

    Returns:
        The path written.

    Raises:
        InvalidImageError: a source that is not one series of single-frame instances with
            their geometry and frame of reference (the message names the file).
        ValueError: a label map not on the source grid, or with values the table lacks.
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from mednet import __version__
    from mednet.errors import OutputExistsError

    out = Path(path)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out}: output exists; pass overwrite=True (--overwrite) to replace it")
    where = str(source) if isinstance(source, str | os.PathLike) else ""
    datasets = read_source_series(source, series_uid)
    where = where or _where(datasets[0])
    array, own_affine = _as_array(label_map)
    if affine is None:
        affine = own_affine if own_affine is not None else series_affine(datasets)[0]
    rows = _rows(label_table)
    unknown = sorted(set(np.unique(array).tolist()) - {0} - {row["value"] for row in rows})
    if unknown:
        raise ValueError(f"{where}: label values {unknown} are not in the label table "
                         f"(values {[row['value'] for row in rows]})")  # fmt: skip
    frames = source_frames(array, affine, datasets, where)
    segments = np.zeros(frames.shape, dtype=np.uint16 if len(rows) > 255 else np.uint8)
    for number, row in enumerate(rows, start=1):  # segment numbers are 1..n in the table's order
        segments[frames == row["value"]] = number
    identification = hd.AlgorithmIdentificationSequence(
        name=algorithm, version=algorithm_version or __version__, family=codes.cid7162.ArtificialIntelligence
    )
    lesions = {int(v) for v in lesion_values}
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=row["name"][:64],
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure
            if row["value"] in lesions else codes.SCT.AnatomicalStructure,
            segmented_property_type=codes.SCT.Lesion if row["value"] in lesions else codes.SCT.Organ,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=identification,
            tracking_id=f"mednet label {row['value']}",
            tracking_uid=hd.UID(),
            display_color=hd.color.CIELabColor.from_rgb(*row["rgb"]),
        )
        for number, row in enumerate(rows, start=1)
    ]  # fmt: skip
    seg = hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=segments,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="mednet",
        manufacturer_model_name=algorithm[:64],
        software_versions=f"mednet {__version__}",
        device_serial_number="none",
        content_label="MEDNET",
        content_description="research use only"[:64],
        series_description=series_description[:64],
    )
    with atomic_path(out, suffix=".dcm") as tmp:
        seg.save_as(tmp)
    return out
