"""The cohort's ``report.html``: self-contained pages, openable from disk without a server.

What a reader needs to judge each result, in one place:

- provenance first: mednet's version and git revision, the commands, each bundle's version,
  the SHA-256 of the weights the cases were made with and what those weights were trained
  on, PyTorch and MONAI versions, dates with their time zone, the inputs' checksums;
- the metrics with 95% confidence intervals, and their ROC and confusion images;
- a sortable table, one row per case: status, the call (an indeterminate one shown as such,
  with the class it leans to and its probability), the truth, every sequence's own call and
  probability, who decided a DL-MDT vote, lesion count and volume (an implausible volume
  marked), Dice when the truth is known, implausible outputs flagged, a small thumbnail
  (downscaled, embedded) linking to the full overview PNG;
- per case, a collapsible section: each class's probability per sequence, the fusion's
  votes and weights, the lesion table, the localisation scores, links to the label map,
  lesion table and inputs (with their SHA-256) and how to open them.

Large cohorts are split into pages of ``page_size`` cases (``report.html``,
``report_2.html``, ...), each page linking the others.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from mednet.io.atomic import write_text_atomic

__all__ = ["NEAR_CHANCE", "VOLUME_LIMITS_ML", "fusion_decision", "thumbnail", "volume_warnings", "write_report"]

#: A probability within this of chance (1 / number of classes) is marked "near chance".
NEAR_CHANCE = 0.05
#: Generous upper bounds of a single lesion's volume (ml) per disease; a larger lesion is
#: marked implausible in the report (a whole-tumour glioma volume above 400 ml, a
#: cerebellopontine-angle tumour above 150 ml, a neuroblastoma above 1000 ml, in a child,
#: is almost certainly a segmentation error).
VOLUME_LIMITS_ML = {"glioma": 400.0, "cpa": 150.0, "neuroblastoma": 1000.0}
#: Width in pixels of the thumbnails embedded in the table.
THUMB_WIDTH = 300

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1em; color: #222; max-width: 1260px; }
h1 { font-size: 1.35em; } h2 { font-size: 1.12em; margin-top: 1.4em; } h3 { font-size: 1em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 5px; vertical-align: top; text-align: left; }
th { background: #f0f0f0; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-order=asc]::after { content: " \\25B2"; }
table.sortable th[data-order=desc]::after { content: " \\25BC"; }
#cases { width: 100%; table-layout: auto; }
#cases td { overflow-wrap: anywhere; }
#cases td:first-child { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.failed td { background: #fde8e8; }
tr.flagged td:first-child { border-left: 5px solid #b00020; }
img.thumb { width: 230px; height: auto; display: block; }
img.metric { width: 300px; height: auto; margin: 0 8px 8px 0; }
div.figures { display: flex; flex-wrap: wrap; align-items: flex-start; margin-top: 0.6em; }
.note { color: #555; font-size: 0.9em; max-width: 70em; }
.wrong { color: #b00020; font-weight: bold; }
.unsure { color: #8a5a00; font-weight: bold; font-style: italic; }
.chance { color: #8a5a00; font-size: 0.85em; }
.flag { color: #b00020; font-size: 0.85em; font-weight: bold; }
.who { color: #444; font-size: 0.85em; }
code, .hash { font-family: ui-monospace, monospace; font-size: 0.85em; overflow-wrap: anywhere; }
details { margin: 0.3em 0; } details > summary { cursor: pointer; }
.case { border-top: 1px solid #ddd; padding: 0.2em 0; }
nav.pages { margin: 0.8em 0; } nav.pages a, nav.pages b { margin-right: 0.6em; }
dl.prov { display: grid; grid-template-columns: 14em 1fr; gap: 2px 12px; font-size: 0.9em; margin: 0; }
dl.prov dt { font-weight: bold; } dl.prov dd { margin: 0; overflow-wrap: anywhere; }
"""

