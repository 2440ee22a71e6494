"""report.html in headless Chromium at 1280 px: fits, sorts, opens a case's details, thumbnails decode."""

from __future__ import annotations

import pytest
from matplotlib.image import imread

from mednet.pipeline.summary import summary_row
from mednet.report.html import write_report
from tests.report.browser import chromium, render
from tests.report.cohort import SEQUENCES, make_cohort

#: Once loaded: the page's width against the window's, the table sorted by volume (two clicks: descending),
#: the details a case link opens, the images decoded.
_PROBE = """<script>
window.addEventListener('load', () => {
  const table = document.getElementById('cases');
  const ids = () => [...table.tBodies[0].rows].map(r => r.cells[0].innerText.trim());
  const before = ids();
  const volume = [...table.tHead.rows[0].cells].find(h => h.innerText.startsWith('volume'));
  volume.click(); const ascending = ids(); volume.click(); const descending = ids();
  table.querySelector('a[href="#case-TIE_1"]').click();
  const images = [...document.images];
  const probe = {
    window: window.innerWidth, page: document.documentElement.scrollWidth,
    table_right: table.getBoundingClientRect().right,
    before, ascending, descending,
    opened: [...document.querySelectorAll('details.case')].filter(d => d.open).map(d => d.id),
    images: images.length, decoded: images.filter(i => i.complete && i.naturalWidth > 0).length,
    thumb_width: Math.max(...images.filter(i => i.className === 'thumb').map(i => i.naturalWidth)),
  };
  const pre = document.createElement('pre');
  pre.id = 'mednet-probe';
  pre.textContent = JSON.stringify(probe);
  document.body.appendChild(pre);
});
</script>"""


def test_report_fits_1280_pixels_sorts_and_opens_details(tmp_path):
    executable = chromium()
    if executable is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    out = tmp_path / "out"
    records = make_cohort(out, tmp_path / "inputs")
    rows = [summary_row(r, k, SEQUENCES) for k, r in records.items()]
    rows.append(summary_row(None, "BAD_4", [], "/a/very/long/path/to/an/input/that/was/not/there/BAD_4_t2.nii.gz: "
                                               "file not found"))  # fmt: skip
    page = write_report(out / "report.html", "mednet cpa", rows, SEQUENCES, records=records)
    probe, screenshot = render(page, tmp_path, executable, probe=_PROBE, size="1280,1800")
    assert probe["window"] == 1280 and probe["page"] <= 1280 and probe["table_right"] <= 1280  # nothing cut off
    assert probe["before"] == ["TIE_1", "UNSURE_2", "HUGE_3", "BAD_4"]
    assert probe["ascending"] == ["UNSURE_2", "TIE_1", "HUGE_3", "BAD_4"]  # 1.4, 2.6, 1881 ml; no volume last
    assert probe["descending"] == ["HUGE_3", "TIE_1", "UNSURE_2", "BAD_4"]
    assert probe["opened"] == ["case-TIE_1"]
    assert probe["images"] == probe["decoded"] == 3 and probe["thumb_width"] == 300
    pixels = imread(screenshot)
    assert pixels.shape[1] == 1280 and pixels[..., :3].std() > 0.05
