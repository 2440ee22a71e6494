"""``mednet label serve``: a disease's bundles, weights and studies made into a MONAI Label app, and the server.

:func:`prepare_app` makes the app folder (default ``$MEDNET_HOME/label/<disease>``):

- ``model/<bundle>/`` for the localisation and the grading bundle: copies of mednet's
  bundles with the weights to serve (the shipped reference weights, or a ``mednet train``
  run's, with the settings that run's networks need written into the copies' configs);
- ``main.py`` (the app class is :class:`mednet.label.app.MednetApp`) and ``mednet-app.json``
  (disease, bundles, where the weights came from and their SHA-256).

An app folder is kept between serves: the weights the annotators retrained there are
served again, unless the weights it was made from changed (``--models`` another run, a new
mednet release) or ``fresh`` is asked for; then the models are copied again, and the
console says so.

:func:`prepare_studies` gives MONAI Label one stacked NIfTI per case (channels last, the
localisation bundle's sequences in order): a folder of such files is served as it is;
anything ``mednet predict -i`` reads (case folders, ``<case>_<sequence>`` files, a datalist)
is stacked once into ``APP/studies``.

:func:`start_server` starts ``monailabel start_server`` from MONAI Label's own environment
(:mod:`mednet.label.environment`) on ``127.0.0.1`` by default.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import mednet
from mednet.errors import MednetError
from mednet.io.atomic import write_json_atomic, write_text_atomic
from mednet.label.environment import LabelEnvironment
from mednet.paths import mednet_home

__all__ = [
    "LabelServeError",
    "default_app",
    "prepare_app",
    "prepare_studies",
    "start_server",
    "stop_server",
    "wait_until_ready",
]

APP_FILE = "mednet-app.json"  # the same name mednet.label.app reads (that module imports monailabel)
_MAIN = '''"""MONAI Label app made by `mednet label serve`: the app class lives in mednet."""

from mednet.label.app import MednetApp  # noqa: F401  (MONAI Label finds the MONAILabelApp subclass here)
'''


class LabelServeError(MednetError, RuntimeError):
    """The app, its studies or the server could not be prepared or started."""


def default_app(disease: str) -> Path:
    """``$MEDNET_HOME/label/<disease>``: where ``mednet label serve`` keeps a disease's app."""
    return mednet_home() / "label" / disease


def _set_entries(config: Path, overrides: Mapping[str, object]) -> None:
    """Write ``overrides`` (``key`` or ``a#b`` paths, as MONAI's ConfigParser names them) into a JSON config."""
    data = json.loads(config.read_text())
    for key, value in overrides.items():
        *parents, last = key.split("#")
        node = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and (parents == [] or last in node):
            node[last] = value
    write_json_atomic(config, data, indent=4)


def _weights_source(spec, models: os.PathLike | str | None) -> tuple[dict[str, Path], dict[str, dict], str]:
    """Bundle name -> checkpoint to serve, bundle name -> config settings, and a description of the source."""
    if models is not None:
        from mednet.training.train import run_models, run_settings

        return run_models(models, spec.name), run_settings(models, spec.name), f"mednet train run {Path(models)}"
    weights = {b.name: b.weights for b in (spec.localisation, spec.grading)}
    absent = [str(p) for p in weights.values() if not p.is_file()]
    if absent:
        raise LabelServeError(f"no weights shipped at {', '.join(absent)}: train with `mednet train --disease "
                              f"{spec.name} ...` and serve with --models RUN")  # fmt: skip
    return weights, {}, f"mednet {mednet.__version__} reference weights"


def prepare_app(
    disease: str,
    app: os.PathLike | str | None = None,
    models: os.PathLike | str | None = None,
    fresh: bool = False,
    echo: Callable[[str], None] = print,
) -> Path:
    """Make (or reuse) the MONAI Label app folder for ``disease``; its path.

    Args:
        disease: ``glioma``, ``cpa`` or ``neuroblastoma``.
        app: the app folder (default :func:`default_app`).
        models: a ``mednet train`` run to serve (default: the shipped reference weights).
        fresh: copy the models again even when the app was made from the same weights
            (drops weights the annotators retrained there).
        echo: where what was done is said.

    Raises:
        LabelServeError: no weights to serve.
        TrainingRunError: ``models`` is not a finished training run of ``disease``.
    """
    from mednet.bundles.archive import install_weights
    from mednet.checksum import file_sha256
    from mednet.pipeline.diseases import disease_spec

    spec = disease_spec(disease)
    app = Path(app).expanduser() if app is not None else default_app(spec.name)
    weights, settings, source = _weights_source(spec, models)
    wanted = {"disease": spec.name, "localisation": spec.localisation.name, "grading": spec.grading.name,
              "mednet_version": mednet.__version__, "source": source,
              "weights_sha256": {name: file_sha256(path) for name, path in weights.items()}}  # fmt: skip
    record = app / APP_FILE
    made = json.loads(record.read_text()) if record.is_file() else None
    model_dir = app / "model"
    if made == wanted and not fresh and all((model_dir / n / "models" / "model.pt").is_file() for n in weights):
        echo(f"app {app}: reused (weights from {source}; weights retrained there are kept; --fresh starts again)")
    else:
        if made is not None:
            echo(f"app {app}: models copied again ({'--fresh' if fresh else 'the weights to serve changed'})")
        shutil.rmtree(model_dir, ignore_errors=True)
        for bundle in (spec.localisation, spec.grading):
            target = model_dir / bundle.name
            shutil.copytree(bundle.path, target,
                            ignore=shutil.ignore_patterns("predictions", "eval", "__pycache__", "*.tmp"))  # fmt: skip
            if weights[bundle.name] != bundle.weights:
                for stale in (target / "models").glob("*"):
                    stale.unlink()
                install_weights(Path(weights[bundle.name]).parent, bundle.name, model_dir)
            for config in ("inference.json", "train.json"):
                if settings.get(bundle.name) and (target / "configs" / config).is_file():
                    _set_entries(target / "configs" / config, settings[bundle.name])
        echo(f"app {app}: {spec.localisation.name} and {spec.grading.name} with weights from {source}")
    write_text_atomic(app / "main.py", _MAIN)
    write_json_atomic(record, wanted, indent=2)
    return app


