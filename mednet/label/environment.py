"""MONAI Label's own Python environment: made once (``mednet label setup``), found by ``mednet label serve``.

MONAI Label 0.8.5 imports torchvision at start-up, and torchvision's wheels load only
against the torch build they were made for; a CPU-only torch (as mednet's own environment
may have) cannot serve. So MONAI Label gets a virtual environment of its own, made with the
user's own pip settings (index, mirrors, certificates, proxies): :data:`REQUIREMENTS`, where
``torch===`` (PEP 440 arbitrary equality) asks for exactly the release torchvision was built
against, never a local ``+cpu`` build that a wheel folder may offer under the same number.

mednet is not installed there (pip would move MONAI Label's pins): the environment gets a
link to the mednet package that made it, so the bundles' configs, which name mednet's
transforms, import the same code; ``mednet label setup`` run again refreshes the link. The
environment lives at :func:`default_environment` (``$MEDNET_HOME/label-env``) unless told
otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import mednet
from mednet.errors import MednetError
from mednet.paths import mednet_home

__all__ = ["REQUIREMENTS", "LabelEnvironment", "LabelEnvironmentError", "default_environment", "setup_environment"]

#: What MONAI Label's environment gets, in one pip call. The pins on pydicom 2 (and the
#: dicomweb-client and pynetdicom that accept it) are what monailabel 0.8.5 needs to import
#: (pydicom-seg fails with pydicom 3); checked recipe in the project's ENVIRONMENT notes.
REQUIREMENTS = (
    "torch===2.13.0",
    "torchvision==0.28.0",
    "monailabel==0.8.5",
    "pydicom<3",
    "dicomweb-client[gcp]<0.60",
    "pynetdicom<3",
)
#: The environment variable that names MONAI Label's environment (as ``--env`` does).
ENV_VARIABLE = "MEDNET_LABEL_ENV"
#: The folder, inside the environment, that holds the link to the mednet package.
_LINK_DIR = "mednet-link"
#: What must import in the environment for a server to start.
_CHECK = "import monailabel, torchvision, mednet.transforms, mednet.label.app; print(monailabel.__version__)"


class LabelEnvironmentError(MednetError, RuntimeError):
    """MONAI Label's environment is missing, broken, or could not be made."""


def default_environment() -> Path:
    """``$MEDNET_LABEL_ENV`` when set, else ``$MEDNET_HOME/label-env``."""
    value = os.environ.get(ENV_VARIABLE, "").strip()
    return Path(value).expanduser() if value else mednet_home() / "label-env"


class LabelEnvironment:
    """A MONAI Label environment folder (a virtual environment).

    Args:
        root: the environment's folder (default :func:`default_environment`).
    """

    def __init__(self, root: os.PathLike | str | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_environment()

    @property
    def python(self) -> Path:
        """The environment's Python interpreter."""
        return self.root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

    @property
    def monailabel(self) -> Path:
        """The ``monailabel`` command."""
        return self.root / ("Scripts/monailabel.exe" if os.name == "nt" else "bin/monailabel")

    @property
    def sample_apps(self) -> Path:
        """Where setup copies MONAI Label's sample apps (``monaibundle`` among them)."""
        return self.root / "apps"

    def problem(self) -> str | None:
        """Why the environment cannot serve (one line), or ``None`` when it can."""
        if not self.python.is_file() or not self.monailabel.is_file():
            return f"no MONAI Label environment at {self.root}: run `mednet label setup` (about 5 GB to download)"
        done = subprocess.run([str(self.python), "-c", _CHECK], capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            return f"the MONAI Label environment at {self.root} does not import ({last}): run `mednet label setup`"
        if not (self.sample_apps / "monaibundle" / "main.py").is_file():
            return f"the MONAI Label environment at {self.root} lacks its sample app: run `mednet label setup` again"
        return None

    def require(self) -> LabelEnvironment:
        """``self``, or :class:`LabelEnvironmentError` saying what to do."""
        problem = self.problem()
        if problem:
            raise LabelEnvironmentError(problem)
        return self

    def server_env(self) -> dict[str, str]:
        """Environment variables for processes of this environment (its ``bin`` first on ``PATH``)."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "VIRTUAL_ENV", "PYTHONPATH")}
        env["PATH"] = f"{self.python.parent}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.root)
        return env


def _run(command: list[str], echo: Callable[[str], None], env: dict[str, str] | None = None) -> None:
    echo("$ " + " ".join(command))
    done = subprocess.run(command, env=env)
    if done.returncode != 0:
        raise LabelEnvironmentError(f"`{' '.join(command)}` failed (exit {done.returncode}); see its output above")


def _site_packages(python: Path) -> Path:
    done = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return Path(done.stdout.strip())


def link_mednet(environment: LabelEnvironment) -> Path:
    """Make the environment import this mednet package (a link and a ``.pth`` file); the link's folder."""
    package = Path(mednet.__file__).resolve().parent
    folder = environment.root / _LINK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "mednet"
    if link.is_symlink() or link.exists():
        if link.is_symlink() and link.resolve() == package:
            return folder
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)
        else:
            link.unlink()
    try:
        link.symlink_to(package, target_is_directory=True)
    except OSError:  # no symlinks (some Windows set-ups): a copy, refreshed by each setup
        shutil.copytree(package, link, ignore=shutil.ignore_patterns("__pycache__"))
    (_site_packages(environment.python) / "mednet-link.pth").write_text(f"{folder}\n")
    return folder


def setup_environment(
    root: os.PathLike | str | None = None,
    echo: Callable[[str], None] = print,
    requirements: tuple[str, ...] = REQUIREMENTS,
) -> LabelEnvironment:
    """Make (or refresh) MONAI Label's environment; it is checked before this returns.

    Args:
        root: the environment's folder (default :func:`default_environment`).
        echo: where the commands run are printed.
        requirements: what pip installs (default :data:`REQUIREMENTS`).

    Returns:
        The ready environment.

    Raises:
        LabelEnvironmentError: a step failed (its command and exit code named).
    """
    environment = LabelEnvironment(root)
    if not environment.python.is_file():
        environment.root.parent.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "venv", str(environment.root)], echo)
    pip = [str(environment.python), "-m", "pip"]
    installed = subprocess.run([str(environment.python), "-c", "import monailabel, torchvision"], capture_output=True)
    if installed.returncode != 0:
        _run([*pip, "install", *requirements], echo)
    link_mednet(environment)
    apps = environment.sample_apps
    if not (apps / "monaibundle" / "main.py").is_file():
        _run([str(environment.monailabel), "apps", "--download", "--name", "monaibundle", "--output", str(apps)],
             echo, env=environment.server_env())  # fmt: skip
    environment.require()
    echo(f"MONAI Label environment ready: {environment.root}")
    return environment