#: Sortable tables: click a heading to sort by it (numbers as numbers, empty cells last).
_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(table => {
  const heads = [...table.tHead.rows[0].cells];
  heads.forEach((th, i) => th.addEventListener('click', () => {
    const asc = th.dataset.order !== 'asc';
    heads.forEach(h => delete h.dataset.order);
    th.dataset.order = asc ? 'asc' : 'desc';
    const key = row => {
      const cell = row.cells[i];
      const text = (cell.dataset.sort ?? cell.innerText).trim();
      const number = Number(text);
      return text === '' ? null : (Number.isNaN(number) ? text.toLowerCase() : number);
    };
    const body = table.tBodies[0];
    [...body.rows].map(row => [key(row), row]).sort(([x], [y]) => {
      if (x === null || y === null) return (x === null) - (y === null);
      const order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === 'number' ? -1 : 1);
      return asc ? order : -order;
    }).forEach(([, row]) => body.appendChild(row));
  }));
});
const openTarget = () => {
  const target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (target && target.tagName === 'DETAILS') target.open = true;
};
window.addEventListener('hashchange', openTarget);
document.querySelectorAll('a[href^="#case-"]').forEach(link => link.addEventListener('click', () => {
  const target = document.getElementById(link.getAttribute('href').slice(1));
  if (target) target.open = true;
}));
openTarget();
"""

_HOW_TO_OPEN = ("To look at a case in 3D, open its input and label map together: in 3D Slicer, File > Add Data, "
                "choose the input and the *_labels.nii.gz file and tick 'LabelMap' (Options) for the latter; in "
                "ITK-SNAP, File > Open Main Image (the input), then Segmentation > Open Segmentation (the "
                "*_labels.nii.gz file). The label map is on the input's own grid; *_labels.json lists its "
                "values and colours.")  # fmt: skip


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _fmt(value, digits: int = 3) -> str:
    if value is None or value == "":
        return ""
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return html.escape(str(value))


def _anchor(case_id: str) -> str:
    return "case-" + re.sub(r"[^A-Za-z0-9_.-]", "_", str(case_id))


def _href(target: os.PathLike | str, base: Path) -> str:
    """A link from a page in ``base`` to ``target``: relative when possible (the folder can move), else a file URI."""
    path = Path(target)
    if not path.is_absolute():
        return html.escape(path.as_posix(), quote=True)
    try:
        return html.escape(Path(os.path.relpath(path, base)).as_posix(), quote=True)
    except ValueError:  # another drive (Windows)
        return html.escape(path.as_uri(), quote=True)


def thumbnail(path: os.PathLike | str, width: int = THUMB_WIDTH) -> bytes | None:
    """A PNG downscaled to ``width`` pixels and reduced to 128 colours (a few tens of kB); None if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.width > width:
                image = image.resize((width, max(1, round(image.height * width / image.width))), Image.LANCZOS)
            buffer = io.BytesIO()
            image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(buffer, "PNG", optimize=True)
    except (OSError, ValueError):
        return None
    return buffer.getvalue()


def _embedded(base: Path, relative: str, css: str, alt: str, width: int = THUMB_WIDTH) -> str:
    """A downscaled copy of an image embedded as a data URI, linked to the full file (relative to the page)."""
    path = base / relative
    small = thumbnail(path, width) if path.is_file() else None
    if small is None:
        return f"<em>no {html.escape(alt)}</em>"
    data = base64.b64encode(small).decode("ascii")
    return (f'<a href="{_href(relative, base)}"><img class="{css}" alt="{html.escape(alt)}" '
            f'src="data:image/png;base64,{data}"></a>')  # fmt: skip


def _near_chance(p: float, classes: int) -> bool:
    return classes > 1 and abs(float(p) - 1.0 / classes) <= NEAR_CHANCE


def volume_warnings(disease: str | None, lesions: Sequence[Mapping]) -> list[str]:
    """The lesions whose volume is beyond :data:`VOLUME_LIMITS_ML` for ``disease``, in words with the numbers."""
    limit = VOLUME_LIMITS_ML.get(str(disease))
    if limit is None:
        return []
    return [f"lesion {lesion.get('lesion_id', '?')} ({lesion.get('class_name', '')}) is "
            f"{float(lesion['volume_ml']):.0f} ml, above {limit:.0f} ml: implausible for {disease}; check the label map"
            for lesion in _too_large(disease, lesions)]  # fmt: skip


def _too_large(disease: str | None, lesions: Sequence[Mapping]) -> list[Mapping]:
    limit = VOLUME_LIMITS_ML.get(str(disease))
    return [] if limit is None else [x for x in lesions if float(x.get("volume_ml") or 0.0) > limit]


def _as_class(vote, classes: Sequence[str]) -> str:
    return "no vote" if vote is None else str(classes[int(vote)])


