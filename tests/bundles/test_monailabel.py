"""MONAI Label integration: the localisation bundles served by the `monaibundle` sample app.

A real MONAI Label 0.8.5 server on 127.0.0.1, started as each bundle's docs/README.md
says: bundles exported with `mednet bundle export` (weights from a short training run)
unpacked under the app's `model/`, studies written by `mednet bundle studies`, and the
configuration that keeps the server off the network (`zoo_source github` with local
bundles, `sam2 false`). Needs the environment `mednet label setup` makes (found at
$MEDNET_LABEL_ENV, else `.label-venv` in the repository); skipped, saying so, without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mednet.bundles import install_weights
from mednet.cli.main import main
from mednet.label.serve import LabelServeError, free_port, stop_server, wait_until_ready
from tests.bundles.helpers import BUNDLES, SEGMENTATION, run_bundle

pytestmark = [pytest.mark.label, pytest.mark.bundle]

REPO = Path(__file__).resolve().parents[2]
LABEL_ENV = Path(os.environ.get("MEDNET_LABEL_ENV", REPO / ".label-venv"))
#: Settings of a short CPU training run (as in the other bundle tests, a little longer).
SHORT_TRAINING = {"roi_size": [32, 32, 16], "num_workers": 0, "max_epochs": 2, "val_interval": 1, "num_samples": 1}
#: The server's no-network configuration, as the bundles' README files give it.
CONF = ["--conf", "zoo_source", "github", "--conf", "sam2", "false", "--conf", "skip_trainers", "true"]


def _get(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_cohorts):
    """A MONAI Label server with the three localisation bundles; yields (url, studies, trained bundles root)."""
    if not (LABEL_ENV / "bin" / "monailabel").is_file():
        pytest.skip(f"no MONAI Label environment at {LABEL_ENV}: run `mednet label setup --env .label-venv`")
    work = tmp_path_factory.mktemp("monailabel")
    env = {**os.environ, "PATH": f"{LABEL_ENV / 'bin'}{os.pathsep}{os.environ['PATH']}", "PYTHONWARNINGS": "ignore",
           # any attempt to reach the internet goes to a closed port and fails at once
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost"}  # fmt: skip
    monailabel = str(LABEL_ENV / "bin" / "monailabel")
    subprocess.run([monailabel, "apps", "--download", "--name", "monaibundle", "--output", str(work / "apps")],
                   env=env, check=True, capture_output=True, timeout=120)  # fmt: skip
    app = work / "apps" / "monaibundle"
    root = work / "bundles"  # a copy of the bundles, each with weights from a short training run
    shutil.copytree(BUNDLES, root, ignore=shutil.ignore_patterns("models", "eval", "predictions"))
    studies = work / "studies"
    for name in SEGMENTATION:
        run = work / f"{name}_run"
        run_bundle(name, ["train"], datalist=str(tiny_cohorts[name]), ckpt_dir=str(run / "models"),
                   output_dir=str(run / "eval"), **SHORT_TRAINING)  # fmt: skip
        install_weights(run / "models", name, root)
        assert main(["bundle", "export", name, "--out", str(work / f"{name}.zip"), "--bundles", str(root)]) == 0
        with zipfile.ZipFile(work / f"{name}.zip") as archive:
            archive.extractall(app / "model")
        assert main(["bundle", "studies", name, "--datalist", str(tiny_cohorts[name]), "--out", str(studies),
                     "--partition", "testing", "--bundles", str(root)]) == 0  # fmt: skip
    port = free_port()
    log = work / "server.log"
    command = [monailabel, "start_server", "--app", str(app), "--studies", str(studies),
               "--conf", "models", ",".join(SEGMENTATION), *CONF, "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with open(log, "w") as stream:
        process = subprocess.Popen(command, env=env, stdout=stream, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_ready(url, process)
        except LabelServeError as err:
            pytest.fail(f"{err}:\n{log.read_text()[-4000:]}")
        yield url, studies, root, log
    finally:
        stop_server(process)


def test_info_lists_every_bundle_and_its_labels(server):
    url, _, _, log = server
    info = json.loads(_get(f"{url}/info/"))
    for name in SEGMENTATION:
        meta = json.loads((BUNDLES / name / "configs" / "metadata.json").read_text())
        channels = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
        model = info["models"][name]
        assert model["type"] == "segmentation" and model["dimension"] == 3
        assert model["version"] == meta["version"]
        assert model["labels"] == {v.lower(): int(k) for k, v in channels.items() if v.lower() != "background"}
    assert info["trainers"] == {}  # skip_trainers: training is `monai.bundle run` on a datalist
    text = log.read_text().lower()
    assert "github.com" not in text and "huggingface" not in text and "downloading" not in text


@pytest.mark.parametrize("name", SEGMENTATION)
def test_infer_returns_the_bundles_label_map_on_the_input_grid(server, tiny_cohorts, name, tmp_path):
    url, studies, root, _ = server
    case = json.loads(tiny_cohorts[name].read_text())["testing"][0]
    request = urllib.request.Request(f"{url}/infer/{name}?image={case['case_id']}&output=image", method="POST")
    with urllib.request.urlopen(request, timeout=300) as response:
        (tmp_path / "monailabel.nii.gz").write_bytes(response.read())
    returned = nib.load(tmp_path / "monailabel.nii.gz")
    study = nib.load(studies / f"{case['case_id']}.nii.gz")
    reference = nib.load(Path(tiny_cohorts[name]).parent / case[json.loads(
        (BUNDLES / name / "configs" / "inference.json").read_text())["image_keys"][0]])  # fmt: skip
    assert returned.shape == study.shape[:3] == reference.shape
    assert np.allclose(returned.affine, reference.affine, atol=1e-4)
    # the same label map as the bundle's own inference from the separate sequence files
    out = tmp_path / "bundle"
    run_bundle(name, ["inference"], root=root, datalist=str(tiny_cohorts[name]), output_dir=str(out))
    ours = nib.load(out / case["case_id"] / f"{case['case_id']}_labels.nii.gz")
    assert np.array_equal(np.asarray(returned.dataobj).astype(int), np.asarray(ours.dataobj).astype(int))
    values = {int(v) for v in np.unique(np.asarray(returned.dataobj))}
    table = {0} | {row["value"] for row in json.loads((out / case["case_id"] / f"{case['case_id']}_labels.json")
                                                      .read_text())["labels"]}  # fmt: skip
    assert values <= table, (values, table)
    assert len(values) >= 2, f"{name}: a one-value map makes the comparison above weak; train longer ({values})"
