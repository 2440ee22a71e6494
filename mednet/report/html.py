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

from mednet.io.atomic import write_text_atomic

__all__ = ["write_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.5em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: middle; text-align: left; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td { background: #fde8e8; }
img.thumb { max-height: 260px; max-width: 640px; display: block; }
.note { color: #555; font-size: 0.9em; max-width: 60em; }
.wrong { color: #b00020; font-weight: bold; }
.unsure { color: #8a5a00; font-weight: bold; font-style: italic; }
.flag { color: #b00020; font-size: 0.85em; }
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
            ``call`` (the class or ``indeterminate``), ``why_indeterminate``, ``fused_class``,
            ``fused_probability``, ``p_<sequence>``, ``fusion``, ``lesions``, ``lesion_volume_ml``,
            ``flags`` (implausible outputs), ``overview``: path relative to ``out``'s folder).
        sequences: the sequences whose probabilities get a column.
        metrics: ``{"headline": {stage: {figure: {"value", "ci_low", "ci_high", "n"}}}}``.
        notes: paragraphs shown under the title (e.g. research-use-only, fusion notes).

    Returns:
        The path written.
    """
    out = Path(out)
    base = out.parent
    truth = any(r.get("true_class") for r in rows)

    def status(r: Mapping) -> str:
        error = r.get("error")
        return html.escape(str(r.get("status", ""))) + (
            f"<br><small>{html.escape(str(error))}</small>" if error else ""
        )

    def true_class(r: Mapping) -> str:
        known, called = r.get("true_class") or "", r.get("fused_class") or ""
        wrong = known and called and known != called
        return f"<span class='wrong'>{html.escape(known)}</span>" if wrong else html.escape(known)

    def diagnosis(r: Mapping) -> str:
        decided, call = str(r.get("fused_class") or ""), str(r.get("call") or r.get("fused_class") or "")
        if call == "indeterminate":  # an unsure call is not shown as a class
            why = html.escape(str(r.get("why_indeterminate") or ""))
            return (f"<span class='unsure'>indeterminate</span><br><small>leaning {html.escape(decided)}, "
                    f"p {_fmt(r.get('fused_probability'))}; {why}</small>")  # fmt: skip
        return f"<b>{html.escape(call)}</b>"

    def flags(r: Mapping) -> str:
        return f"<span class='flag'>{html.escape(str(r['flags']))}</span>" if r.get("flags") else ""

    columns = [  # (header, cell, numeric)
        ("case", lambda r: html.escape(str(r.get("case_id", ""))), False),
        ("status", status, False),
        ("diagnosis", diagnosis, False),
        *([("truth", true_class, False)] if truth else []),
        ("p fused", lambda r: _fmt(r.get("fused_probability")), True),
        *[(f"p {s}", lambda r, s=s: _fmt(r.get(f"p_{s}")), True) for s in sequences],
        ("fusion", lambda r: html.escape(str(r.get("fusion") or "")), False),
        ("lesions", lambda r: _fmt(r.get("lesions"), 0), True),
        ("lesion volume (ml)", lambda r: _fmt(r.get("lesion_volume_ml"), 2), True),
        ("check", flags, False),
        ("overview", lambda r: _img(base, r["overview"]) if r.get("overview") else "", False),
    ]
    head = [c[0] for c in columns]
    body = []
    for r in rows:
        tds = "".join(f"<td class='num'>{cell(r)}</td>" if numeric else f"<td>{cell(r)}</td>"
                      for _, cell, numeric in columns)  # fmt: skip
        body.append(f"<tr class='{'ok' if r.get('status') == 'ok' else 'failed'}'>{tds}</tr>")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            + "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes)
            + _metrics_section(metrics)
            + f"<h2>Cases ({len(rows)})</h2><p class='note'>p columns: the probability the fusion and each "
              "sequence's classifier give to the case's diagnosis; a truth in red differs from it. "
              "Click an overview for the full image.</p>"
            + "<table id='cases'><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
            + "".join(body) + "</table></body></html>\n")  # fmt: skip
    return write_text_atomic(out, page)
