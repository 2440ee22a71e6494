"""Lesion table and organ clean-up on hand-made volumes with known answers."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mednet.localisation import clean_organs, find_lesions, largest_diameter_mm, write_lesion_table

LESION = {5: "tumour"}


def box(labels, low, high, value):
    labels[tuple(slice(a, b) for a, b in zip(low, high, strict=True))] = value


def test_two_lesions_measured_in_world_mm():
    labels = np.zeros((20, 20, 10), np.uint8)
    box(labels, (2, 2, 2), (6, 5, 4), 5)  # 4 x 3 x 2 = 24 voxels
    box(labels, (12, 12, 5), (14, 14, 6), 5)  # 2 x 2 x 1 = 4 voxels
    affine = np.diag([2.0, 2.0, 5.0, 1.0])
    affine[:3, 3] = [-10.0, 20.0, 100.0]
    table = find_lesions(labels, affine, LESION)
    assert [t["lesion_id"] for t in table] == [1, 2]
    big, small = table
    assert (big["voxels"], small["voxels"]) == (24, 4)
    assert big["volume_ml"] == pytest.approx(24 * 20 / 1000)
    # centroid of voxels 2..5, 2..4, 2..3 -> index (3.5, 3, 2.5) -> world
    assert (big["centroid_x_mm"], big["centroid_y_mm"], big["centroid_z_mm"]) == (-3.0, 26.0, 112.5)
    assert big["bbox_min_voxel"] == [2, 2, 2] and big["bbox_max_voxel"] == [5, 4, 3]
    assert big["bbox_min_mm"] == [-7.0, 23.0, 107.5] and big["bbox_max_mm"] == [1.0, 29.0, 117.5]
    # farthest voxel centres: (2,2,2) to (5,4,3): (6, 4, 5) mm
    assert big["largest_diameter_mm"] == pytest.approx(np.sqrt(36 + 16 + 25), abs=0.01)
    assert big["mean_probability"] is None and big["host_organ"] is None and big["compartment"] == "other"


def test_touching_lesions_are_one_component_and_classes_stay_apart():
    labels = np.zeros((20, 20, 10), np.uint8)
    box(labels, (2, 2, 2), (6, 6, 6), 5)
    box(labels, (6, 6, 6), (9, 9, 9), 5)  # touches the first at one corner: 26-connected
    box(labels, (10, 2, 2), (12, 4, 4), 6)  # another class
    table = find_lesions(labels, np.eye(4), {5: "primary", 6: "metastasis"})
    assert [(t["class_name"], t["voxels"]) for t in table] == [("primary", 64 + 27), ("metastasis", 8)]


def test_lesion_on_an_organ_boundary_gets_the_most_overlapped_host():
    labels = np.zeros((30, 20, 10), np.uint8)
    box(labels, (0, 0, 0), (15, 20, 10), 1)  # kidney: x < 15
    box(labels, (15, 0, 0), (30, 20, 10), 2)  # adrenal: x >= 15
    box(labels, (12, 8, 4), (15, 11, 7), 5)  # lesion inside the kidney, touching the adrenal on one face
    organs = {1: "kidney_left", 2: "adrenal_left"}
    table = find_lesions(
        labels,
        np.eye(4),
        LESION,
        organs=organs,
        compartments={"adrenal_left": "adrenal", "kidney_left": "retroperitoneum"},
    )
    assert table[0]["host_organ"] == "kidney_left" and table[0]["compartment"] == "retroperitoneum"
    assert table[0]["host_distance_mm"] == 0.0
    # with adrenal ranked first, touching the adrenal decides the compartment, the host stays the kidney
    table = find_lesions(
        labels,
        np.eye(4),
        LESION,
        organs=organs,
        compartments={"adrenal_left": "adrenal", "kidney_left": "retroperitoneum"},
        compartment_priority=["adrenal", "retroperitoneum"],
    )
    assert table[0]["host_organ"] == "kidney_left" and table[0]["compartment"] == "adrenal"


def test_suprarenal_mass_is_adrenal_even_without_an_adrenal_label():
    labels = np.zeros((20, 20, 30), np.uint8)
    box(labels, (5, 5, 0), (15, 15, 12), 1)  # kidney up to z = 11
    box(labels, (6, 6, 12), (14, 14, 20), 5)  # mass sitting on the kidney's upper pole
    box(labels, (6, 6, 2), (9, 9, 5), 5)  # a mass touching the kidney low down (not above it)
    organs = {1: "kidney_left"}
    kwargs = {"organs": organs, "compartments": {"kidney_left": "retroperitoneum"}}
    table = find_lesions(labels, np.eye(4), LESION, above_organs={"kidney_left": "adrenal"}, **kwargs)
    assert [t["compartment"] for t in table] == ["adrenal", "retroperitoneum"]
    assert [t["compartment"] for t in find_lesions(labels, np.eye(4), LESION, **kwargs)] == ["retroperitoneum"] * 2


def test_nearest_organ_within_reach_on_anisotropic_grid():
    labels = np.zeros((20, 20, 20), np.uint8)
    box(labels, (0, 0, 0), (20, 20, 2), 3)  # liver: slices 0-1
    box(labels, (8, 8, 5), (10, 10, 6), 5)  # lesion at slice 5: voxel centres 4 slices of 4 mm = 16 mm from the liver
    affine = np.diag([0.8, 0.8, 4.0, 1.0])
    assert find_lesions(labels, affine, LESION, organs={3: "liver"})[0]["host_organ"] is None  # beyond 10 mm
    table = find_lesions(labels, affine, LESION, organs={3: "liver"}, host_distance_mm=20)
    assert table[0]["host_organ"] == "liver" and table[0]["host_distance_mm"] == pytest.approx(16.0)
    # diameter on an anisotropic grid: (8,8,5)-(9,9,5) -> sqrt(0.8^2 + 0.8^2)
    assert table[0]["largest_diameter_mm"] == pytest.approx(0.8 * np.sqrt(2), abs=0.01)


def test_thorax_compartment_and_min_volume_and_probability():
    labels = np.zeros((20, 20, 20), np.uint8)
    box(labels, (0, 0, 12), (20, 20, 20), 10)  # lungs from slice 12 up
    box(labels, (5, 5, 15), (8, 8, 18), 5)  # lesion among the lungs -> thorax
    box(labels, (5, 5, 3), (8, 8, 6), 5)  # lesion below the lung bases
    labels[15, 15, 5] = 5  # a 1-voxel speck
    probability = np.where(labels == 5, 0.8, 0.1)
    table = find_lesions(
        labels,
        np.eye(4),
        LESION,
        organs={10: "lungs"},
        thorax_organs=["lungs"],
        probability=probability,
        min_volume_mm3=2.0,
    )
    assert len(table) == 2
    assert sorted(t["compartment"] for t in table) == ["other", "thorax"]
    assert all(t["mean_probability"] == pytest.approx(0.8) for t in table)


def test_largest_diameter_of_a_sphere():
    grid = np.stack(np.meshgrid(*[np.arange(21)] * 3, indexing="ij"), -1).reshape(-1, 3)
    sphere = grid[np.linalg.norm(grid - 10, axis=1) <= 10]
    assert largest_diameter_mm(sphere, np.diag([0.5, 0.5, 0.5, 1])) == pytest.approx(10.0, abs=0.01)
    assert largest_diameter_mm(np.array([[1, 1, 1]]), np.eye(4)) == 0.0
    assert largest_diameter_mm(np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0], [4, 0, 0]]), np.eye(4)) == 4.0


def test_bad_input():
    with pytest.raises(ValueError, match=r"labels: expected a 3D \(x, y, z\) array, found shape \(4, 4\)"):
        find_lesions(np.zeros((4, 4)), np.eye(4), LESION)
    with pytest.raises(ValueError, match=r"probability: expected shape \(4, 4, 4\), found \(4, 4\)"):
        find_lesions(np.zeros((4, 4, 4)), np.eye(4), LESION, probability=np.zeros((4, 4)))


def test_table_files(tmp_path):
    labels = np.zeros((10, 10, 10), np.uint8)
    box(labels, (2, 2, 2), (4, 4, 4), 5)
    table = find_lesions(labels, np.eye(4), LESION)
    write_lesion_table(table, tmp_path / "case_lesions.json", tmp_path / "case_lesions.csv")
    assert json.loads((tmp_path / "case_lesions.json").read_text())["count"] == 1
    with open(tmp_path / "case_lesions.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert rows[0]["voxels"] == "8" and rows[0]["bbox_min_voxel"] == "2 2 2" and rows[0]["host_organ"] == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case_lesions.csv", "case_lesions.json"]


def test_clean_organs_keeps_largest_parts_fills_holes_keeps_lesions():
    labels = np.zeros((20, 20, 20), np.uint8)
    box(labels, (2, 2, 2), (10, 10, 10), 1)  # liver
    labels[5, 5, 5] = 0  # a hole
    labels[6, 6, 6] = 5  # a lesion inside the liver
    labels[15, 15, 15] = 1  # a stray fragment
    box(labels, (12, 2, 2), (15, 5, 5), 2)  # lung 1
    box(labels, (16, 2, 2), (19, 5, 5), 2)  # lung 2
    labels[0, 19, 19] = 2  # stray lung fragment
    cleaned = clean_organs(labels, {1: 1, 2: 2})
    assert cleaned[5, 5, 5] == 1 and cleaned[6, 6, 6] == 5 and cleaned[15, 15, 15] == 0
    assert cleaned[0, 19, 19] == 0 and (cleaned == 2).sum() == 2 * 27
    assert labels[15, 15, 15] == 1  # input untouched


def _clean_organs_whole_volume(labels, organs):
    """clean_organs as first written: every step on whole-volume masks (the reference for the boxed one)."""
    from scipy import ndimage

    out = np.array(labels, copy=True)
    for value, keep in organs.items():
        mask = out == value
        if not mask.any():
            continue
        components, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
        if count > keep:
            sizes = ndimage.sum_labels(mask, components, index=np.arange(1, count + 1))
            kept = np.argsort(-sizes, kind="stable")[:keep] + 1
            out[mask & ~np.isin(components, kept)] = 0
            mask = out == value
        out[ndimage.binary_fill_holes(mask) & (out == 0)] = value
    return out


@pytest.mark.parametrize("seed", range(6))
def test_organs_and_lesions_from_boxes_equal_the_whole_volume_results(seed):
    """Organ clean-up and the lesion table, worked out inside bounding boxes, as from whole-volume masks."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    labels = np.zeros((40, 36, 24), np.int16)
    for value in (1, 2, 3, 4, 12, 13) * 3:  # blobs that touch, overlap, fragment, sit at the edges
        low = rng.integers(0, [34, 30, 19])
        labels[tuple(slice(a, a + int(rng.integers(2, 9))) for a in low)] = value
    labels[rng.random(labels.shape) < 0.02] = 0  # holes and fragments
    labels[rng.random(labels.shape) < 0.003] = 13  # scattered one-voxel lesions
    organs = {1: 1, 2: 2, 3: 1, 4: 1}
    assert np.array_equal(clean_organs(labels, organs), _clean_organs_whole_volume(labels, organs))

    names = {1: "liver", 2: "lungs", 3: "kidney", 4: "spleen"}
    affine = np.diag([1.5, 1.2, 4.0, 1.0])
    probability = rng.random(labels.shape).astype(np.float32)
    table = find_lesions(labels, affine, {12: "primary", 13: "metastasis"}, organs=names, probability=probability)
    expected = []
    for value in (12, 13):  # each lesion's voxels, mean probability and touching organs from whole-volume masks
        components, count = ndimage.label(labels == value, structure=np.ones((3, 3, 3), dtype=bool))
        for component in range(1, count + 1):
            mask = components == component
            ring = ndimage.binary_dilation(mask, np.ones((3, 3, 3), dtype=bool)) & ~mask
            touching = sorted(names[int(v)] for v in np.unique(labels[ring]) if int(v) in names)
            expected.append((value, int(mask.sum()), round(float(probability[mask].mean()), 4), touching,
                             np.argwhere(mask).min(axis=0).tolist()))  # fmt: skip
    found = [(row["label"], row["voxels"], row["mean_probability"], row["host_organ"], row["bbox_min_voxel"])
             for row in table]  # fmt: skip
    assert sorted((v, n, p, b) for v, n, p, _, b in expected) == sorted((v, n, p, b) for v, n, p, _, b in found)
    hosts = {(v, n, tuple(b)): t for v, n, _, t, b in expected}
    assert all(not hosts[(v, n, tuple(b))] or h in hosts[(v, n, tuple(b))] for v, n, _, h, b in found)


@pytest.mark.parametrize("channels", [None, [12, 13], [3]])
def test_channel_argmax_equals_numpys_ties_included(channels):
    from mednet.localisation.outputs import channel_argmax

    rng = np.random.default_rng(3)
    probabilities = rng.integers(0, 4, (14, 9, 8, 7)).astype(np.float32)  # many ties
    picked = probabilities if channels is None else probabilities[channels]
    found = channel_argmax(probabilities, channels)
    assert found.dtype == np.int16 and np.array_equal(found, picked.argmax(axis=0))