def fusion_decision(record: Mapping) -> str:
    """Who decided a case's call, in words: the votes behind a DL-MDT decision, the rule's result otherwise.

    DL-MDT (two classes, negative first): each network and clinician votes; the weighted sum
    ``R`` of the positive votes decides, a tie (``R`` = 0.5) going to the positive class.
    """
    fusion = record.get("fusion") or {}
    fused = record.get("fused") or {}
    classes = list(fused)
    if fusion.get("method") != "dl_mdt" or len(classes) != 2:
        if fusion.get("method") == "vote" and fusion.get("vote_fraction"):
            fraction = fusion["vote_fraction"].get(record.get("fused_class"))
            return f"vote of the sequences: {_fmt(fraction, 2)} for {record.get('fused_class')}" if fraction else ""
        return f"{fusion.get('method')} of the sequences' probabilities" if fusion.get("method") else ""
    votes = fusion.get("votes") or {}
    networks = [s for s in votes if s in (record.get("sequences") or {})]
    readers = [s for s in votes if s not in networks]
    decided = str(record.get("fused_class"))
    score = float(fused.get(classes[1], 0.0))

    def side(names):
        return {_as_class(votes[n], classes) for n in names if votes[n] is not None}

    parts = [", ".join(f"{n} {_as_class(votes[n], classes)}" for n in group)
             for group in (networks, readers) if group]  # fmt: skip
    text = f"networks: {parts[0]}" if networks else ""
    if readers:
        said = ", ".join(f"{n} {_as_class(votes[n], classes)}" for n in readers)
        text += ("; " if text else "") + f"clinicians: {said}"
    tie = abs(score - 0.5) < 1e-6
    text += f"; R {score:.2f}" + (f" (a tie, which goes to {classes[1]})" if tie else "")
    nets, clinicians = side(networks), side(readers)
    if len(nets) == 1 and len(clinicians) == 1 and nets != clinicians:  # each side agreed within itself
        voted = [n for n in votes if votes[n] is not None]
        winner, loser = ("clinicians", set(networks)) if clinicians == {decided} else ("networks", set(readers))
        loser = loser & set(voted)
        losing = "networks" if winner == "clinicians" else "clinicians"
        text += f". The {winner} overruled {'both ' if len(loser) == 2 else ''}{losing}"
    elif nets | clinicians == {decided}:
        text += ". Unanimous"
    if fusion.get("missing"):
        text += f"; no vote from {', '.join(fusion['missing'])} (weights renormalised)"
    return text


