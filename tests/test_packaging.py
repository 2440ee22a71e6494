"""An installed mednet (a wheel, not a clone) carries its bundles, their reference weights, and finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_carries_the_bundles(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, cwd=tmp_path)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("mednet-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        z.extractall(tmp_path / "site")
    bundles = sorted(p.name for p in (ROOT / "bundles").iterdir() if (p / "configs" / "metadata.json").is_file())
    for name in bundles:
        for part in ("configs/metadata.json", "configs/inference.json", "docs/README.md", "LICENSE"):
            assert f"mednet/_bundles/{name}/{part}" in names
    shipped = sorted(f"mednet/_bundles/{p.relative_to(ROOT / 'bundles').as_posix()}"
                     for p in (ROOT / "bundles").glob("*/models/model.pt"))  # fmt: skip
    assert sorted(n for n in names if n.endswith((".pt", ".ts"))) == shipped  # the reference weights, nothing else
    assert not [n for n in names if "/eval/" in n or "/predictions/" in n]
    found = subprocess.run([sys.executable, "-c", "import mednet.bundles as b; print(b.BUNDLES_DIR); "
                            "print(','.join(b.list_bundles()))"], capture_output=True, text=True, check=True,
                           cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site")})  # fmt: skip
    where, listed = found.stdout.splitlines()
    assert Path(where) == (tmp_path / "site" / "mednet" / "_bundles").resolve() and listed.split(",") == bundles
