"""Every `python -m monai.bundle run` and `torchrun` command of every model card, run as written.

Each command is taken from the bundle's docs/README.md and run by a shell in a copy of the
bundle folder, with only two changes: the example datalist path becomes a tiny synthetic
cohort's, and settings that make the run tiny are appended (one epoch, small patches or
slices). Slow (about a minute per bundle): run with `-m slow`; `.ci/run` does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.bundles.helpers import BUNDLES, CLASSIFICATION, SEGMENTATION, TINY, TINY_GRADING, readme_commands

pytestmark = [pytest.mark.slow, pytest.mark.bundle]


def _shell(command: str, datalist, settings: dict) -> str:
    """The README line with the test's datalist, this interpreter, and the tiny settings appended."""
    command = re.sub(r"/data/\S+/datalist\.json", str(datalist), command)
    command = re.sub(r"^python ", f"{sys.executable} ", command)
    command = re.sub(r"^torchrun ", f"{sys.executable} -m torch.distributed.run ", command)
    return command + "".join(f" --{k} {json.dumps(v).replace(' ', '')}" for k, v in settings.items())


@pytest.mark.parametrize("name", [*SEGMENTATION, *CLASSIFICATION])
def test_model_card_run_commands_work_as_written(name, tiny_cohorts, grading_cohorts, tmp_path):
    bundle = tmp_path / name
    shutil.copytree(BUNDLES / name, bundle, ignore=shutil.ignore_patterns("models", "eval", "predictions"))
    datalist, settings = (tiny_cohorts[name], TINY) if name in SEGMENTATION else (grading_cohorts[name], TINY_GRADING)
    commands = readme_commands(name, "python -m monai.bundle run", "torchrun")
    kinds = " ".join(commands)
    for config in ("configs/train.json", "configs/inference.json", "configs/evaluate.json", "multi_gpu_train.json"):
        assert config in kinds, f"{name}: the model card shows no command with {config}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    for command in commands:
        shell = _shell(command, datalist, settings)
        # torchrun: one retry, as in helpers.torchrun_train (gloo teardown aborts now and then on 2 cores)
        for _ in range(2 if command.startswith("torchrun") else 1):
            result = subprocess.run(shell, shell=True, cwd=bundle, env=env, capture_output=True, text=True, timeout=900)
            if result.returncode == 0:
                break
        assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
    assert (bundle / "models" / "model.pt").is_file()
    assert (bundle / "eval" / "metrics.json").is_file()
    assert any((bundle / "predictions").iterdir())
