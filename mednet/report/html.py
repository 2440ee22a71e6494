"""The cohort's ``report.html``: one self-contained page, openable from disk without a server.

A table with one row per case: its status, the diagnosis (fused class and probability),
each sequence's probability, the fusion rule, the lesion count and volume, and the
overview thumbnail embedded as a data URI (so that the page can be mailed or moved on
its own). Failed cases are listed with their error. When metrics were computed, their
headline figures with 95% confidence intervals come first.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["write_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.5em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: middle; text-align: left; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td { background: #fde8e8; }
img.thumb { height: 240px; display: block; }
.note { color: #555; font-size: 0.9em; max-width: 60em; }
"""


def _img(base: Path, relative: str) -> str:
    """The overview embedded as a data URI, linked to its file (relative to the page)."""
    path = base / relative
    if not path.is_file():
        return "<em>no overview</em>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    image = f'<img class="thumb" alt="overview" src="data:image/png;base64,{data}">'
    return f'<a href="{html.escape(Path(relative).as_posix())}">{image}</a>'


def _fmt(value, digits: int = 3) -> str:
    if value is None or value == "":
        return ""
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return html.escape(str(value))


def _metrics_section(metrics: Mapping | None) -> str:
    if not metrics:
        return ""
    rows = []
    for stage, figures in metrics.get("headline", {}).items():
        for name, f in figures.items():
            ci = f"{_fmt(f.get('ci_low'))} to {_fmt(f.get('ci_high'))}" if f.get("ci_low") is not None else ""
            rows.append(f"<tr><td>{html.escape(stage)}</td><td>{html.escape(name)}</td>"
                        f"<td class='num'>{_fmt(f.get('value'))}</td><td>{ci}</td>"
                        f"<td class='num'>{f.get('n', '')}</td></tr>")  # fmt: skip
    return ("<h2>Metrics (patient level, 95% bootstrap CI)</h2><table><tr><th>stage</th><th>figure</th>"
            "<th>value</th><th>95% CI</th><th>n</th></tr>" + "".join(rows) + "</table>")  # fmt: skip


def write_report(
    out: os.PathLike | str,
    title: str,
    rows: Sequence[Mapping],
    sequences: Sequence[str],
    metrics: Mapping | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write ``report.html`` (atomically).

    Args:
        out: the HTML file.
        title: the page title (e.g. the disease and the run's date).
        rows: one per case, the summary rows (``case_id``, ``status``, ``error``,
            ``fused_class``, ``fused_probability``, ``p_<sequence>``, ``fusion``,
            ``lesions``, ``lesion_volume_ml``, ``overview``: path relative to ``out``'s folder).
        sequences: the sequences whose probabilities get a column.
        metrics: ``{"headline": {stage: {figure: {"value", "ci_low", "ci_high", "n"}}}}``.
        notes: paragraphs shown under the title (e.g. research-use-only, fusion notes).

    Returns:
        The path written.
    """
    out = Path(out)
    base = out.parent
    head = ["case", "status", "diagnosis", "fused p", *[f"p {s}" for s in sequences], "fusion", "lesions",
            "lesion volume (ml)", "overview"]  # fmt: skip
    body = []
    for r in rows:
        failed = r.get("status") != "ok"
        cells = [html.escape(str(r.get("case_id", ""))),
                 html.escape(str(r.get("status", ""))) + (f"<br><small>{html.escape(str(r.get('error', '')))}</small>"
                                                          if r.get("error") else ""),
                 f"<b>{html.escape(str(r.get('fused_class') or ''))}</b>",
                 _fmt(r.get("fused_probability")),
                 *[_fmt(r.get(f"p_{s}")) for s in sequences],
                 html.escape(str(r.get("fusion") or "")),
                 _fmt(r.get("lesions"), 0),
                 _fmt(r.get("lesion_volume_ml"), 2),
                 _img(base, r["overview"]) if r.get("overview") else ""]  # fmt: skip
        numeric = {
            3,
            *range(4, 4 + len(sequences)),
            5 + len(sequences),
            6 + len(sequences),
        }  # p, p_<seq>, lesions, volume
        tds = "".join(f"<td class='num'>{c}</td>" if i in numeric else f"<td>{c}</td>" for i, c in enumerate(cells))
        body.append(f"<tr class='{'failed' if failed else 'ok'}'>{tds}</tr>")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            + "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes)
            + _metrics_section(metrics)
            + f"<h2>Cases ({len(rows)})</h2><table id='cases'><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
            + "".join(body) + "</table></body></html>\n")  # fmt: skip
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out
