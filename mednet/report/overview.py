"""A case's overview PNG: every sequence at the slice of largest lesion area, then every lesion at its own.

Radiological convention (the patient's right on the left, anterior at the top, marked
R / L / A / P), organs lightly tinted in their label-table colours, lesions outlined, the
ground truth's lesions outlined dashed in white when the case came with them, a scale bar
in millimetres on every panel, a legend of the labels shown, the diagnosis in the title.
The first row shows each sequence at the slice where the lesions are largest; the rows
below show each lesion (up to :data:`MAX_LESION_PANELS`, largest first, numbered as in the
lesion table) zoomed at its own largest slice. :func:`draw_panel` is shared with the
synthetic cohort's preview montage.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, io_orientation

from mednet.io.atomic import atomic_path
from mednet.io.grid import bounding_box

__all__ = ["MAX_LESION_PANELS", "draw_panel", "legend_entries", "radiological_slice", "scale_bar", "to_ras",
           "write_overview"]

#: At most this many lesions get a panel of their own (the largest; the figure says how many more).
MAX_LESION_PANELS = 8


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


def draw_panel(ax, picture: np.ndarray, labels: np.ndarray, colours: Mapping[int, tuple], lesions: set[int],
               aspect: float, title: str) -> None:  # fmt: skip
    """One panel: a grey slice, organs tinted, lesions outlined.

    Args:
        ax: a matplotlib axis.
        picture: ``(rows, cols)`` image slice.
        labels: ``(rows, cols)`` integer labels of the same slice.
        colours: label value -> RGBA colour.
        lesions: the lesion label values (outlined; the others are tinted).
        aspect: pixel aspect ratio (row spacing / column spacing).
        title: the panel's title.
    """
    top = np.percentile(picture, 99.5) if picture.size else 1.0
    ax.imshow(picture, cmap="gray", vmin=0, vmax=top if top > 0 else 1.0, aspect=aspect)
    tint = np.zeros((*labels.shape, 4))
    for value, colour in colours.items():
        if value not in lesions:
            tint[labels == value] = (*colour[:3], 0.22)
    ax.imshow(tint, aspect=aspect)
    for value in sorted(lesions & {int(v) for v in np.unique(labels)}):
        ax.contour(labels == value, levels=[0.5], colors=[colours[value]], linewidths=1.2)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    marks = {"R": (0.01, 0.5, "left", "center"), "L": (0.99, 0.5, "right", "center"),
             "A": (0.5, 0.99, "center", "top"), "P": (0.5, 0.01, "center", "bottom")}  # fmt: skip
    for letter, (x, y, ha, va) in marks.items():  # radiological convention, spelled out
        ax.text(x, y, letter, transform=ax.transAxes, ha=ha, va=va, fontsize=8, color="yellow", fontweight="bold")


def legend_entries(label_table: Sequence[Mapping], present: set[int], lesions: set[int]) -> list:
    """Matplotlib legend handles for the labels ``present``: tinted patches, outlined lesions."""
    from matplotlib.colors import to_rgba
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = []
    for entry in label_table:
        value = int(entry["value"])
        if value and value in present:
            colour = to_rgba(entry["colour"])
            if value in lesions:
                handles.append(Line2D([], [], color=colour, linewidth=1.5, label=f"{entry['name']} (outline)"))
            else:
                handles.append(Patch(facecolor=(*colour[:3], 0.5), edgecolor="none", label=entry["name"]))
    return handles


def _nifti(image) -> nib.Nifti1Image:
    """A file (loaded lazily), a nibabel image or a ``(1, x, y, z)`` MetaTensor as an in-memory NIfTI image."""
    if isinstance(image, nib.spatialimages.SpatialImage):
        return image
    if isinstance(image, os.PathLike | str):
        return nib.load(str(image))
    return nib.Nifti1Image(np.asarray(image[0].detach().cpu().numpy()), np.asarray(image.affine, dtype=float))


def scale_bar(ax, mm_per_pixel: float, width_pixels: int) -> float:
    """A white scale bar (10, 20, 50 or 100 mm..., about a quarter of the panel) at the panel's bottom left; its mm."""
    span = width_pixels * mm_per_pixel / 4
    length = next((v for v in (1, 2, 5, 10, 20, 50, 100, 200, 500) if v >= span * 0.6), 1000)
    pixels = length / mm_per_pixel
    x0, y0 = 0.04 * width_pixels, 0.9
    ax.plot([x0, x0 + pixels], [y0, y0], transform=ax.get_xaxis_transform(), color="white", linewidth=2.5,
            solid_capstyle="butt")  # fmt: skip
    ax.text(x0 + pixels / 2, 0.92, f"{length:g} mm", transform=ax.get_xaxis_transform(), color="white",
            fontsize=7, ha="center", va="bottom")  # fmt: skip
    return float(length)


