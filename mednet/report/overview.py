"""A case's overview PNG: every sequence at the slice of largest lesion area, then every lesion at its own.

Radiological convention (the patient's right on the left, anterior at the top, marked
R / L / A / P), organs lightly tinted in their label-table colours, lesions outlined, the
ground truth's lesions outlined dashed in white when the case came with them, a scale bar
in millimetres on every panel, a legend of the labels shown, the diagnosis in the title.
The first row shows each sequence at the slice where the lesions are largest; the rows
below show each lesion (up to :data:`MAX_LESION_PANELS`, largest first, numbered as in the
lesion table) zoomed at its own largest slice. :func:`draw_panel` is shared with the
synthetic cohort's preview montage.

How it is drawn: with numpy and Pillow, not matplotlib. A :class:`Canvas` holds the RGB
pixels; each panel's slice is scaled to its box by nearest-neighbour index mapping
(keeping the voxels' physical aspect ratio, centred, as ``imshow(aspect=...)`` did),
organs are alpha-blended in, and outlines are the boundary pixels of the scaled masks
(:func:`outline`); the texts (antialiased, matplotlib's bundled DejaVu Sans) are drawn by
Pillow last, and the PNG is written with fast zlib settings. The pixel size and the panels'
places are those of the matplotlib figure it replaces (:func:`_layout`, 90 dpi). Why not
matplotlib: speed. On a BraTS-size case (240 x 240 x 155, four sequences, one lesion, a
truth; ``scripts/benchmark_overview.py``, 2 shared CPU cores) the matplotlib figure took
0.58 s a case (median; 0.38 s on a quiet machine): creating the axes, ``savefig``
resampling and drawing every image, text and contour, ``ax.contour``, the most of a case's
time beyond the network. This takes 0.09 s (0.08 s quiet), a quarter of it zlib, a fifth
the lesions' connected components; :func:`montage` draws the synthetic cohort's preview.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, io_orientation

from mednet.io.grid import bounding_box
from mednet.report.canvas import DPI, POINT, Box, Canvas, Placement, draw_outline, load_font, place, rgb

__all__ = ["MAX_LESION_PANELS", "LegendEntry", "draw_panel", "legend_entries", "montage", "on_grid",
           "radiological_slice", "scale_bar_length", "to_ras", "write_overview"]  # fmt: skip

#: At most this many lesions get a panel of their own (the largest; the figure says how many more).
MAX_LESION_PANELS = 8
#: Alpha of an organ's tint over the grey picture.
TINT_ALPHA = 0.22


def to_ras(image: nib.Nifti1Image) -> np.ndarray:
    """The image's voxels reordered to RAS (nearest to canonical orientation)."""
    return np.asanyarray(nib.as_closest_canonical(image).dataobj)


def radiological_slice(volume: np.ndarray, k: int) -> np.ndarray:
    """Axial slice ``k`` of an RAS-ordered ``(x, y, z)`` volume as a ``(rows, cols)`` image.

    Radiological convention: anterior at the top, the patient's right on the left.
    """
    return volume[::-1, ::-1, k].T


def on_grid(image: nib.Nifti1Image, reference: nib.Nifti1Image) -> nib.Nifti1Image:
    """``image`` resampled (linear) onto ``reference``'s grid when the grids differ."""
    if image.shape[:3] == reference.shape[:3] and np.allclose(image.affine, reference.affine, atol=1e-4):
        return image
    from nibabel.processing import resample_from_to

    return resample_from_to(image, (reference.shape[:3], reference.affine), order=1)


def scale_bar_length(mm_per_pixel: float, width_pixels: int) -> float:
    """A scale bar's length in mm: 1, 2, 5, 10, 20, 50, 100... about a quarter of a slice ``width_pixels`` wide."""
    span = width_pixels * mm_per_pixel / 4
    return float(next((v for v in (1, 2, 5, 10, 20, 50, 100, 200, 500) if v >= span * 0.6), 1000))


