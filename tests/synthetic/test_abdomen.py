"""Torso phantoms with a real abdomen's contents: bowel, stomach, gallbladder, fat, limited slabs."""

from __future__ import annotations

import dataclasses
import json

import nibabel as nib
import numpy as np

from mednet.io.grid import Grid
from mednet.synthetic import generate_cohort, neuroblastoma
from mednet.synthetic.randomise import PRESETS
from mednet.synthetic.shapes import Ellipsoid

ABDOMEN = dataclasses.replace(PRESETS["moderate"], name="abdomen", abdomen=True)
CONTENTS = ("bowel", "fluid", "gas", "stool", "fat:mesentery")


def _tissue_map(phantom, spacing=3.0):
    """Tissue index painted on a ``spacing`` mm grid over the torso (400 x 300 x 500 mm)."""
    shape = tuple(int(n / spacing) for n in (400, 300, 500))
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = [-200.0, -150.0, -250.0]
    names = phantom.tissues()
    return names, phantom.paint_grid(Grid(shape, affine), np.zeros(3), names)


def test_abdomens_hold_bowel_fat_and_a_stomach_never_labelled():
    """Mesenteric fat, loops with fluid, gas or stool: a large part of the abdomen, label 0; organs still there."""
    shares = []
    for seed in range(3):
        phantom, _ = neuroblastoma.build(np.random.default_rng(seed), "L2", varied=ABDOMEN)
        names, tissue = _tissue_map(phantom)
        lut = np.array([phantom.labels.get(n, 0) for n in names])
        contents = np.isin(tissue, [names.index(n) for n in CONTENTS if n in names])
        assert not lut[tissue][contents].any()  # the bowel and its contents are background
        held = {n for n in ("fluid", "gas", "stool", "fat:mesentery") if n in names and (tissue == names.index(n)).any()}
        assert {"fat:mesentery", "fluid"} <= held and len(held) >= 3, held
        labels = lut[tissue]
        for value in (1, 2, 3, 4, 7, 9, 11, 12):  # liver, spleen, kidneys, aorta, spine, retroperitoneum, tumour
            assert (labels == value).sum() > 50, value
        loops = [shape for t, shape in phantom.layers if t == "bowel" and not isinstance(shape, Ellipsoid)]
        assert len(loops) >= 16  # small-bowel loops and the colon's parts
        new = np.isin(tissue, [names.index(n) for n in CONTENTS[1:] if n in names])  # what a block of bowel lacked
        shares.append(new.sum() / (tissue > 0).sum())
        signal = {s: phantom.signal(names, s) for s in ("t2w", "t1c")}
        assert all(signal[s][names.index("gas")] < 0.05 * signal[s][names.index("fat")] for s in signal)
        if "fluid" in names:  # fluid is bright on T2, dark on T1
            assert signal["t2w"][names.index("fluid")] > signal["t1c"][names.index("fluid")]
    assert min(shares) > 0.04 and max(shares) < 0.4, shares


def test_subcutaneous_fat_from_a_child_to_an_adult():
    """The fat under the skin varies: the abdominal wall's muscle sits a few mm to centimetres inside the skin."""
    depth = []
    for seed in range(12):
        phantom, _ = neuroblastoma.build(np.random.default_rng(seed), "L1", varied=ABDOMEN)
        skin, wall = (shape for t, shape in phantom.layers[:2])
        assert [t for t, _ in phantom.layers[:2]] == ["fat", "muscle"]
        depth.append(float(skin.radii[0] - wall.radii[0]))
    assert min(depth) < 10 and max(depth) > 3 * min(depth), depth


def test_plain_and_grading_torsos_draw_what_they_drew_before():
    """Without ``abdomen`` (``moderate``, ``plausible``) a torso is what it was: the released weights reproduce."""
    for seed in range(3):
        plain, plain_facts = neuroblastoma.build(np.random.default_rng(seed), "M", varied=True)
        for preset in ("moderate", "plausible"):
            phantom, facts = neuroblastoma.build(np.random.default_rng(seed), "M", varied=PRESETS[preset])
            assert [t for t, _ in phantom.layers] == [t for t, _ in plain.layers]
            assert all(np.array_equal(a.centre, b.centre) for (_, a), (_, b) in zip(phantom.layers, plain.layers, strict=True)
                       if isinstance(a, Ellipsoid))  # fmt: skip
            assert facts == plain_facts and "fov_centre_mm" not in facts
        assert not {"fluid", "gas", "stool", "fat:mesentery"} & set(plain.tissues())


def test_slabs_cover_part_of_the_body_axis_and_keep_the_labels(tmp_path, monkeypatch):
    """A limited slab: its slices span 40 to 140 mm (times the cohort's field-of-view scale) around the abdomen."""
    monkeypatch.setitem(PRESETS, "slab", dataclasses.replace(ABDOMEN, name="slab", slab=1.0, planes={"axial": 1.0},
                                                              own_grids=0.0))  # fmt: skip
    cohort = generate_cohort("neuroblastoma", 2, tmp_path, seed=1, randomise="slab", balance={"L1": 1})
    for record in json.loads((cohort.root / "cases.json").read_text()):
        grid = record["grids"]["t2w"]
        extent = grid["shape"][2] * grid["spacing_mm"][2]
        assert 40 * 0.85 - 8 < extent < 140 * 1.25 + 8, extent
        seg = np.asarray(nib.load(cohort.root / record["case_id"] / f"{record['case_id']}_seg.nii.gz").dataobj)
        assert seg.shape == tuple(grid["shape"]) and (seg > 0).mean() > 0.02  # the slab goes through the body