def _layout(columns: int, lesion_rows: int, legend_rows: int) -> tuple[float, float, dict[str, float]]:
    """The overview's size in inches and its panels' grid (fractions of it), from fixed margins.

    Panels of 3.2 inches a side; room for the title at the top, each panel's title above it,
    and the legend's rows at the bottom (the figure grows by a row's height for each row past
    the first, so panels keep their size and place). Worked out, not measured: ``tight_layout`` measures
    every text for it (a sixth of the figure's time) and leaves a layout engine that makes
    ``savefig`` draw everything twice.

    Returns:
        ``(width, height, gridspec_kw)``.
    """
    legend = 0.2 * max(legend_rows, 1)  # a row of 18 pixels at 90 dpi: a row more moves no panel by a fraction
    width, height = 3.2 * columns, 3.9 + 3.2 * lesion_rows + legend - 0.2
    rows = 1 + lesion_rows
    top, bottom = 0.42, 0.12 + legend  # the title; the legend
    gap, side, between = 0.32, 0.06, 0.08  # a panel's title; the sides; between panels
    panel_h = (height - top - bottom - gap - (rows - 1) * gap) / rows
    panel_w = (width - 2 * side - (columns - 1) * between) / columns
    return width, height, {"left": side / width, "right": 1 - side / width, "top": 1 - (top + gap) / height,
                           "bottom": bottom / height, "hspace": gap / panel_h, "wspace": between / panel_w}  # fmt: skip


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
    from matplotlib.figure import Figure  # no pyplot: no global figure registry, safe in a writer thread
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullLocator

    seg_image = _nifti(label_path)
    canonical = nib.as_closest_canonical(seg_image)
    seg = np.asanyarray(canonical.dataobj)  # a view for an in-memory map; only the slices drawn are copied
    if seg.dtype.kind not in "iub":
        seg = seg.astype(int)
    lesion_set = {int(v) for v in lesion_values}
    masks = {v: m for v in sorted(lesion_set) if (m := seg == v).any()}  # the lesion values present
    area = sum(m.sum(axis=(0, 1)) for m in masks.values()) if masks else np.zeros(seg.shape[2], int)
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
        return np.isin(plane.astype(int) if truth_cast else plane, list(lesion_set))

    found = _components(seg, canonical.affine, lesion_set, lesions, masks)
    shown = found[: max(0, int(max_lesions))]
    columns = max(len(images), min(len(shown), 4))
    lesion_rows = -(-len(shown) // columns) if shown else 0
    present = {v for v in colours if v in masks or (seg == v).any()}  # the labels the legend names (0 never)
    handles = legend_entries(label_table, present, lesion_set)
    if truth_ras is not None:
        handles.append(Line2D([], [], color="black", linestyle="dashed", linewidth=1.0, label="truth (dashed, white)"))
    if shown:
        handles.append(Line2D([], [], color="yellow", linewidth=2.0, label="the panel's lesion"))
    ncol = max(1, min(len(handles), 2 * columns))
    legend_rows = -(-len(handles) // ncol)
    width, height, grid = _layout(columns, lesion_rows, legend_rows)
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(1 + lesion_rows, columns, squeeze=False, gridspec_kw=grid)
    for ax in axes.flat:
        ax.axis("off")
        # no ticks to work out: the axes are off, but the layout and the titles' placement would compute them
        ax.xaxis.set_major_locator(NullLocator())
        ax.yaxis.set_major_locator(NullLocator())

    def outline_truth(ax, truth_slice: np.ndarray) -> None:
        if truth_slice is not None and truth_slice.any():
            ax.contour(truth_slice, levels=[0.5], colors=["white"], linewidths=1.0, linestyles="dashed")

    label_slice = radiological_slice(seg, k)
    truth_slice = known(k)
    for ax, (sequence, volume) in zip(axes[0], pictures.items(), strict=False):
        draw_panel(ax, radiological_slice(volume, k).astype(float), label_slice, colours, lesion_set, aspect,
                   f"{sequence}  (slice {k})")  # fmt: skip
        outline_truth(ax, truth_slice)
        scale_bar(ax, spacing[0], label_slice.shape[1])
    reference = next(iter(pictures.values()))
    nx, ny = seg.shape[:2]
    for n, lesion in enumerate(shown):
        ax = axes[1 + n // columns, n % columns]
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
        draw_panel(ax, picture, labels_here, colours, lesion_set, aspect,
                   f"lesion {lesion['id']}: {name}, {lesion['volume_ml']:.1f} ml (slice {slice_k})")  # fmt: skip
        plane = np.zeros((nx, ny), bool)  # the lesion's voxels at its slice, as radiological_slice shows them
        plane[x, y] = lesion["mask"][:, :, slice_k - z.start]
        this = plane[::-1, ::-1].T[rows, cols]
        if this.any():  # the lesion the panel is about, thicker
            ax.contour(this, levels=[0.5], colors=["yellow"], linewidths=2.0)
        truth_here = known(slice_k)
        outline_truth(ax, truth_here[rows, cols] if truth_here is not None else None)
        scale_bar(ax, spacing[0], labels_here.shape[1])
    if len(found) > len(shown):
        fig.text(0.99, 0.005, f"{len(found) - len(shown)} more lesion(s) not shown (see the lesion table)",
                 ha="right", va="bottom", fontsize=8, color="#b00020")  # fmt: skip
    fig.suptitle(title, fontsize=11, fontweight="bold", y=1 - 0.08 / height)  # a fixed distance from the top
    if handles:
        fig.legend(handles=handles, loc="lower left", ncol=ncol, fontsize=7, frameon=False)
    with atomic_path(out, suffix=".png", parents=True) as tmp:
        fig.savefig(tmp, dpi=90, pil_kwargs={"compress_level": 3})  # the same pixels and size as 6, faster
    return Path(out)
