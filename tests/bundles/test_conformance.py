"""MONAI bundle conformance: every bundle's metadata.json against mednet's offline schema."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
from monai.bundle import verify_metadata

from tests.bundles.helpers import BUNDLES

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