class _Case:
    """One row's cells and its details section (from its summary row and, for a done case, its record)."""

    def __init__(self, row: Mapping, record: Mapping | None, sequences: Sequence[str], base: Path):
        self.row, self.record, self.sequences, self.base = row, record or {}, sequences, base
        self.case_id = str(row.get("case_id", ""))
        self.anchor = _anchor(self.case_id)
        lesions = self.record.get("lesions") or []
        self.volume_flags = volume_warnings(self.record.get("disease"), lesions)
        self.flags = [*(self.record.get("flags") or ([row["flags"]] if row.get("flags") else [])), *self.volume_flags]

    # cells -----------------------------------------------------------------------------------------
    def case(self) -> str:
        if self.record:
            return f"<a href='#{self.anchor}'>{_e(self.case_id)}</a>"
        return _e(self.case_id)

    def status(self) -> str:
        error = self.row.get("error")
        return _e(self.row.get("status", "")) + (f"<br><small>{_e(error)}</small>" if error else "")

    def diagnosis(self) -> str:
        r = self.row
        decided, call = str(r.get("fused_class") or ""), str(r.get("call") or r.get("fused_class") or "")
        if not decided:
            return "" if r.get("status") != "ok" else "<small>not graded</small>"
        p = r.get("fused_probability")
        if call == "indeterminate":  # an unsure call is not shown as a class
            why = _e(r.get("why_indeterminate") or "")
            return (f"<span class='unsure'>indeterminate</span><br><small>leaning {_e(decided)}, "
                    f"p {_fmt(p)}; {why}</small>")  # fmt: skip
        if (self.record.get("fusion") or {}).get("method") == "dl_mdt":  # a vote, not a probability: who decided
            return f"<b>{_e(call)}</b><br><span class='who'>{_e(fusion_decision(self.record))}</span>"
        classes = len(self.record.get("fused") or {}) or 2
        if p not in (None, "") and _near_chance(float(p), classes):
            return f"{_e(call)}<br><span class='chance'>near chance (p {_fmt(p, 2)}): no real call</span>"
        return f"<b>{_e(call)}</b>"

    def truth(self) -> str:
        known, called = self.row.get("true_class") or "", self.row.get("fused_class") or ""
        wrong = known and called and known != called
        return f"<span class='wrong'>{_e(known)}</span>" if wrong else _e(known)

    def sequence(self, s: str) -> tuple[str, str]:
        """A sequence's own call and its probability (sort key: that probability)."""
        probabilities = (self.record.get("sequences") or {}).get(s) or {}
        if not probabilities:
            missing = s in (self.record.get("missing_sequences") or [])
            return ("<small>missing</small>" if missing else ""), ""
        own = max(probabilities, key=probabilities.get)
        p = float(probabilities[own])
        every = ", ".join(f"{c} {float(v):.3f}" for c, v in probabilities.items())
        chance = "<br><span class='chance'>near chance</span>" if _near_chance(p, len(probabilities)) else ""
        return f"<span title='{_e(every)}'>{_e(own)} {p:.2f}</span>{chance}", f"{p:.4f}"

    def volume(self) -> tuple[str, str]:
        value = self.row.get("lesion_volume_ml")
        if value in (None, ""):
            return "", ""
        text = _fmt(value, 1)
        if self.volume_flags:
            return f"<span class='flag' title='{_e('; '.join(self.volume_flags))}'>&#9888; {text}</span>", str(value)
        return text, str(value)

    def dice(self) -> tuple[str, str]:
        scores = self.record.get("localisation_metrics") or {}
        value = scores.get("dice_lesions")
        return (_fmt(value), str(value)) if value is not None else ("", "")

    def check(self) -> str:
        if not self.flags:
            return ""
        return "".join(f"<div class='flag'>&#9888; {_e(f)}</div>" for f in self.flags)

    def overview(self) -> str:
        return _embedded(self.base, self.row["overview"], "thumb", "overview") if self.row.get("overview") else ""

    # details ---------------------------------------------------------------------------------------
    def details(self) -> str:
        r = self.record
        if not r:
            return ""
        case_id = self.case_id
        call = r.get("call") or r.get("fused_class") or "not graded"
        lesions = r.get("lesions") or []
        checks = f"; <span class='flag'>&#9888; {len(self.flags)} check(s)</span>" if self.flags else ""
        summary = f"{_e(case_id)}: {_e(call)}; {len(lesions)} lesion(s){checks}"
        parts = [self._grading(), self._lesions(lesions), self._scores(), self._files()]
        return (f"<details class='case' id='{self.anchor}'><summary>{summary}</summary>"
                + "".join(p for p in parts if p) + "</details>")  # fmt: skip

    def _grading(self) -> str:
        r = self.record
        sequences = r.get("sequences") or {}
        if not sequences:
            return f"<p class='note'>{_e(r.get('note') or 'not graded')}</p>"
        classes = list(next(iter(sequences.values())))
        head = "".join(f"<th>{_e(c)}</th>" for c in classes)

        def numbers(p: Mapping) -> str:
            return "".join(f"<td class='num'>{float(p.get(c, 0)):.3f}</td>" for c in classes)

        body = "".join(f"<tr><td>{_e(s)}</td>{numbers(p)}<td>{_e(max(p, key=p.get))}</td></tr>"
                       for s, p in sequences.items())  # fmt: skip
        body += f"<tr><td><b>fused</b></td>{numbers(r.get('fused') or {})}<td><b>{_e(r.get('call'))}</b></td></tr>"
        fusion = r.get("fusion") or {}
        lines = [f"Fusion: {_e(fusion.get('method'))}. {_e(fusion_decision(r))}"]
        if fusion.get("reasons"):
            lines.append("Indeterminate: " + _e("; ".join(fusion["reasons"])))
        if fusion.get("weights"):
            lines.append("Weights: " + _e(", ".join(f"{k} {float(v):.2f}" for k, v in fusion["weights"].items())))
        if r.get("ood_check"):
            lines.append(f"Feature-distance check: {_e(r['ood_check'])}")
        if r.get("note"):
            lines.append(f"Note: {_e(r['note'])}")
        return (f"<h3>Grading ({_e(r.get('slices'))} slices, {_e(r.get('aggregation'))} per sequence)</h3>"
                f"<table><tr><th>sequence</th>{head}<th>call</th></tr>{body}</table>"
                + "".join(f"<p class='note'>{line}</p>" for line in lines))  # fmt: skip

    def _lesions(self, lesions: Sequence[Mapping]) -> str:
        if not lesions:
            return "<p class='note'>No lesion found.</p>"
        flagged = {str(x.get("lesion_id")) for x in _too_large(self.record.get("disease"), lesions)}
        rows = "".join(
            f"<tr><td class='num'>{_e(x.get('lesion_id'))}</td><td>{_e(x.get('class_name'))}</td>"
            f"<td class='num'>{'<span class=flag>&#9888; ' if str(x.get('lesion_id')) in flagged else ''}"
            f"{_fmt(x.get('volume_ml'), 2)}{'</span>' if str(x.get('lesion_id')) in flagged else ''}</td>"
            f"<td class='num'>{_fmt(x.get('largest_diameter_mm'), 1)}</td>"
            f"<td class='num'>{_fmt(x.get('centroid_x_mm'), 1)}, {_fmt(x.get('centroid_y_mm'), 1)}, "
            f"{_fmt(x.get('centroid_z_mm'), 1)}</td><td class='num'>{_fmt(x.get('mean_probability'), 2)}</td>"
            f"<td>{_e(x.get('host_organ') or '')}</td><td>{_e(x.get('compartment') or '')}</td></tr>"
            for x in lesions)  # fmt: skip
        return (f"<details><summary>Lesion table ({len(lesions)} lesion(s))</summary>"
                "<table class='sortable lesions'><thead><tr><th>id</th><th>class</th><th>volume (ml)</th>"
                "<th>largest diameter (mm)</th><th>centroid x, y, z (mm, world)</th><th>mean probability</th>"
                f"<th>host organ</th><th>compartment</th></tr></thead><tbody>{rows}</tbody></table></details>")

    def _scores(self) -> str:
        scores = self.record.get("localisation_metrics")
        if not scores:
            return ""
        cells = "; ".join(f"{_e(k)} {_fmt(v, 3) if isinstance(v, float) else _e(v)}" for k, v in scores.items())
        return f"<p class='note'>Localisation against the truth: {cells}</p>"

    def _files(self) -> str:
        r, case_id = self.record, self.case_id
        folder = self.base / case_id
        own = [(f"{case_id}/{r.get('labels') or f'{case_id}_labels.nii.gz'}", "label map"),
               (f"{case_id}/{case_id}_labels.json", "label table"),
               (f"{case_id}/{case_id}_lesions.csv", "lesion table"),
               (f"{case_id}/{case_id}_overview.png", "overview"), (f"{case_id}/{case_id}.json", "record")]  # fmt: skip
        links = [f"<a href='{_href(rel, self.base)}'>{_e(what)}</a>" for rel, what in own if (self.base / rel).exists()]
        sums = r.get("inputs_sha256") or {}
        inputs = []
        read = {**(r.get("inputs") or {}), **({"label": r["reference_label"]} if r.get("reference_label") else {})}
        for key, path in read.items():
            check = sums.get(key) or {}
            listed = f"file list {check['file_list_sha256']}" if check.get("file_list_sha256") else ""
            digest = check.get("sha256") or listed
            said = f" <span class='hash'>SHA-256 {_e(digest)}</span>" if digest else " (no checksum recorded)"
            inputs.append(f"<li>{_e(key)}: <a href='{_href(path, folder.parent)}'>{_e(path)}</a>{said}</li>")
        return (f"<p class='note'>Files: {' &middot; '.join(links)}</p><p class='note'>Inputs:</p><ul class='note'>"
                + "".join(inputs) + "</ul>")  # fmt: skip


