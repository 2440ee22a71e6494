"""A case's overview PNG: each sequence at the slice of largest lesion area, lesion outlined.

Radiological convention (the patient's right on the left, anterior at the top, marked
R / L / A / P), organs lightly tinted in their label-table colours, lesions outlined, a
legend of the labels shown, the diagnosis in the title. :func:`draw_panel` is shared with
the synthetic cohort's preview montage.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from mednet.io.atomic import atomic_path

__all__ = ["draw_panel", "legend_entries", "radiological_slice", "to_ras", "write_overview"]


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
    """A file (loaded lazily) or a ``(1, x, y, z)`` MetaTensor as an in-memory NIfTI image."""
    if isinstance(image, os.PathLike | str):
        return nib.load(str(image))
    return nib.Nifti1Image(np.asarray(image[0].detach().cpu().numpy()), np.asarray(image.affine, dtype=float))


def write_overview(
    images: Mapping[str, object],
    label_path: object,
    label_table: Sequence[Mapping],
    lesion_values: Sequence[int],
    title: str,
    out: os.PathLike | str,
) -> Path:
    """Write a case's overview PNG (one panel per sequence).

    Args:
        images: sequence -> image file or ``(1, x, y, z)`` MetaTensor (each resampled onto the
            label map's grid when on another).
        label_path: the label map (on the reference sequence's grid): a file or a MetaTensor.
        label_table: ``[{"value", "name", "colour"}, ...]``.
        lesion_values: the label values outlined as lesions.
        title: the figure's title (case and diagnosis).
        out: the PNG to write (atomically).

    Returns:
        The PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    seg_image = _nifti(label_path)
    seg = to_ras(seg_image).astype(int)
    lesions = {int(v) for v in lesion_values}
    area = np.isin(seg, list(lesions)).sum(axis=(0, 1))
    k = int(np.argmax(area)) if area.any() else seg.shape[2] // 2
    label_slice = radiological_slice(seg, k)
    spacing = nib.as_closest_canonical(seg_image).header.get_zooms()
    colours = {int(e["value"]): to_rgba(e["colour"]) for e in label_table if int(e["value"])}
    fig, axes = plt.subplots(1, len(images), figsize=(3.4 * len(images), 4.4), squeeze=False)
    for ax, (sequence, path) in zip(axes[0], images.items(), strict=True):
        picture = radiological_slice(to_ras(on_grid(_nifti(path), seg_image)).astype(float), k)
        draw_panel(ax, picture, label_slice, colours, lesions, spacing[1] / spacing[0], f"{sequence}  (slice {k})")
    fig.suptitle(title, fontsize=11, fontweight="bold")
    handles = legend_entries(label_table, {int(v) for v in np.unique(label_slice)}, lesions)
    columns = max(1, min(len(handles), 2 * len(images)))
    rows = -(-len(handles) // columns)
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=columns, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.035 * rows + 0.01 if handles else 0, 1, 1))
    with atomic_path(out, suffix=".png", parents=True) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return Path(out)