def draw_panel(canvas: Canvas, box: Box, picture: np.ndarray, labels: np.ndarray, colours: Mapping[int, tuple],
               lesions: set[int], aspect: float, title: str, *, mm_per_pixel: float | None = None,
               focus: np.ndarray | None = None, truth: np.ndarray | None = None) -> Placement:  # fmt: skip
    """One panel: a grey slice, organs tinted, lesions outlined, R / L / A / P, a scale bar, its title above.

    The grey window is 0 .. the slice's 99.5th percentile. Lesion outlines are 2 pixels
    (one within the lesion, one around), the ``focus`` 3 pixels in yellow, the ``truth`` 2
    pixels dashed in white, drawn over them.

    Args:
        canvas: the canvas.
        box: the panel's box (the slice fitted into it, centred).
        picture: ``(rows, cols)`` image slice.
        labels: ``(rows, cols)`` integer labels of the same slice.
        colours: label value -> RGBA colour.
        lesions: the lesion label values (outlined; the others are tinted).
        aspect: pixel aspect ratio (row spacing / column spacing).
        title: the panel's title.
        mm_per_pixel: the columns' spacing: a scale bar when given.
        focus: ``(rows, cols)`` bool: the lesion the panel is about, outlined thicker in yellow.
        truth: ``(rows, cols)`` bool: the ground truth's lesions, outlined dashed in white.

    Returns:
        Where the slice was drawn.
    """
    where = place(box, picture.shape, aspect)
    top = float(np.percentile(picture, 99.5)) if picture.size else 1.0
    grey = where.scale(picture).astype(np.float32) * np.float32(255 / (top if top > 0 else 1.0)) + np.float32(0.5)
    pixels = np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)  # rounded
    organs = {int(v): c for v, c in colours.items() if int(v) not in lesions}
    if organs:
        spare = max(max(organs), 0) + 1  # labels beyond the table (and below 0): untinted
        tint, alpha = np.zeros((spare + 1, 3), np.float32), np.zeros((spare + 1, 1), np.float32)
        for value, colour in organs.items():
            if value >= 0:
                tint[value], alpha[value] = rgb(colour), TINT_ALPHA
        index = where.scale(np.where((labels < 0) | (labels > spare), spare, labels))
        a = alpha[index]
        if a.any():
            pixels = np.round(pixels * (1 - a) + tint[index] * a).astype(np.uint8)
    canvas.pixels[where.region()] = pixels
    for value in sorted(lesions & set(colours)):
        if (mask := labels == value).any():
            draw_outline(canvas, where, mask, colours[value])
    if focus is not None and focus.any():  # the lesion the panel is about, thicker
        draw_outline(canvas, where, focus, (1.0, 1.0, 0.0, 1.0), inside=2, outside=1)
    if truth is not None and truth.any():
        draw_outline(canvas, where, truth, (1.0, 1.0, 1.0, 1.0), dash=3)
    x0, y0, width, height = where.left, where.top, where.width, where.height
    if mm_per_pixel is not None:  # at the top left: 4% of the columns in, 10% down, its length above it
        length = scale_bar_length(mm_per_pixel, picture.shape[1])
        per_column = width / picture.shape[1]
        start, bar = x0 + round((0.04 * picture.shape[1] + 0.5) * per_column), round(length / mm_per_pixel * per_column)
        row = round(y0 + 0.1 * height - 1.5)  # 3 pixels thick
        canvas.fill(slice(row, row + 3), slice(start, min(start + bar, x0 + width)), "white")
        canvas.text(start + bar / 2, y0 + 0.08 * height, f"{length:g} mm", points=7, colour="white", anchor="md")
    marks = {"R": (0.01, 0.5, "lm"), "L": (0.99, 0.5, "rm"), "A": (0.5, 0.01, "ma"), "P": (0.5, 0.99, "md")}
    for letter, (x, y, anchor) in marks.items():  # radiological convention, spelled out
        canvas.text(x0 + x * width, y0 + y * height, letter, points=8, colour="yellow", anchor=anchor, bold=True)
    canvas.text(x0 + width / 2, y0 - 6 * POINT, title, points=9, anchor="ms", width=box.width - 6)
    return where


class LegendEntry(NamedTuple):
    """A legend row's entry: its text, colour and mark (``"patch"``, ``"line"``, ``"thick"`` or ``"dashed"``)."""

    label: str
    colour: tuple
    mark: str


