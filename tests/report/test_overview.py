"""The overview PNG: radiological orientation whatever the file's voxel order, legend, labels present."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from matplotlib.image import imread

from mednet.report.canvas import Box, Canvas, place, png_bytes
from mednet.report.overview import (
    _components,
    _layout,
    draw_panel,
    legend_entries,
    radiological_slice,
    scale_bar_length,
    to_ras,
    write_overview,
)

TABLE = [{"value": 0, "name": "background", "colour": "#000000"}, {"value": 1, "name": "liver", "colour": "#1f77b4"},
         {"value": 12, "name": "primary_tumour", "colour": "#ff7f0e"}]  # fmt: skip


def _scene(orientation: str):
    """A 40 x 30 x 10 RAS scene (bright block at the patient's right-anterior), stored in ``orientation``."""
    image = np.full((40, 30, 10), 10.0)
    labels = np.zeros((40, 30, 10), np.uint8)
    image[30:38, 20:28, 3:6] = 100.0  # x high = right, y high = anterior
    labels[30:38, 20:28, 3:6] = 12
    labels[2:12, 2:10, :] = 1  # left-posterior organ
    affine = np.diag([2.0, 2.0, 4.0, 1.0])
    if orientation == "LPS":  # flip x and y: same world, voxels stored the other way round
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        flip[:2, 3] = [39, 29]
        affine = affine @ flip
        image, labels = image[::-1, ::-1], labels[::-1, ::-1]
    return nib.Nifti1Image(np.ascontiguousarray(image), affine), nib.Nifti1Image(np.ascontiguousarray(labels), affine)


@pytest.mark.parametrize("orientation", ["RAS", "LPS"])
def test_radiological_slice_puts_right_anterior_top_left(orientation):
    image, _ = _scene(orientation)
    picture = radiological_slice(to_ras(image), 4)
    assert picture.shape == (30, 40)  # rows anterior -> posterior, columns right -> left
    rows, cols = np.nonzero(picture > 50)
    assert rows.max() < 15 and cols.max() < 20  # top-left quadrant: anterior, patient's right


@pytest.mark.parametrize("orientation", ["RAS", "LPS"])
def test_write_overview(tmp_path, orientation):
    image, labels = _scene(orientation)
    nib.save(image, tmp_path / "t2w.nii.gz")
    nib.save(image, tmp_path / "t1c.nii.gz")
    nib.save(labels, tmp_path / "labels.nii.gz")
    out = write_overview({"t2w": tmp_path / "t2w.nii.gz", "t1c": tmp_path / "t1c.nii.gz"}, tmp_path / "labels.nii.gz",
                         TABLE, [12], "NB_1: L1 (p 0.80)", tmp_path / "png" / "overview.png")  # fmt: skip
    pixels = imread(out)
    assert pixels.shape[:2] == (639, 576) and pixels[..., :3].std() > 0.05  # the sequences' row and the lesion's
    assert not list(out.parent.glob(".*tmp*"))
    handles = legend_entries(TABLE, {0, 1, 12}, {12})
    assert [(h.label, h.mark) for h in handles] == [("liver", "patch"), ("primary_tumour (outline)", "line")]
    assert legend_entries(TABLE, {0}, {12}) == []


def _blobs(centres, shape=(80, 80, 12)):
    """Bright cubes of lesion 12 at ``(x, y, z, half-width)``, 1 x 1 x 3 mm voxels; image, labels and lesion table."""
    image, labels = np.full(shape, 10.0), np.zeros(shape, np.uint8)
    rows = []
    for x, y, z, h in centres:
        image[x - h : x + h, y - h : y + h, z - 1 : z + 2] = 100.0
        labels[x - h : x + h, y - h : y + h, z - 1 : z + 2] = 12
        rows.append({"label": 12, "class_name": "primary_tumour", "volume_ml": (2 * h) ** 2 * 3 * 3 / 1000,
                     "centroid_x_mm": x - 0.5, "centroid_y_mm": y - 0.5, "centroid_z_mm": 3.0 * z})  # fmt: skip
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    return nib.Nifti1Image(image, affine), nib.Nifti1Image(labels, affine), rows


def test_every_lesion_gets_a_panel_numbered_as_in_the_lesion_table(tmp_path):
    image, labels, rows = _blobs([(20, 20, 3, 3), (60, 60, 8, 6), (20, 60, 5, 2)])
    for i, row in zip([7, 5, 9], rows, strict=True):  # ids the table gave, not in order of size
        row["lesion_id"] = i
    seg = to_ras(labels).astype(int)
    found = _components(seg, nib.as_closest_canonical(labels).affine, {12}, rows)
    assert [(c["id"], c["voxels"]) for c in found] == [(5, 432), (7, 108), (9, 48)]  # largest first, the table's ids
    sizes = {}
    for n in (0, 3, 10):
        centres = [(8 + 7 * (i % 10), 10 + 30 * (i // 10), 5, 2) for i in range(n)]
        image, labels, rows = _blobs(centres)
        path = write_overview({"t2w": image, "t1c": image}, labels, TABLE, [12], "t", tmp_path / f"{n}.png",
                              lesions=rows)  # fmt: skip
        sizes[n] = imread(path).shape[:2]
    # one row for the sequences; then a panel per lesion, up to 8 (4 per row), at 90 dpi and 3.2 inches a panel
    assert sizes == {0: (351, 576), 3: (639, 864), 10: (927, 1152)}


def test_the_truth_is_outlined_and_panels_have_a_scale_bar(tmp_path):
    image, labels, rows = _blobs([(40, 40, 6, 8)])
    truth = np.roll(np.asarray(labels.dataobj), 5, axis=0).astype(np.int64)  # the truth 5 mm off, as map_labels gives
    common = ({"t2w": image}, labels, TABLE, [12], "t")
    plain = imread(write_overview(*common, tmp_path / "plain.png", lesions=rows))
    outlined = imread(write_overview(*common, tmp_path / "truth.png", lesions=rows, truth=truth))
    # the truth's legend entry may add a legend row at the bottom: the panels stay where they are
    assert outlined.shape[1] == plain.shape[1] and outlined.shape[0] - plain.shape[0] in (0, 18)
    rows = plain.shape[0] - round(0.5 * 90)  # the panels, above the legend
    changed = np.abs(outlined[:rows, :, :3] - plain[:rows, :, :3]).max(axis=2) > 0.3
    assert changed.sum() > 100  # the dashed outline
    before, after = plain[:rows, :, :3][changed], outlined[:rows, :, :3][changed]
    assert (after.mean(axis=1) > before.mean(axis=1)).mean() > 0.95  # white drawn over the dark background
    assert scale_bar_length(1.0, 240) == 50.0 and scale_bar_length(4.0, 60) == 50.0
    assert scale_bar_length(0.5, 80) == 10.0
    canvas = Canvas(240, 240)  # a 240-pixel slice drawn at one canvas pixel a voxel: the bar is 50 pixels
    empty = np.zeros((240, 240))
    draw_panel(canvas, Box(0, 0, 240, 240), empty, empty.astype(int), {}, set(), 1.0, "t", mm_per_pixel=1.0)
    bar = (canvas.pixels == 255).all(axis=2)  # the texts are drawn when saved: white here is the bar only
    assert bar.sum(axis=1).max() == 50 and bar.any(axis=1).sum() == 3  # 50 pixels long, 3 thick


def test_what_is_drawn_matches_a_whole_volume_reference(tmp_path, monkeypatch):
    """Slices, pictures, label maps, lesion outlines, truth outlines and legend as computed on whole volumes."""
    from matplotlib.colors import to_rgba
    from scipy import ndimage

    from mednet.report import overview

    rng = np.random.default_rng(0)
    shape = (60, 50, 14)
    image = rng.random(shape) * 100 + 1  # every voxel its own value: a panel's window is found by its corner
    seg = np.zeros(shape, np.uint8)
    seg[2:12, 2:10, :] = 1  # an organ (tinted, in the legend)
    seg[30:40, 20:30, 6:9] = 12  # the largest lesion, and the largest lesion area at slices 6..8
    seg[10:13, 35:38, 2:4] = 12
    seg[13:15, 38:40, 4:5] = 12  # touching the one before at a corner only: one lesion (26-connected)
    seg[45:55, 5:9, 10:13] = 13  # another lesion value
    seg[44:56, 4:10, 11] = 13  # ... widest at slice 11
    seg[50:52, 40:42, 1] = 13  # small, beyond max_lesions=3
    affine = np.diag([1.0, 1.2, 3.0, 1.0])
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])  # stored LPS: the drawing must undo it
    flip[:2, 3] = [shape[0] - 1, shape[1] - 1]
    stored = (image[::-1, ::-1].copy(), seg[::-1, ::-1].copy())
    picture_image = nib.Nifti1Image(stored[0], affine @ flip)
    labels = nib.Nifti1Image(stored[1], affine @ flip)
    truth = np.roll(stored[1], 2, axis=0).astype(np.int64)  # in the label map's voxel order
    table = [*TABLE, {"value": 13, "name": "metastasis", "colour": "#00ff00"}]

    panels, contours, legends = [], [], []
    draw, outline, entries = overview.draw_panel, overview.draw_outline, overview.legend_entries
    white, yellow = to_rgba("white"), to_rgba("yellow")

    def record_panel(canvas, box, picture, labels, *args, **kwargs):
        panels.append((len(panels), np.array(picture), np.array(labels), args[-1]))
        return draw(canvas, box, picture, labels, *args, **kwargs)

    def record_outline(canvas, where, mask, colour, **kwargs):  # what each panel outlines (the panel drawing)
        contours.append((len(panels) - 1, np.array(mask), tuple(colour)))
        return outline(canvas, where, mask, colour, **kwargs)

    def record_legend(label_table, present, lesions):
        legends.append(set(present))
        return entries(label_table, present, lesions)

    monkeypatch.setattr(overview, "draw_panel", record_panel)
    monkeypatch.setattr(overview, "draw_outline", record_outline)
    monkeypatch.setattr(overview, "legend_entries", record_legend)
    overview.write_overview({"t2w": picture_image, "t1c": picture_image}, labels, table, [12, 13], "t",
                            tmp_path / "o.png", truth=truth, max_lesions=3)  # fmt: skip

    # the reference, straightforwardly on whole RAS volumes
    ras_image, ras_seg = to_ras(picture_image).astype(float), to_ras(labels).astype(int)
    ras_truth = np.isin(to_ras(nib.Nifti1Image(truth.astype(np.int16), labels.affine)), [12, 13])
    k = int(np.argmax(np.isin(ras_seg, [12, 13]).sum(axis=(0, 1))))
    assert k == 6
    lesions = []
    for value in (12, 13):
        parts, count = ndimage.label(ras_seg == value, structure=np.ones((3, 3, 3)))
        for part in range(1, count + 1):
            mask = parts == part
            lesions.append((int(mask.sum()), int(np.argmax(mask.sum(axis=(0, 1)))), mask))
    lesions.sort(key=lambda lesion: -lesion[0])
    assert [size for size, _, _ in lesions] == [300, 152, 22, 4]

    assert len(panels) == 2 + 3
    for ax, picture, labels_drawn, title in panels[:2]:
        assert title.endswith(f"(slice {k})")
        np.testing.assert_array_equal(picture, radiological_slice(ras_image, k))
        np.testing.assert_array_equal(labels_drawn, radiological_slice(ras_seg, k))
        truth_drawn = [z for a, z, colour in contours if a == ax and colour == white]
        assert len(truth_drawn) == 1
        np.testing.assert_array_equal(truth_drawn[0], radiological_slice(ras_truth, k))
    for (ax, picture, labels_drawn, title), (_, slice_k, mask) in zip(panels[2:], lesions, strict=False):
        assert title.endswith(f"(slice {slice_k})")
        whole = radiological_slice(ras_image, slice_k)
        ((r0, c0),) = np.argwhere(whole == picture[0, 0])
        window = (slice(r0, r0 + picture.shape[0]), slice(c0, c0 + picture.shape[1]))
        np.testing.assert_array_equal(picture, whole[window])
        np.testing.assert_array_equal(labels_drawn, radiological_slice(ras_seg, slice_k)[window])
        focus = [z for a, z, colour in contours if a == ax and colour == yellow]
        assert len(focus) == 1
        np.testing.assert_array_equal(focus[0], radiological_slice(mask, slice_k)[window])
        truth_drawn = [z for a, z, colour in contours if a == ax and colour == white]
        expected = radiological_slice(ras_truth, slice_k)[window]
        assert len(truth_drawn) == int(expected.any())
        if truth_drawn:
            np.testing.assert_array_equal(truth_drawn[0], expected)
        lesions_drawn = {colour: z for a, z, colour in contours if a == ax and colour not in (white, yellow)}
        for value in (12, 13):  # each lesion value in the window outlined in its colour
            outlined = radiological_slice(ras_seg, slice_k)[window] == value
            colour = to_rgba(next(e["colour"] for e in table if e["value"] == value))
            assert (colour in lesions_drawn) == outlined.any()
            if outlined.any():
                np.testing.assert_array_equal(lesions_drawn[colour], outlined)
    assert [present - {0} for present in legends] == [{1, 12, 13}]  # the legend names what is there (0 never)


def test_a_lesion_is_outlined_in_its_colour_around_it(tmp_path):
    """A bright square lesion on a flat image: its colour on the square's edge all round, not away from it."""
    image, labels = np.full((40, 40, 6), 10.0), np.zeros((40, 40, 6), np.uint8)
    image[10:18, 24:32, 2:4] = 100.0  # x low: the patient's left (the picture's right); y high: anterior (its top)
    labels[10:18, 24:32, 2:4] = 12
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    out = write_overview({"t2w": nib.Nifti1Image(image, affine)}, nib.Nifti1Image(labels, affine), TABLE, [12], "t",
                         tmp_path / "o.png")  # fmt: skip
    pixels = np.asarray(imread(out)[..., :3] * 255).round().astype(int)
    box = _layout(1, 1, 1)[2][0][0]  # the first panel's box, and its 40 x 40 slice's pixels in it
    where = place(box, (40, 40), 1.0)
    assert abs(where.height - 257) <= 1 and abs(where.width - 257) <= 1  # 2.86 inches at 90 dpi
    panel = pixels[where.region()]
    orange = np.abs(panel - [255, 127, 14]).max(axis=2) <= 2  # the lesion's colour, #ff7f0e
    bright = (panel > 240).all(axis=2)  # the square: white (the window's top)
    rows, cols = np.nonzero(bright)
    rows, cols = rows[(rows > 40) & (cols > 40)], cols[(rows > 40) & (cols > 40)]  # not the scale bar nor its text
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    assert 40 < bottom - top < 60 and 40 < right - left < 60  # 8 mm at 6 to 7 pixels a mm
    assert bottom < where.height / 2 and left > where.width / 2  # anterior at the top, the patient's left on the right
    orange_rows, orange_cols = np.nonzero(orange)
    assert orange.sum() > 4 * 40  # all the way round
    near = 3  # pixels: the outline lies on the square's edge, within it and around it
    assert orange_rows.min() >= top - near and orange_rows.max() <= bottom + near
    assert orange_cols.min() >= left - near and orange_cols.max() <= right + near
    inner = orange[top + near : bottom - near, left + near : right - near]
    assert not inner.any()  # an outline, not a filling
    for edge in (orange[top - near : top + near + 1], orange[bottom - near : bottom + near + 1],
                 orange[:, left - near : left + near + 1], orange[:, right - near : right + near + 1]):  # fmt: skip
        assert edge.sum() > 30  # every side outlined


def test_png_bytes_are_the_pixels():
    import io

    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    decoded = Image.open(io.BytesIO(png_bytes(pixels)))
    assert decoded.mode == "RGB" and decoded.info["dpi"] == pytest.approx((90, 90), abs=0.01)
    np.testing.assert_array_equal(np.asarray(decoded), pixels)
