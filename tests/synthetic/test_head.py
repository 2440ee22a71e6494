"""Brain phantoms with a real head around the brain: scalp, skull with marrow, face, orbits, sinuses, neck."""

from __future__ import annotations

import dataclasses

import numpy as np

from mednet.io.grid import Grid
from mednet.synthetic import glioma
from mednet.synthetic.randomise import PRESETS
from mednet.synthetic.shapes import Ellipsoid

HEAD = dataclasses.replace(PRESETS["moderate"], name="head", head=True)
AROUND = ("fluid", "marrow", "muscle", "air")


def _tissue_map(phantom, spacing=2.5):
    """Tissue names, the tissue index on a ``spacing`` mm grid over the head and neck, and the brain mask."""
    shape = tuple(int(n / spacing) for n in (200, 230, 260))
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = [-100.0, -115.0, -170.0]
    names = phantom.tissues()
    tissue = phantom.paint_grid(Grid(shape, affine), np.zeros(3), names)
    points = np.stack(np.meshgrid(*[np.arange(n) * spacing for n in shape], indexing="ij"), -1).reshape(-1, 3)
    brain = phantom.foreground.contains(points + affine[:3, 3]).reshape(shape)
    return names, tissue, brain


def test_heads_hold_orbits_sinuses_and_a_skull_with_marrow_outside_the_brain_never_labelled():
    for seed, label in enumerate(("HGG", "LGG", "MET")):
        phantom, _ = glioma.build(np.random.default_rng(seed), label, varied=HEAD)
        names, tissue, brain = _tissue_map(phantom)
        lut = np.array([phantom.labels.get(n, 0) for n in names])
        around = np.isin(tissue, [names.index(n) for n in AROUND if n in names])
        assert not lut[tissue][around].any()  # never tumour
        assert not (around & brain).any()  # all outside the brain: skull stripping removes them
        present = {n for n in AROUND if n in names and (tissue == names.index(n)).sum() > 5}
        assert present == set(AROUND), present
        assert (lut[tissue] > 0).sum() > 100  # the tumour is still there
        def index(axis: int, mm: float) -> int:  # the grid index of a world coordinate (the head's centre is 0)
            return int((mm - (-100.0, -115.0, -170.0)[axis]) / 2.5)

        below = tissue[:, :, : index(2, -80)]  # 80 mm below the head's centre: neck and face, no brain
        assert (below > 0).mean() > 0.05 and not brain[:, :, : index(2, -80)].any()
        orbit = tissue[:, index(1, 40) :, index(2, -45) : index(2, -15)]  # in front, below the brain
        assert (orbit == names.index("fluid")).sum() > 50  # the eyes' vitreous


def test_the_scalp_varies_and_plain_heads_draw_what_they_drew_before():
    """A scalp of 4 to 11 mm; without ``head`` (``moderate``, ``plausible``) the phantom is what it was."""
    scalps = []
    for seed in range(8):
        phantom, _ = glioma.build(np.random.default_rng(seed), "LGG", varied=HEAD)
        skin = next(shape for t, shape in phantom.layers if t == "fat" and isinstance(shape, Ellipsoid)
                    and shape.radii[0] > 60)  # fmt: skip
        bone = next(shape for t, shape in phantom.layers if t == "bone" and isinstance(shape, Ellipsoid))
        scalps.append(float(skin.radii[0] - bone.radii[0]))
    assert min(scalps) < 6 and max(scalps) > 8, scalps
    for seed in range(3):
        plain, plain_facts = glioma.build(np.random.default_rng(seed), "HGG", varied=True)
        for preset in ("moderate", "plausible"):
            phantom, facts = glioma.build(np.random.default_rng(seed), "HGG", varied=PRESETS[preset])
            assert facts == plain_facts
            assert [t for t, _ in phantom.layers][:3] == ["fat", "bone", "csf"]
            assert not {"marrow", "fluid", "muscle"} & set(phantom.tissues())
        assert [t for t, _ in plain.layers][:3] == ["fat", "bone", "csf"]