def _provenance_section(provenance: Mapping | None) -> str:
    if not provenance:
        return ""
    report = provenance.get("report") or {}
    made = provenance.get("predicted_with") or {}
    items = []

    def item(name: str, value) -> None:
        if value not in (None, "", []):
            items.append(f"<dt>{_e(name)}</dt><dd>{value}</dd>")

    def listed(values) -> str:
        return "<br>".join(f"<code>{_e(v)}</code>" for v in values)

    item("mednet (predict)", ", ".join(_e(v) for v in made.get("mednet") or []) or None)
    item("git revision (predict)", listed(made.get("git") or []) or None)
    item("command (predict)", listed(made.get("command") or []) or None)
    if made.get("first"):
        item("predicted", _e(made["first"]) + (f" to {_e(made['last'])}" if made.get("last") != made["first"] else ""))
    if made.get("torch"):
        item("PyTorch, MONAI (predict)", _e(", ".join(made["torch"])) + "; " + _e(", ".join(made.get("monai") or [])))
    for bundle in provenance.get("bundles") or []:
        sums = bundle.get("weights_sha256") or []
        match = bundle.get("reference_sha256_matches")
        check = ("" if match is None else " (matches the training record)" if match
                 else " <span class='flag'>&#9888; differs from the training record's</span>")  # fmt: skip
        item(f"bundle {bundle['name']}",
             f"version {_e(bundle.get('version'))}; weights SHA-256 "
             + (listed(sums) if sums else "<em>none recorded</em>") + check
             + f"<br>trained on: {_e(bundle.get('trained_on'))}")  # fmt: skip
    item("inputs", f"SHA-256 of each input file recorded for {provenance.get('inputs_checked', 0)} of "
                   f"{provenance.get('cases', 0)} cases (see each case's section and record)")  # fmt: skip
    item("this report", f"{_e(report.get('time'))}, mednet {_e(report.get('mednet'))}"
                        + (f" ({_e(report.get('git'))})" if report.get("git") else "")
                        + f", PyTorch {_e(report.get('torch'))}, MONAI {_e(report.get('monai'))}, "
                          f"Python {_e(report.get('python'))}; <code>{_e(report.get('command'))}</code>")  # fmt: skip
    return "<h2>Provenance</h2><dl class='prov'>" + "".join(items) + "</dl>"