def legend_entries(label_table: Sequence[Mapping], present: set[int], lesions: set[int]) -> list[LegendEntry]:
    """The legend's entries for the labels ``present`` (0 never): organs as tinted patches, lesions as outlines."""
    from matplotlib.colors import to_rgba

    entries = []
    for entry in label_table:
        value = int(entry["value"])
        if value and value in present:
            colour = to_rgba(entry["colour"])
            if value in lesions:
                entries.append(LegendEntry(f"{entry['name']} (outline)", colour, "line"))
            else:
                entries.append(LegendEntry(entry["name"], colour, "patch"))
    return entries


_LEGEND = {"points": 7, "row": 18, "margin": 8}  # its font; a row's pixels (0.2 inch); from the figure's edges


def _legend_rows(entries: Sequence[LegendEntry], note: str | None, width: int) -> list[list[tuple[float, object]]]:
    """The legend laid out in rows across ``width`` pixels: each row's ``(x, entry)``; the note last, right-aligned.

    An entry is a mark two ems long, then its text; entries two ems apart; a row takes
    what fits (at least one entry).
    """
    em = _LEGEND["points"] * POINT
    font = load_font(em)
    rows, x, limit = [[]], _LEGEND["margin"], width - _LEGEND["margin"]
    for entry in entries:
        span = 2.8 * em + font.getlength(entry.label)
        if rows[-1] and x + span > limit:
            rows.append([])
            x = _LEGEND["margin"]
        rows[-1].append((x, entry))
        x += span + 2 * em
    if note is not None:
        span = load_font(8 * POINT).getlength(note)
        if rows[-1] and x + span > limit:
            rows.append([])
        rows[-1].append((limit, note))
    return [row for row in rows if row]


def _draw_legend(canvas: Canvas, rows: list[list[tuple[float, object]]]) -> None:
    """Draw the legend's rows at the canvas's bottom, 18 pixels apart (a row's marks and texts; the note in red)."""
    em = _LEGEND["points"] * POINT
    for n, row in enumerate(rows):
        y = canvas.height - 13 - _LEGEND["row"] * (len(rows) - 1 - n)  # the row's middle
        for x, entry in row:
            if isinstance(entry, str):
                canvas.text(x, y, entry, points=8, colour="#b00020", anchor="rm")
                continue
            x0, x1, middle = round(x), round(x + 2 * em), round(y)
            if entry.mark == "patch":
                canvas.fill(slice(middle - 3, middle + 4), slice(x0, x1), entry.colour, alpha=0.5)
            elif entry.mark == "dashed":
                for start in range(x0, x1, 5):
                    canvas.fill(slice(middle - 1, middle + 1), slice(start, min(start + 3, x1)), entry.colour)
            else:
                half = 2 if entry.mark == "thick" else 1
                canvas.fill(slice(middle - half + 1, middle + half + 1), slice(x0, x1), entry.colour)
            canvas.text(x + 2.8 * em, y, entry.label, points=_LEGEND["points"], anchor="lm")


def _nifti(image) -> nib.Nifti1Image:
    """A file (loaded lazily), a nibabel image or a ``(1, x, y, z)`` MetaTensor as an in-memory NIfTI image."""
    if isinstance(image, nib.spatialimages.SpatialImage):
        return image
    if isinstance(image, os.PathLike | str):
        return nib.load(str(image))
    return nib.Nifti1Image(np.asarray(image[0].detach().cpu().numpy()), np.asarray(image.affine, dtype=float))


def _grid(width: float, height: float, rows: int, columns: int, *, top: float, bottom: float, gap: float,
          side: float, between: float) -> tuple[int, int, list[list[Box]]]:  # fmt: skip
    """A grid of panel boxes on a ``width x height`` inch figure, from margins in inches.

    Args:
        width: the figure's width in inches.
        height: its height.
        rows: panel rows.
        columns: panel columns.
        top: above the first row's titles.
        bottom: below the last row.
        gap: above each row (its titles).
        side: left and right.
        between: between columns.

    Returns:
        ``(width, height, boxes)``: the figure in pixels at :data:`DPI`, ``boxes[row][column]`` in pixels.
    """
    panel_h = (height - top - bottom - rows * gap) / rows
    panel_w = (width - 2 * side - (columns - 1) * between) / columns
    boxes = [[Box(DPI * (side + c * (panel_w + between)), DPI * (top + gap + r * (panel_h + gap)), DPI * panel_w,
                  DPI * panel_h) for c in range(columns)] for r in range(rows)]  # fmt: skip
    return round(width * DPI), round(height * DPI), boxes


