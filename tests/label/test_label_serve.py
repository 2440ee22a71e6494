"""`mednet label serve` against a real MONAI Label 0.8.5 server on 127.0.0.1.

One command (`mednet label serve --disease glioma --studies CASES`) makes the app from the
shipped weights, stacks the cases into studies and starts the server; the tests then use
the server's HTTP API as 3D Slicer's MONAI Label module does: `/info/`, `/infer/` of the
localisation bundle and of the whole pipeline (with the grading in its JSON), labels saved
to the datastore and `/train/` from them. Needs the environment `mednet label setup` makes
(at $MEDNET_LABEL_ENV, else `.label-venv` in the repository); skipped, saying so, without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mednet.checksum import file_sha256
from mednet.label.environment import LabelEnvironment
from mednet.label.serve import free_port, stop_server, wait_until_ready
from mednet.pipeline.diseases import disease_spec
from mednet.synthetic import generate_cohort

pytestmark = [pytest.mark.label]

REPO = Path(__file__).resolve().parents[2]
LABEL_ENV = Path(os.environ.get("MEDNET_LABEL_ENV", REPO / ".label-venv"))
SPEC = disease_spec("glioma")
SEGMENTATION = SPEC.localisation.name


def _request(url: str, method: str = "GET", data: bytes | None = None, headers: dict | None = None) -> bytes:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=600) as response:
        return response.read()


def _put_label(url: str, image_id: str, label: Path) -> None:
    """``PUT /datastore/label`` with a multipart upload, as the annotators' clients save a final label."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"label\"; filename=\"{label.name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + label.read_bytes() + f"\r\n--{boundary}--\r\n".encode()  # fmt: skip
    _request(f"{url}/datastore/label?image={image_id}", "PUT", body,
             {"Content-Type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mednet label serve` on a free port; yields (url, cases folder, app folder)."""
    problem = LabelEnvironment(LABEL_ENV).problem()
    if problem:
        pytest.skip(problem)
    if not SPEC.localisation.weights.is_file():
        pytest.skip("no shipped weights in this checkout")
    work = tmp_path_factory.mktemp("label_serve")
    cases = work / "cases"
    generate_cohort("glioma", 3, cases, size="small", seed=11, workers=1)
    port = free_port()
    env = {**os.environ, "MEDNET_HOME": str(work / "home"), "PYTHONWARNINGS": "ignore",
           # any attempt to reach the internet goes to a closed port and fails at once
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost"}  # fmt: skip
    log = work / "serve.log"
    command = [sys.executable, "-m", "mednet", "label", "serve", "--disease", "glioma", "--studies", str(cases),
               "--port", str(port), "--env", str(LABEL_ENV)]  # fmt: skip
    with open(log, "w") as stream:
        process = subprocess.Popen(command, env=env, stdout=stream, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_ready(url, process)
            deadline = time.monotonic() + 60  # the command says so once it has seen the server answer too
            while "MONAI Label serving" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.5)
        except Exception as err:  # the log says why
            pytest.fail(f"{err}:\n{log.read_text()[-4000:]}")
        yield url, cases, work / "home" / "label" / "glioma", log
    finally:
        stop_server(process)


def test_info_lists_the_bundle_the_pipeline_and_a_trainer(server):
    url, _, _, log = server
    info = json.loads(_request(f"{url}/info/"))
    labels = {row["name"]: int(row["value"]) for row in SPEC.localisation.label_table}
    assert set(info["models"]) == {SEGMENTATION, "glioma_pipeline"}
    for name in info["models"]:
        assert info["models"][name]["type"] == "segmentation" and info["models"][name]["labels"] == labels
    assert set(info["trainers"]) == {SEGMENTATION}
    assert info["datastore"]["total"] == 3
    text = log.read_text()
    assert "MONAI Label serving" in text and "127.0.0.1" in text
    assert "github.com" not in text.lower() and "huggingface" not in text.lower()


def test_pipeline_returns_the_label_map_on_the_study_grid_and_the_grading(server, tmp_path):
    url, cases, app, _ = server
    case_id = sorted(p.name for p in cases.iterdir() if p.is_dir())[0]
    bundle = tmp_path / "bundle.nii.gz"
    bundle.write_bytes(_request(f"{url}/infer/{SEGMENTATION}?image={case_id}&output=image", "POST"))
    pipeline = tmp_path / "pipeline.nii.gz"
    pipeline.write_bytes(_request(f"{url}/infer/glioma_pipeline?image={case_id}&output=image", "POST"))
    result = json.loads(_request(f"{url}/infer/glioma_pipeline?image={case_id}&output=json", "POST"))
    source = nib.load(next((cases / case_id).glob(f"*_{SPEC.localisation.sequences[0]}.nii.gz")))
    for path in (bundle, pipeline):
        image = nib.load(path)
        assert image.shape == source.shape and np.allclose(image.affine, source.affine, atol=1e-4)
    ours = np.asarray(nib.load(pipeline).dataobj).astype(int)
    assert np.array_equal(ours, np.asarray(nib.load(bundle).dataobj).astype(int))  # one inference, two routes
    params = result.get("params", result)
    assert params["case_id"] == case_id and params["disease"] == "glioma"
    assert params["sequences_used"]["localisation"] == list(SPEC.localisation.sequences)
    assert params["label_names"] == {"background": 0, **{r["name"]: r["value"] for r in SPEC.localisation.label_table}}
    assert params["weights"][SEGMENTATION] == file_sha256(app / "model" / SEGMENTATION / "models" / "model.pt")
    if params["lesions"]:
        assert params["call"] in {*SPEC.classes, "indeterminate"}
        assert abs(sum(params["fused"].values()) - 1) < 1e-4
    else:
        assert params["call"] is None and "no lesion" in params["note"]


def test_training_from_saved_labels_replaces_the_served_weights(server, tmp_path):
    url, cases, app, _ = server
    served = app / "model" / SEGMENTATION / "models" / "model.pt"
    before = file_sha256(served)
    for case in sorted(p for p in cases.iterdir() if p.is_dir())[:2]:
        truth = nib.load(next(case.glob("*_seg.nii.gz")))
        label = tmp_path / f"{case.name}.nii.gz"  # the truth in the bundle's own values, as an annotator saves it
        nib.save(nib.Nifti1Image((np.asarray(truth.dataobj) > 0).astype(np.uint8), truth.affine), label)
        _put_label(url, case.name, label)
    request = json.dumps({"max_epochs": 1, "val_split": 0.5, "device": "cpu"}).encode()
    _request(f"{url}/train/{SEGMENTATION}?run_sync=true", "POST", request, {"Content-Type": "application/json"})
    after = file_sha256(served)
    assert after != before
    history = json.loads((served.parent / "monailabel_training.json").read_text())
    assert history[-1]["started_from_sha256"] == before and history[-1]["weights_sha256"] == after
    assert history[-1]["labelled_studies"] == 2 and history[-1]["started_from"]["data"]["synthetic_only"]
    assert not (served.parent / "reference.json").exists()  # the weights are no longer the reference ones
    # the pipeline serves the retrained weights from the next request on
    case_id = sorted(p.name for p in cases.iterdir() if p.is_dir())[2]
    result = json.loads(_request(f"{url}/infer/glioma_pipeline?image={case_id}&output=json", "POST"))
    assert result.get("params", result)["weights"][SEGMENTATION] == after
