"""Bundle names, tiny settings, and config access for the bundle tests."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from mednet.bundles import BUNDLES_DIR as BUNDLES
from mednet.bundles import run_bundle

__all__ = [
    "BUNDLES",
    "CLASSIFICATION",
    "DISEASE",
    "SEGMENTATION",
    "TINY",
    "TINY_GRADING",
    "config",
    "readme_commands",
    "run_bundle",
    "torchrun_train",
]

SEGMENTATION = ("glioma_mri_segmentation", "cpa_mri_segmentation", "neuroblastoma_mri_segmentation")
DISEASE = {
    "glioma_mri_segmentation": "glioma",
    "cpa_mri_segmentation": "cpa",
    "neuroblastoma_mri_segmentation": "neuroblastoma",
}

CLASSIFICATION = {
    "glioma_mri_classification": ("glioma", ["LGG", "HGG"]),
    "cpa_mri_classification": ("cpa", ["MG", "AN"]),
    "neuroblastoma_mri_classification": ("neuroblastoma", ["L1", "L2", "M"]),
}

#: Settings small enough for a classification test: 4 slices of 16 x 16 per case, one epoch.
TINY_GRADING = {"n_slices": 4, "slice_size": [16, 16], "num_workers": 0, "max_epochs": 1, "batch_size": 2}

#: Settings small enough for a test: one epoch on 32 x 32 x 16 patches, no workers.
TINY = {"roi_size": [32, 32, 16], "num_workers": 0, "max_epochs": 1, "val_interval": 1, "num_samples": 1}


def config(bundle: str, name: str) -> dict:
    """A bundle config file as JSON."""
    return json.loads((BUNDLES / bundle / "configs" / f"{name}.json").read_text())


def torchrun_train(
    bundle: str, datalist: Path, out: Path, overrides: dict, nodes: int = 1
) -> subprocess.CompletedProcess:
    """``train.json`` + ``multi_gpu_train.json`` under torchrun: two CPU processes (gloo).

    ``nodes=1``: one ``torchrun --standalone --nproc_per_node=2``. ``nodes=2``: two
    ``torchrun --nnodes=2 --node_rank=R --nproc_per_node=1`` launches meeting at a
    rendezvous on 127.0.0.1, as two machines would (the result holds both outputs).
    One retry: on this 2-core machine a gloo worker now and then aborts (SIGABRT) while the
    process group is torn down after a successful run; a real failure fails twice.
    """
    options = " ".join(f"--{k} {json.dumps(v).replace(' ', '')}" for k, v in overrides.items())
    bundle_run = (
        f"-m monai.bundle run --config_file \"['configs/train.json','configs/multi_gpu_train.json']\" "
        f"--bundle_root . --datalist {datalist} --ckpt_dir {out / 'models'} --output_dir {out / 'eval'} {options}"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    for _ in range(2):
        if nodes == 1:
            command = f"{sys.executable} -m torch.distributed.run --standalone --nproc_per_node=2 {bundle_run}"
            result = subprocess.run(command, shell=True, cwd=BUNDLES / bundle, env=env, capture_output=True,
                                    text=True, timeout=600)  # fmt: skip
        else:
            with socket.socket() as probe:  # a free port for the rendezvous
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            launches = [subprocess.Popen(
                f"{sys.executable} -m torch.distributed.run --nnodes={nodes} --node_rank={rank} --nproc_per_node=1 "
                f"--master_addr=127.0.0.1 --master_port={port} {bundle_run}", shell=True, cwd=BUNDLES / bundle,
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            ) for rank in range(nodes)]  # fmt: skip
            outputs = [launch.communicate(timeout=600) for launch in launches]
            code = max(abs(launch.returncode) for launch in launches)
            result = subprocess.CompletedProcess(launches[0].args, code, "\n".join(o[0] for o in outputs),
                                                 "\n".join(o[1] for o in outputs))  # fmt: skip
        if result.returncode == 0:
            break
    return result


def readme_commands(bundle: str, *prefixes: str) -> list[str]:
    """The shell commands of a bundle's docs/README.md that start with one of ``prefixes``.

    Commands come from its ```bash blocks, in order; continuation lines are joined and
    runs of spaces collapsed (a command is as a shell would read it).
    """
    text = (BUNDLES / bundle / "docs" / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = " ".join(line.split())
            if line.startswith(prefixes):
                commands.append(line)
    return commands