def _metrics_section(metrics: Mapping | None, images: Sequence[os.PathLike | str], base: Path) -> str:
    if not metrics:
        return ""
    rows = []
    for stage, figures in metrics.get("headline", {}).items():
        for name, f in figures.items():
            ci = f"{_fmt(f.get('ci_low'))} to {_fmt(f.get('ci_high'))}" if f.get("ci_low") is not None else ""
            rows.append(f"<tr><td>{_e(stage)}</td><td>{_e(name)}</td>"
                        f"<td class='num'>{_fmt(f.get('value'))}</td><td>{ci}</td>"
                        f"<td class='num'>{f.get('n', '')}</td></tr>")  # fmt: skip
    pictures = "".join(_embedded(base, Path(os.path.relpath(Path(i), base)).as_posix(), "metric", Path(i).stem, 480)
                       for i in images)  # fmt: skip
    return ("<h2>Metrics (patient level, 95% bootstrap CI)</h2><table><tr><th>stage</th><th>figure</th>"
            "<th>value</th><th>95% CI</th><th>n</th></tr>" + "".join(rows) + "</table>"
            + (f"<div class='figures'>{pictures}</div>" if pictures else ""))  # fmt: skip


def _page_name(out: Path, page: int) -> str:
    return out.name if page == 1 else f"{out.stem}_{page}{out.suffix}"


