"""`mednet label`: the app folder, the studies and the environment checks, without a server.

The server itself (MONAI Label's environment) is exercised in ``test_label_serve.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mednet.checksum import file_sha256
from mednet.cli.main import main
from mednet.label.environment import REQUIREMENTS, LabelEnvironment, LabelEnvironmentError, default_environment
from mednet.label.serve import APP_FILE, _set_entries, default_app, prepare_app, prepare_studies
from mednet.pipeline.diseases import disease_spec
from mednet.synthetic import generate_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Three small glioma cases, one of them without its FLAIR."""
    root = tmp_path_factory.mktemp("glioma_cases")
    generate_cohort("glioma", 3, root, size="small", seed=7, workers=1)
    lacking = sorted(p for p in root.iterdir() if p.is_dir())[-1]
    next(lacking.glob("*_flair.nii.gz")).unlink()
    return root


def test_home_and_environment_follow_the_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MEDNET_LABEL_ENV", raising=False)
    assert default_environment() == tmp_path / "home" / "label-env"
    assert default_app("glioma") == tmp_path / "home" / "label" / "glioma"
    monkeypatch.setenv("MEDNET_LABEL_ENV", str(tmp_path / "env"))
    assert default_environment() == tmp_path / "env"
    # torch pinned by arbitrary equality: a local "+cpu" build under the same number is never taken
    assert any(r.startswith("torch===") for r in REQUIREMENTS) and "monailabel==0.8.5" in REQUIREMENTS


def test_a_missing_environment_is_refused_with_what_to_do(tmp_path, capsys):
    environment = LabelEnvironment(tmp_path / "none")
    assert "mednet label setup" in environment.problem()
    with pytest.raises(LabelEnvironmentError, match="mednet label setup"):
        environment.require()
    code = main(["label", "serve", "--disease", "glioma", "--studies", str(tmp_path), "--env", str(tmp_path / "none")])
    assert code == 2
    assert "no MONAI Label environment" in capsys.readouterr().err


def test_app_serves_the_shipped_weights_and_keeps_retrained_ones(tmp_path):
    spec = disease_spec("glioma")
    if not spec.localisation.weights.is_file():
        pytest.skip("no shipped weights in this checkout")
    app = prepare_app("glioma", tmp_path / "app", echo=lambda line: None)
    record = json.loads((app / APP_FILE).read_text())
    assert record["disease"] == "glioma" and record["localisation"] == spec.localisation.name
    for bundle in (spec.localisation, spec.grading):
        served = app / "model" / bundle.name / "models" / "model.pt"
        assert file_sha256(served) == file_sha256(bundle.weights) == record["weights_sha256"][bundle.name]
        assert (app / "model" / bundle.name / "configs" / "train.json").is_file()
    assert "mednet.label.app" in (app / "main.py").read_text()
    # weights the annotators retrained there are served again ...
    served = app / "model" / spec.localisation.name / "models" / "model.pt"
    served.write_bytes(b"retrained")
    lines: list[str] = []
    prepare_app("glioma", app, echo=lines.append)
    assert served.read_bytes() == b"retrained" and "reused" in lines[0]
    # ... unless a fresh copy is asked for
    prepare_app("glioma", app, fresh=True, echo=lines.append)
    assert file_sha256(served) == file_sha256(spec.localisation.weights) and "--fresh" in lines[-2]


def test_settings_of_a_run_are_written_into_the_copied_configs(tmp_path):
    config = tmp_path / "inference.json"
    config.write_text(json.dumps({"roi_size": [96, 96, 32], "network_def": {"channels": [16, 32]}, "other": 1}))
    _set_entries(config, {"roi_size": [64, 64, 16], "network_def#channels": [8, 16], "network_def#absent": 3})
    data = json.loads(config.read_text())
    assert data["roi_size"] == [64, 64, 16] and data["network_def"] == {"channels": [8, 16]} and data["other"] == 1


def test_cases_are_stacked_once_and_a_stacked_folder_is_served_as_it_is(cohort, tmp_path):
    sequences = list(disease_spec("glioma").localisation.sequences)
    lines: list[str] = []
    studies = prepare_studies(cohort, "glioma", tmp_path / "app", echo=lines.append)
    assert studies == tmp_path / "app" / "studies"
    stacked = sorted(studies.glob("*.nii.gz"))
    complete = sorted(p for p in cohort.iterdir() if p.is_dir() and len(list(p.glob("*_flair.nii.gz"))))
    assert [p.name.split(".")[0] for p in stacked] == [p.name for p in complete]
    assert any("not served" in line and "flair" in line.lower() for line in lines), lines
    for path in stacked:
        image = nib.load(path)
        case = cohort / path.name.split(".")[0]
        for channel, key in enumerate(sequences):
            source = nib.load(next(case.glob(f"*_{key}.nii.gz")))
            assert image.shape == (*source.shape, len(sequences))
            assert np.allclose(image.affine, source.affine, atol=1e-5)
            assert np.allclose(np.asarray(image.dataobj)[..., channel], np.asarray(source.dataobj), atol=1e-3)
    # a second call keeps what was stacked; a folder of stacked studies is served as it is
    before = {p: p.stat().st_mtime_ns for p in stacked}
    prepare_studies(cohort, "glioma", tmp_path / "app", echo=lines.append)
    assert {p: p.stat().st_mtime_ns for p in stacked} == before
    assert prepare_studies(studies, "glioma", tmp_path / "other", echo=lines.append) == studies
    assert not (tmp_path / "other" / "studies").exists()


def test_studies_that_are_not_cases_are_refused_by_name(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(Exception, match=str(tmp_path)):
        prepare_studies(tmp_path, "glioma", tmp_path / "app", echo=lambda line: None)
