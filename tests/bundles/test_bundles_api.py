"""mednet.bundles: finding bundles, model-card figures, quiet runs, installing weights."""

from __future__ import annotations

import json
import logging
import sys
import zipfile

import nibabel as nib
import numpy as np
import pytest

from mednet.bundles import (
    bundle_path,
    bundle_table,
    console_to,
    export_bundle,
    install_weights,
    list_bundles,
    write_benchmark_section,
)
from mednet.cli.main import main


def _bundle(root, name: str, card: str):
    (root / name / "configs").mkdir(parents=True)
    (root / name / "configs" / "metadata.json").write_text("{}")
    (root / name / "docs").mkdir()
    (root / name / "docs" / "README.md").write_text(card)


def test_write_benchmark_section_replaces_only_its_section(tmp_path):
    _bundle(tmp_path, "x_bundle", "# X\n<!-- benchmark:x -->\nold\n<!-- /benchmark:x -->\n## Limitations\nkeep\n")
    assert list_bundles(tmp_path) == ["x_bundle"]
    readme = write_benchmark_section("x_bundle", "x", "| a | b |", root=tmp_path)
    assert readme.read_text() == "# X\n<!-- benchmark:x -->\n| a | b |\n<!-- /benchmark:x -->\n## Limitations\nkeep\n"
    with pytest.raises(ValueError, match=r"no <!-- benchmark:y -->"):
        write_benchmark_section("x_bundle", "y", "text", root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"bundles in .*: x_bundle"):
        bundle_path("y_bundle", tmp_path)


def test_console_to_sends_logs_and_prints_to_the_file(tmp_path, capsys):
    existing = logging.getLogger("mednet.test.existing")
    handler = logging.StreamHandler(sys.stdout)
    existing.addHandler(handler)
    existing.setLevel(logging.INFO)
    made_inside = logging.getLogger("mednet.test.inside")
    try:
        with console_to(tmp_path / "logs" / "run.log") as log:
            print("printed")
            print("to stderr", file=sys.stderr)
            existing.info("from a logger made before")
            made_inside.addHandler(logging.StreamHandler(sys.stdout))  # as a logging.conf does
            made_inside.warning("from a logger configured inside")
        text = log.read_text()
        for line in ("printed", "to stderr", "from a logger made before", "from a logger configured inside"):
            assert line in text
        assert capsys.readouterr() == ("", "")
        assert handler.stream is sys.stdout and made_inside.handlers == []
        existing.info("after the block")
        assert capsys.readouterr().out == "after the block\n"
    finally:
        existing.removeHandler(handler)


def test_install_weights_copies_every_file_and_refuses_an_empty_run(tmp_path):
    _bundle(tmp_path / "bundles", "x_bundle", "")
    run = tmp_path / "run" / "models"
    run.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no model\.pt"):
        install_weights(run, "x_bundle", tmp_path / "bundles")
    (run / "model.pt").write_bytes(b"weights")
    (run / "model_branches.json").write_text("{}")
    path = install_weights(run, "x_bundle", tmp_path / "bundles")
    assert path.read_bytes() == b"weights" and (path.parent / "model_branches.json").is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt", "model_branches.json"]


def test_bundle_list_and_export(tmp_path, capsys):
    root = tmp_path / "bundles"
    for name in ("a_bundle", "b_bundle"):
        _bundle(root, name, "# model card\n")
        (root / name / "configs" / "metadata.json").write_text(json.dumps({"version": "0.2.0", "name": name}))
        (root / name / "configs" / "inference.json").write_text("{}")
        (root / name / "LICENSE").write_text("Apache-2.0")
    (root / "a_bundle" / "models").mkdir()
    (root / "a_bundle" / "models" / "model.pt").write_bytes(b"w" * 2048)
    (root / "a_bundle" / "models" / ".model.pt.partial").write_bytes(b"half")
    (root / "a_bundle" / "eval").mkdir()
    (root / "a_bundle" / "eval" / "metrics.json").write_text("{}")
    assert main(["bundle", "list", "--bundles", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:2] == ["a_bundle", "0.2.0"] and "not mednet's reference weights" in out[1]
    assert out[2].split()[:3] == ["b_bundle", "0.2.0", "none"]
    assert [r["weights"] for r in bundle_table(root)] == [True, False]
    record = {"data": {"cases": 160, "randomise": "full", "seed": 2026}, "epochs": 60}
    (root / "a_bundle" / "models" / "reference.json").write_text(json.dumps(record))
    assert bundle_table(root)[0]["source"] == (
        "reference weights: data (160 cases, full randomisation, seed 2026); 60 epochs"
    )

    archive = tmp_path / "out" / "a.zip"
    assert main(["bundle", "export", "a_bundle", "--out", str(archive), "--bundles", str(root)]) == 0
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == ["a_bundle/LICENSE", "a_bundle/configs/inference.json",
                                        "a_bundle/configs/metadata.json", "a_bundle/docs/README.md",
                                        "a_bundle/models/model.pt", "a_bundle/models/reference.json"]  # fmt: skip
        assert z.read("a_bundle/models/model.pt") == b"w" * 2048
    assert main(["bundle", "export", "b_bundle", "--out", str(tmp_path / "b.zip"), "--bundles", str(root)]) == 2
    assert "has no trained weights" in capsys.readouterr().err and not (tmp_path / "b.zip").exists()
    with pytest.raises(FileNotFoundError, match="bundles in"):
        export_bundle("c_bundle", tmp_path / "c.zip", root)


def test_bundle_studies_writes_one_stacked_file_per_case(tmp_path, capsys):
    from mednet.synthetic import generate_cohort

    generate_cohort("cpa", 3, tmp_path / "data", size="small", seed=1, workers=1)
    doc = json.loads((tmp_path / "data" / "datalist.json").read_text())
    out = tmp_path / "studies"
    args = ["bundle", "studies", "cpa_mri_segmentation", "--datalist", str(tmp_path / "data" / "datalist.json")]
    assert main([*args, "--out", str(out), "--partition", "all"]) == 0
    assert "t1c, t2 as channels 0-1" in capsys.readouterr().out
    cases = [c for p in ("training", "validation", "testing") for c in doc[p]]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{c['case_id']}.nii.gz" for c in cases)
    case = cases[0]
    study, t1c = nib.load(out / f"{case['case_id']}.nii.gz"), nib.load(tmp_path / "data" / case["t1c"])
    assert study.shape == (*t1c.shape, 2) and np.allclose(study.affine, t1c.affine)
    assert np.allclose(study.get_fdata()[..., 0], t1c.get_fdata(), atol=1e-3)  # channel 0 is t1c, the reference
    assert main([*args, "--out", str(out), "--partition", "all"]) == 2  # exists, no --overwrite
    assert "output exists" in capsys.readouterr().err
    assert main(["bundle", "studies", "cpa_mri_classification", "--datalist", "x.json", "--out", str(out)]) == 2
    assert "not a localisation bundle" in capsys.readouterr().err
