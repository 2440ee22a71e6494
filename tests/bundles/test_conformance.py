"""MONAI bundle conformance: metadata against mednet's offline schema, network shapes, TorchScript export."""

from __future__ import annotations

import copy
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import fire
import monai.bundle.scripts
import pytest
import torch
from monai.bundle import ConfigParser, verify_metadata

from tests.bundles.helpers import BUNDLES, readme_commands

SCHEMA = BUNDLES / "meta_schema.json"
# MONAI warns that the local schema file comes without a hash to check it against
pytestmark = pytest.mark.filterwarnings("ignore:No hash value provided:UserWarning")
NAMES = sorted(p.name for p in BUNDLES.iterdir() if (p / "configs" / "metadata.json").is_file())


@pytest.mark.parametrize("name", NAMES)
def test_metadata_passes_verify_metadata_offline(name):
    meta_file = BUNDLES / name / "configs" / "metadata.json"
    verify_metadata(meta_file=str(meta_file), filepath=str(SCHEMA))  # raises on a violation
    meta = json.loads(meta_file.read_text())
    assert meta["version"] in meta["changelog"]
    assert "research" in meta["intended_use"].lower() and "not for clinical" in meta["intended_use"].lower()
    for tensors in meta["network_data_format"].values():
        for spec in tensors.values():
            assert len(spec["channel_def"]) == spec["num_channels"], name


def test_schema_is_not_vacuous(tmp_path):
    meta = json.loads((BUNDLES / NAMES[0] / "configs" / "metadata.json").read_text())
    broken = {"no intended use": {k: v for k, v in meta.items() if k != "intended_use"},
              "bad version": {**meta, "version": "one"},
              "no channel_def": copy.deepcopy(meta)}  # fmt: skip
    next(iter(broken["no channel_def"]["network_data_format"]["inputs"].values())).pop("channel_def")
    for what, doc in broken.items():
        path = tmp_path / f"{what}.json"
        path.write_text(json.dumps(doc))
        with pytest.raises(Exception, match=r"ValidationError|is a required property|does not match"):
            verify_metadata(meta_file=str(path), filepath=str(SCHEMA))


def test_verify_metadata_command_as_the_readme_shows():
    bundle = BUNDLES / NAMES[0]
    run = subprocess.run([sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file",
                          str(bundle / "configs" / "metadata.json"), "--filepath", str(SCHEMA)],
                         capture_output=True, text=True, env={**os.environ, "no_proxy": "*"})  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "metadata is verified with no error" in (run.stdout + run.stderr)


def _copy(name: str, tmp_path: Path) -> Path:
    """The bundle in a scratch bundles folder (with the schema beside it), without weights or outputs."""
    root = tmp_path / "bundles"
    shutil.copytree(BUNDLES / name, root / name, ignore=shutil.ignore_patterns("models", "eval", "predictions"))
    shutil.copy(SCHEMA, root / "meta_schema.json")
    return root / name


def _as_written(command: str) -> None:
    """Run a ``python -m monai.bundle ...`` line in this process, parsed by fire as the module's CLI parses it."""
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "monai.bundle"], command
    commands = ("verify_metadata", "verify_net_in_out", "ckpt_export")
    fire.Fire({name: getattr(monai.bundle.scripts, name) for name in commands}, command=argv[3:])


@pytest.mark.parametrize("name", NAMES)
def test_readme_checks_pass_as_written_and_torchscript_matches(name, tmp_path, monkeypatch):
    """verify_metadata, verify_net_in_out and ckpt_export exactly as the model card gives them."""
    bundle = _copy(name, tmp_path)
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser["bundle_root"] = str(bundle)
    torch.manual_seed(0)
    (bundle / "models").mkdir()
    torch.save(parser.get_parsed_content("network_def").state_dict(), bundle / "models" / "model.pt")
    commands = readme_commands(name, "python -m monai.bundle verify_", "python -m monai.bundle ckpt_export")
    assert [c.split()[3] for c in commands] == ["verify_metadata", "verify_net_in_out", "ckpt_export"]
    net_id = commands[1].split()[4]
    assert net_id == ("export_network_def" if "classification" in name else "network_def")
    monkeypatch.chdir(bundle)
    for command in commands:
        _as_written(command)  # each raises on a failed check

    extra = {"metadata.json": "", "inference.json": ""}
    scripted = torch.jit.load(str(bundle / "models" / "model.ts"), _extra_files=extra)
    meta = json.loads(extra["metadata.json"])
    assert meta["version"] == parser["_meta_#version"] and json.loads(extra["inference.json"])["network_def"]
    inputs = meta["network_data_format"]["inputs"]
    args = [torch.rand(1, inputs["image"]["num_channels"], *inputs["image"]["spatial_shape"])]
    if "features" in inputs:
        args.append(torch.rand(1, inputs["features"]["num_channels"]))
    eager = parser.get_parsed_content(net_id).eval()  # the network the checkpoint was saved from
    with torch.no_grad():
        expected, exported = eager(*args), scripted(*args)
    assert exported.shape[1] == meta["network_data_format"]["outputs"]["pred"]["num_channels"]
    assert torch.allclose(exported, expected, atol=1e-5)