def _is_stacked_folder(folder: Path, channels: int) -> bool:
    """Whether ``folder`` holds only stacked studies: 4D NIfTI files with ``channels`` channels, no case folders."""
    import nibabel as nib

    files = [p for p in folder.iterdir() if p.is_file() and p.name.endswith((".nii", ".nii.gz"))]
    if not files or any(p.is_dir() and p.name != "labels" for p in folder.iterdir()):
        return False
    for path in files:
        try:
            shape = nib.load(path).shape
        except Exception:  # a file nibabel cannot read: not a studies folder
            return False
        if len(shape) != 4 or shape[3] != channels:
            return False
    return True


def prepare_studies(source: os.PathLike | str, disease: str, app: Path, echo: Callable[[str], None] = print) -> Path:
    """The studies folder to serve for ``source``.

    Args:
        source: a folder of stacked studies (served as it is; MONAI Label keeps the
            annotators' labels in its ``labels/``), or a folder of cases / a datalist (all
            partitions) that is stacked into ``app/studies`` (cases already there are kept).
        disease: the disease.
        app: the app folder.
        echo: where what was done is said (and every case that could not be stacked, why).

    Raises:
        LabelServeError: no case could be stacked.
    """
    from mednet.io.studies import write_stacked_case
    from mednet.pipeline.cohort import load_cases
    from mednet.pipeline.diseases import disease_spec

    spec = disease_spec(disease)
    sequences = list(spec.localisation.sequences)
    source = Path(source).expanduser()
    if source.is_dir() and _is_stacked_folder(source, len(sequences)):
        echo(f"studies {source}: {len(list(source.glob('*.nii*')))} stacked studies ({', '.join(sequences)})")
        return source
    try:
        cases = load_cases(source, "all", spec.sequences, spec.name)
    except (OSError, ValueError) as err:
        raise LabelServeError(f"--studies {source}: {err}") from None
    out = app / "studies"
    out.mkdir(parents=True, exist_ok=True)
    written, failed = 0, []
    for case in cases:
        target = out / f"{case['case_id']}.nii.gz"
        if target.is_file():
            written += 1
            continue
        try:
            write_stacked_case(case, sequences, target)
            written += 1
        except (MednetError, OSError, ValueError) as err:
            failed.append(f"{case['case_id']}: {err}")
    for line in failed:
        echo(f"studies: not served: {line}")
    if not written:
        raise LabelServeError(f"--studies {source}: no case could be stacked with {', '.join(sequences)}")
    echo(f"studies {out}: {written} cases stacked from {source} ({', '.join(sequences)} as channels)")
    return out


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def start_server(
    environment: LabelEnvironment,
    app: Path,
    studies: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    log: os.PathLike | str | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.Popen:
    """Start ``monailabel start_server`` for the app (in its own process group); the process.

    Args:
        environment: MONAI Label's environment (checked).
        app: the folder :func:`prepare_app` made.
        studies: the folder :func:`prepare_studies` gave.
        host: the address to listen on (default loopback only: MONAI Label has no log-in).
        port: the port.
        log: a file for the server's output (default: this console).
        extra_env: more environment variables for the server.
    """
    command = [str(environment.monailabel), "start_server", "--app", str(app), "--studies", str(studies),
               "--conf", "sam2", "false", "--conf", "zoo_source", "github",
               "--host", host, "--port", str(port)]  # fmt: skip
    env = {**environment.server_env(), "PYTHONWARNINGS": "ignore", **(extra_env or {})}
    stream = open(log, "w") if log else None  # noqa: SIM115 - the server writes to it while it runs
    try:
        return subprocess.Popen(command, env=env, stdout=stream, stderr=subprocess.STDOUT if stream else None,
                                start_new_session=True)  # fmt: skip
    finally:
        if stream:
            stream.close()


def wait_until_ready(url: str, process: subprocess.Popen, timeout: float = 300.0) -> dict:
    """Wait for the server's ``/info/``; its answer.

    Raises:
        LabelServeError: the server exited or did not answer within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/info/", timeout=10) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if process.poll() is not None:
                raise LabelServeError(f"MONAI Label exited (code {process.returncode}) before answering") from None
            if time.monotonic() > deadline:
                raise LabelServeError(f"MONAI Label did not answer at {url} within {timeout:.0f} s") from None
            time.sleep(2)


def stop_server(process: subprocess.Popen, timeout: float = 30.0) -> int | None:
    """Stop a server :func:`start_server` started (its whole process group); its exit code.

    SIGTERM first (MONAI Label shuts down cleanly), SIGKILL when it has not ended after ``timeout`` seconds.
    """
    import signal

    if process.poll() is not None:
        return process.returncode
    kill = (lambda sig: os.killpg(process.pid, sig)) if hasattr(os, "killpg") else (lambda sig: process.terminate())
    try:
        kill(signal.SIGTERM)
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(getattr(signal, "SIGKILL", signal.SIGTERM))
        return process.wait(timeout=timeout)
    except ProcessLookupError:
        return process.wait(timeout=timeout)