def write_report(
    out: os.PathLike | str,
    title: str,
    rows: Sequence[Mapping],
    sequences: Sequence[str],
    metrics: Mapping | None = None,
    notes: Sequence[str] = (),
    *,
    records: Mapping[str, Mapping] | None = None,
    provenance: Mapping | None = None,
    metrics_images: Sequence[os.PathLike | str] = (),
    page_size: int = 100,
) -> Path:
    """Write ``report.html`` (atomically), and ``report_2.html``... when there are more than ``page_size`` cases.

    Args:
        out: the HTML file.
        title: the page title (e.g. the disease and the run's date).
        rows: one per case, the summary rows (``case_id``, ``status``, ``error``,
            ``call`` (the class or ``indeterminate``), ``why_indeterminate``, ``fused_class``,
            ``fused_probability``, ``fusion``, ``lesions``, ``lesion_volume_ml``,
            ``flags`` (implausible outputs), ``overview``: path relative to ``out``'s folder).
        sequences: the sequences that get a column (each one's own call and probability,
            from its record).
        metrics: ``{"headline": {stage: {figure: {"value", "ci_low", "ci_high", "n"}}}}``.
        notes: paragraphs shown under the title (e.g. research-use-only, fusion notes).
        records: case id -> its ``<case>.json`` record (per-sequence probabilities, fusion
            votes, lesion table, Dice, inputs and their checksums).
        provenance: :func:`mednet.report.provenance.cohort_provenance`'s block.
        metrics_images: ROC / confusion PNGs (embedded downscaled, linked to the full files).
        page_size: cases per page.

    Returns:
        The path of the first page.
    """
    out = Path(out)
    base = out.parent
    records = dict(records or {})
    cases = [_Case(r, records.get(str(r.get("case_id"))), sequences, base) for r in rows]
    truth = any(r.get("true_class") for r in rows)
    dice = any((c.record.get("localisation_metrics") or {}).get("dice_lesions") is not None for c in cases)

    def plain(f):
        return lambda c: (f(c), None)

    columns = [  # (header, cell -> (html, sort key or None), numeric)
        ("case", plain(_Case.case), False),
        ("status", plain(_Case.status), False),
        ("diagnosis", plain(_Case.diagnosis), False),
        *([("truth", plain(_Case.truth), False)] if truth else []),
        ("p fused", lambda c: (_fmt(c.row.get("fused_probability")), None), True),
        *[(f"{s}: own call, p", lambda c, s=s: c.sequence(s), False) for s in sequences],
        ("lesions", lambda c: (_fmt(c.row.get("lesions"), 0), None), True),
        ("volume (ml)", _Case.volume, True),
        *([("Dice", _Case.dice, True)] if dice else []),
        ("check", lambda c: (c.check(), str(len(c.flags)) if c.flags else ""), False),
        ("overview", plain(_Case.overview), False),
    ]
    size = max(1, int(page_size))
    pages = [cases[i : i + size] for i in range(0, len(cases), size)] or [[]]
    head = "".join(f"<th>{_e(name)}</th>" for name, _, _ in columns)
    top = ("".join(f"<p class='note'>{_e(n)}</p>" for n in notes) + _provenance_section(provenance))
    legend = ("<p class='note'>Diagnosis: the fused call; an indeterminate call is shown as such with the class it "
              f"leans to and its probability; a probability within {NEAR_CHANCE} of chance is marked near chance. "
              "p fused: the fused probability of that diagnosis. Each sequence's column: that sequence's own call and "
              "its probability (hover for every class). A truth in red differs from the diagnosis. A red bar and "
              "&#9888;: an output that looks implausible (see check). Click a heading to sort, a case for its "
              "details, an overview for the full image.</p>")  # fmt: skip
    for number, chunk in enumerate(pages, start=1):
        nav = ""
        if len(pages) > 1:
            links = [f"<b>{n}</b>" if n == number else f"<a href='{_page_name(out, n)}'>{n}</a>"
                     for n in range(1, len(pages) + 1)]  # fmt: skip
            first = (number - 1) * size + 1
            nav = (f"<nav class='pages'>Page {number} of {len(pages)} (cases {first} to {first + len(chunk) - 1} of "
                   f"{len(cases)}): {''.join(links)}</nav>")  # fmt: skip
        body = []
        for c in chunk:
            cells = []
            for _, cell, numeric in columns:
                content, key = cell(c)
                attribute = f" data-sort='{_e(key)}'" if key is not None else ""
                kind = " class='num'" if numeric else ""
                cells.append(f"<td{kind}{attribute}>{content}</td>")
            state = "ok" if c.row.get("status") == "ok" else "failed"
            body.append(f"<tr class='{state}{' flagged' if c.flags else ''}'>{''.join(cells)}</tr>")
        metrics_html = _metrics_section(metrics, metrics_images, base) if number == 1 else (
            f"<p class='note'>Metrics: see <a href='{_page_name(out, 1)}'>page 1</a>.</p>" if metrics else "")
        details = "".join(c.details() for c in chunk)
        page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
                f"<meta name='viewport' content='width=device-width'><title>{_e(title)}</title>"
                f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1>" + top + metrics_html
                + f"<h2>Cases ({len(rows)})</h2>{legend}{nav}"
                + f"<table id='cases' class='sortable'><thead><tr>{head}</tr></thead><tbody>" + "".join(body)
                + "</tbody></table>" + nav
                + (f"<h2>Case details</h2><p class='note'>{_e(_HOW_TO_OPEN)}</p>{details}" if details else "")
                + f"<script>{_SCRIPT}</script></body></html>\n")  # fmt: skip
        write_text_atomic(base / _page_name(out, number), page)
    for stale in base.glob(f"{out.stem}_*{out.suffix}"):  # pages of an earlier, larger cohort
        found = re.fullmatch(rf"{re.escape(out.stem)}_(\d+){re.escape(out.suffix)}", stale.name)
        if found and int(found.group(1)) > len(pages):
            stale.unlink()
    return out