def _layout(columns: int, lesion_rows: int, legend_rows: int) -> tuple[int, int, list[list[Box]]]:
    """The overview's size in pixels and its panels' boxes, from fixed margins.

    Panels of 3.2 inches a side at :data:`DPI`; room for the title at the top, each panel's
    title above it, and the legend's rows at the bottom (the figure grows by a row's 18 pixels
    for each row past the first, so panels keep their size and place).

    Returns:
        ``(width, height, boxes)``: ``boxes[row][column]``, the sequences' row first.
    """
    legend = 0.2 * max(legend_rows, 1)  # a row of 18 pixels at 90 dpi
    width, height = 3.2 * columns, 3.9 + 3.2 * lesion_rows + legend - 0.2
    return _grid(width, height, 1 + lesion_rows, columns, top=0.42, bottom=0.12 + legend, gap=0.32, side=0.06,
                 between=0.08)  # fmt: skip


def _components(seg: np.ndarray, affine: np.ndarray, lesions: set[int], table: Sequence[Mapping] | None,
                masks: Mapping[int, np.ndarray] | None = None) -> list[dict]:  # fmt: skip
    """Each lesion of the (RAS) label map: its voxels' bounding box, id, class and volume, largest first.

    Numbered as in the lesion table when it is given (each table row matched to the component of
    its label with the nearest centroid), else in order of size. Each component's ``mask`` is its
    voxels within its ``box``. Components are labelled within the bounding box of their label
    value only (the same components, numbered alike: the box keeps the voxels' raster order);
    ``masks`` (value -> ``seg == value``) saves computing those again.
    """
    from scipy import ndimage

    found = []
    voxel_ml = float(abs(np.linalg.det(affine[:3, :3]))) / 1000.0
    for value in sorted(lesions):
        where = masks[value] if masks is not None and value in masks else seg == value
        around = bounding_box(where)
        if around is None:
            continue
        parts, _ = ndimage.label(where[around], structure=np.ones((3, 3, 3)))
        offset = [b.start for b in around]
        for k, local in enumerate(ndimage.find_objects(parts), start=1):
            mask = parts[local] == k
            inside = np.argwhere(mask)  # within the component's box only: cheap
            box = tuple(slice(b.start + o, b.stop + o) for b, o in zip(local, offset, strict=True))
            centre = affine[:3, :3] @ (inside.mean(axis=0) + [b.start for b in box]) + affine[:3, 3]
            found.append({"value": value, "part": k, "mask": mask, "box": box, "voxels": len(inside),
                          "centre": centre, "volume_ml": len(inside) * voxel_ml})  # fmt: skip
    rows = [r for r in (table or []) if int(r.get("label", -1)) in lesions]
    if rows:
        for row in rows:
            where = np.array([row.get(f"centroid_{a}_mm", np.nan) for a in "xyz"], dtype=float)
            same = [c for c in found if c["value"] == int(row["label"]) and "id" not in c]
            if same and np.isfinite(where).all():
                best = min(same, key=lambda c: float(np.sum((c["centre"] - where) ** 2)))
                best.update(id=row.get("lesion_id"), name=row.get("class_name"), volume_ml=float(row["volume_ml"]))
    found.sort(key=lambda c: -c["voxels"])
    for n, c in enumerate(found, start=1):
        c.setdefault("id", n)
    return found


