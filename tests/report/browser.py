"""Open an HTML page in headless Chromium and report what rendered (tests only)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

#: Injected into a copy of the page: once everything has loaded, the table's cells and
#: whether each image decoded, written into the DOM for --dump-dom to carry out.
_PROBE = """<script>
window.addEventListener('load', () => {
  const images = [...document.images];
  const table = document.getElementById('cases');
  const probe = {
    images: images.length,
    decoded: images.filter(i => i.complete && i.naturalWidth > 0).length,
    shown: images.filter(i => i.getBoundingClientRect().height > 0).length,
    table_height: table ? table.getBoundingClientRect().height : 0,
    rows: table ? [...table.rows].map(r => [...r.cells].map(c => c.innerText.trim())) : [],
    headings: [...document.querySelectorAll('h1, h2')].map(h => h.innerText),
  };
  const pre = document.createElement('pre');
  pre.id = 'mednet-probe';
  pre.textContent = JSON.stringify(probe);
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str | None:
    """The Chromium executable, or None."""
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def render(page: Path, work: Path, executable: str, probe: str = _PROBE, size: str = "1400,1000") -> tuple[dict, Path]:
    """Load ``page`` (a copy with the probe, beside the original so relative links hold); the probe and a screenshot.

    ``probe``: a script that writes its findings as JSON into ``<pre id="mednet-probe">``;
    ``size``: the window, ``width,height``, for both the probe and the screenshot.
    """
    probed = page.with_name(f".probe_{page.name}")
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", probe + "</body>"), encoding="utf-8")
    flags = [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--virtual-time-budget=10000", f"--user-data-dir={work / 'profile'}", f"--window-size={size}"]  # fmt: skip
    try:
        dom = subprocess.run([*flags, "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120,
                             check=True).stdout  # fmt: skip
        screenshot = work / "report.png"
        subprocess.run([*flags, f"--screenshot={screenshot}", page.as_uri()],
                       capture_output=True, timeout=120, check=True)  # fmt: skip
    finally:
        probed.unlink()
    found = re.search(r'<pre id="mednet-probe">(.*?)</pre>', dom, re.S)
    assert found, f"the probe did not run; DOM starts {dom[:500]!r}"
    return json.loads(html.unescape(found.group(1))), screenshot
