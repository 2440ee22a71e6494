"""The overview PNG: radiological orientation whatever the file's voxel order, legend, labels present."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from matplotlib.image import imread

from mednet.report.overview import legend_entries, radiological_slice, to_ras, write_overview

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
    assert pixels.shape[1] > pixels.shape[0] and pixels[..., :3].std() > 0.05
    assert not list(out.parent.glob(".*tmp*"))
    handles = legend_entries(TABLE, {0, 1, 12}, {12})
    assert [h.get_label() for h in handles] == ["liver", "primary_tumour (outline)"]
    assert legend_entries(TABLE, {0}, {12}) == []