def write_overview(
    images: Mapping[str, object],
    label_path: object,
    label_table: Sequence[Mapping],
    lesion_values: Sequence[int],
    title: str,
    out: os.PathLike | str,
    *,
    lesions: Sequence[Mapping] | None = None,
    truth: object = None,
    max_lesions: int = MAX_LESION_PANELS,
) -> Path:
    """Write a case's overview PNG: a panel per sequence, then a panel per lesion.

    Args:
        images: sequence -> image file or ``(1, x, y, z)`` MetaTensor (each resampled onto the
            label map's grid when on another).
        label_path: the label map (on the reference sequence's grid): a file or a MetaTensor.
        label_table: ``[{"value", "name", "colour"}, ...]``.
        lesion_values: the label values outlined as lesions.
        title: the figure's title (case and diagnosis).
        out: the PNG to write (atomically).
        lesions: the lesion table (``lesion_id``, ``label``, ``class_name``, ``volume_ml``,
            world centroid): the lesion panels are numbered and named as in it.
        truth: the ground truth's label map on the label map's grid (a file, a MetaTensor or a
            ``(x, y, z)`` array in the label map's voxel order), with the same lesion values;
            its lesions are outlined dashed in white.
        max_lesions: at most this many lesion panels (the largest lesions).

    Returns:
        The PNG path.
    """
    from matplotlib.colors import to_rgba

    seg_image = _nifti(label_path)
    canonical = nib.as_closest_canonical(seg_image)
    seg = np.asanyarray(canonical.dataobj)  # a view for an in-memory map; only the slices drawn are copied
    if seg.dtype.kind not in "iub":
        seg = seg.astype(int)
    lesion_set = {int(v) for v in lesion_values}
    # every label lies in the box of the labelled voxels: the masks and components are worked out there
    labelled = (bounding_box(seg != 0) or (slice(0, 0),) * 3) if 0 not in lesion_set else tuple(map(slice, seg.shape))
    offset = np.array([b.start for b in labelled])
    inside = seg[labelled]
    masks = {v: m for v in sorted(lesion_set) if (m := inside == v).any()}  # the lesion values present
    area = np.zeros(seg.shape[2], int)
    for m in masks.values():
        area[labelled[2]] += m.sum(axis=(0, 1))
    k = int(np.argmax(area)) if area.any() else seg.shape[2] // 2
    spacing = canonical.header.get_zooms()
    aspect = spacing[1] / spacing[0]
    colours = {int(e["value"]): to_rgba(e["colour"]) for e in label_table if int(e["value"])}
    pictures = {s: to_ras(on_grid(_nifti(path), seg_image)) for s, path in images.items()}  # views, not copies
    truth_ras, truth_cast = None, False
    if truth is not None:
        if isinstance(truth, np.ndarray):  # in the label map's voxel order: on its grid, reordered as it is
            truth_ras = apply_orientation(truth, io_orientation(seg_image.affine))
        else:
            truth_ras, truth_cast = to_ras(on_grid(_nifti(truth), seg_image)), True

    def known(index: int) -> np.ndarray | None:
        """Axial slice ``index`` of the truth's lesions (radiological), or None without a truth."""
        if truth_ras is None:
            return None
        plane = radiological_slice(truth_ras, index)
        plane = plane.astype(int) if truth_cast else np.ascontiguousarray(plane)  # gathered once, compared often
        return functools.reduce(np.logical_or, (plane == v for v in lesion_set), np.zeros(plane.shape, bool))

    shifted = canonical.affine.copy()  # the box's voxels' affine
    shifted[:3, 3] += canonical.affine[:3, :3] @ offset
    found = _components(inside, shifted, lesion_set, lesions, masks)
    for c in found:
        c["box"] = tuple(slice(b.start + o, b.stop + o) for b, o in zip(c["box"], offset, strict=True))
    shown = found[: max(0, int(max_lesions))]
    columns = max(len(images), min(len(shown), 4), 1)
    lesion_rows = -(-len(shown) // columns) if shown else 0
    present = {v for v in colours if v in masks or (inside == v).any()}  # the labels the legend names (0 never)
    entries = legend_entries(label_table, present, lesion_set)
    if truth_ras is not None:
        entries.append(LegendEntry("truth (dashed, white)", to_rgba("black"), "dashed"))
    if shown:
        entries.append(LegendEntry("the panel's lesion", to_rgba("yellow"), "thick"))
    hidden = len(found) - len(shown)
    note = f"{hidden} more lesion(s) not shown (see the lesion table)" if hidden > 0 else None
    legend = _legend_rows(entries, note, round(3.2 * columns * DPI))
    width, height, boxes = _layout(columns, lesion_rows, len(legend))
    canvas = Canvas(width, height)

    label_slice = np.ascontiguousarray(radiological_slice(seg, k))  # gathered once for every panel
    truth_slice = known(k)
    for box, (sequence, volume) in zip(boxes[0], pictures.items(), strict=False):
        draw_panel(canvas, box, radiological_slice(volume, k).astype(float), label_slice, colours, lesion_set, aspect,
                   f"{sequence}  (slice {k})", mm_per_pixel=spacing[0], truth=truth_slice)  # fmt: skip
    reference = next(iter(pictures.values()), None)
    nx, ny = seg.shape[:2]
    for n, lesion in enumerate(shown if reference is not None else ()):
        x, y, z = lesion["box"]
        slice_k = z.start + int(np.argmax(lesion["mask"].sum(axis=(0, 1))))
        # the lesion's box with a margin, at least 40 mm across; in the radiological picture rows are y
        # reversed (anterior at the top) and columns x reversed (the patient's right on the left)
        half = max(20.0, 0.75 * max((x.stop - x.start) * spacing[0], (y.stop - y.start) * spacing[1]))
        cx, cy = (x.start + x.stop) / 2, (y.start + y.stop) / 2
        wx, wy = min(nx, int(np.ceil(2 * half / spacing[0]))), min(ny, int(np.ceil(2 * half / spacing[1])))
        x0, y0 = int(np.clip(round(cx - wx / 2), 0, nx - wx)), int(np.clip(round(cy - wy / 2), 0, ny - wy))
        x1, y1 = x0 + wx, y0 + wy  # the window moved inside the image near its edge, not cut
        rows, cols = slice(ny - y1, ny - y0), slice(nx - x1, nx - x0)
        labels_here = radiological_slice(seg, slice_k)[rows, cols]
        name = lesion.get("name") or next((e["name"] for e in label_table if int(e["value"]) == lesion["value"]), "")
        picture = radiological_slice(reference, slice_k)[rows, cols].astype(float)
        plane = np.zeros((nx, ny), bool)  # the lesion's voxels at its slice, as radiological_slice shows them
        plane[x, y] = lesion["mask"][:, :, slice_k - z.start]
        truth_here = known(slice_k)
        draw_panel(canvas, boxes[1 + n // columns][n % columns], picture, labels_here, colours, lesion_set, aspect,
                   f"lesion {lesion['id']}: {name}, {lesion['volume_ml']:.1f} ml (slice {slice_k})",
                   mm_per_pixel=spacing[0], focus=plane[::-1, ::-1].T[rows, cols],
                   truth=truth_here[rows, cols] if truth_here is not None else None)  # fmt: skip
    canvas.text(width / 2, 0.08 * DPI, title, points=11, bold=True, anchor="ma", width=width - 8)
    _draw_legend(canvas, legend)
    return canvas.save(out)


def montage(panels: Sequence[Sequence[Callable[[Canvas, Box], object] | None]], out: os.PathLike | str) -> Path:
    """Write a PNG grid of panels of 3.2 inches at :data:`DPI`, a title's room above each.

    Args:
        panels: ``panels[row][column]``: a function drawing the panel in its box (``draw_panel``
            with its slices), or None for an empty place.
        out: the PNG to write (atomically).

    Returns:
        The PNG path.
    """
    rows, columns = max(len(panels), 1), max((len(row) for row in panels), default=1) or 1
    width, height, boxes = _grid(3.2 * columns, 3.2 * rows + 0.12, rows, columns, top=0.06, bottom=0.06, gap=0.32,
                                 side=0.06, between=0.08)  # fmt: skip
    canvas = Canvas(width, height)
    for row, row_boxes in zip(panels, boxes, strict=False):
        for draw, box in zip(row, row_boxes, strict=False):
            if draw is not None:
                draw(canvas, box)
    return canvas.save(out)
