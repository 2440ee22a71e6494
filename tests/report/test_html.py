"""summary.csv rows and report.html without a browser (the browser tests: tests/report/test_report_browser.py)."""

from __future__ import annotations

import base64
import hashlib
import io
import re
from types import SimpleNamespace

import pytest
from matplotlib import pyplot as plt
from PIL import Image

from mednet.pipeline.summary import summary_row
from mednet.report.html import fusion_decision, volume_warnings, write_report
from mednet.report.provenance import cohort_provenance, input_checksums, run_provenance, training_source
from tests.report.cohort import SEQUENCES, make_cohort

RECORD = {"case_id": "C1", "patient_id": "P1", "fused_class": "LGG", "fused": {"LGG": 0.65, "HGG": 0.35},
          "sequences": {"t1": {"LGG": 0.51, "HGG": 0.49}, "t2": {"LGG": 0.74, "HGG": 0.26}},
          "fusion": {"method": "vote"}, "true_class": "LGG", "note": "",
          "lesions": [{"volume_ml": 1.5}, {"volume_ml": 0.25}]}  # fmt: skip


def _cells(page: str, case_id: str) -> list[str]:
    """The cells of ``case_id``'s row in the cases table, tags stripped."""
    row = re.search(rf"<tr class='[^']*'><td[^>]*>(?:<a [^>]*>)?{re.escape(case_id)}(?:</a>)?</td>(.*?)</tr>", page)
    assert row, case_id
    return [re.sub(r"<[^>]+>", " ", c).split() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))]


def test_summary_row_gives_every_probability_for_the_diagnosis():
    row = summary_row(RECORD, "C1", ["t1", "t2"])
    assert row["fused_class"] == "LGG" and row["fused_probability"] == pytest.approx(0.65)
    assert row["p_t1"] == pytest.approx(0.51) and row["p_t2"] == pytest.approx(0.74)
    assert row["lesions"] == 2 and row["lesion_volume_ml"] == pytest.approx(1.75)
    nothing = summary_row({**RECORD, "fused_class": None, "fused": None, "sequences": {}}, "C2", ["t1"])
    assert nothing["p_t1"] == "" and nothing["fused_probability"] == ""
    assert summary_row(None, "C3", ["t1"], "boom") == {"case_id": "C3", "status": "failed", "error": "boom"}


def test_report_embeds_small_thumbnails_and_lists_failures(tmp_path):
    (tmp_path / "C1").mkdir()
    figure = plt.figure(figsize=(12, 6))
    figure.gca().imshow(__import__("numpy").random.default_rng(0).random((300, 600)), cmap="gray")
    figure.savefig(tmp_path / "C1" / "C1_overview.png", dpi=100)
    plt.close(figure)
    full = (tmp_path / "C1" / "C1_overview.png").stat().st_size
    rows = [summary_row(RECORD, "C1", ["t1", "t2"]), summary_row(None, "C<3>", ["t1", "t2"], "file not found")]
    page = write_report(tmp_path / "report.html", "mednet glioma", rows, ["t1", "t2"],
                        notes=["Research use only."]).read_text()  # fmt: skip
    assert page.count("data:image/png;base64,") == 1 and "C&lt;3&gt;" in page and "file not found" in page
    assert "<th>diagnosis</th><th>truth</th><th>p fused</th><th>t1: own call, p</th><th>t2: own call, p</th>" in page
    assert "<span class='wrong'>" not in page and "class='failed'" in page
    thumb = base64.b64decode(re.search(r'<a href="C1/C1_overview.png"><img class="thumb"[^>]*base64,([^"]+)"', page)[1])
    assert len(thumb) < 60_000 < full  # a real thumbnail, not the full PNG shrunk by the browser
    assert Image.open(io.BytesIO(thumb)).width == 300
    assert not list(tmp_path.glob(".*tmp"))


def test_each_sequence_shows_its_own_call_and_probability(tmp_path):
    disagree = {**RECORD, "sequences": {"t1": {"LGG": 0.3, "HGG": 0.7}, "t2": {"LGG": 0.74, "HGG": 0.26}}}
    page = write_report(tmp_path / "r.html", "t", [summary_row(disagree, "C1", ["t1", "t2"])], ["t1", "t2"],
                        records={"C1": disagree}).read_text()  # fmt: skip
    cells = _cells(page, "C1")
    assert ["HGG", "0.70"] in cells and ["LGG", "0.74"] in cells  # t1's own call, not its p of the diagnosis
    chance = {**RECORD, "fused": {"LGG": 0.5, "HGG": 0.5}, "call": "LGG",
              "sequences": {"t1": {"LGG": 0.51, "HGG": 0.49}}}  # fmt: skip
    page = write_report(tmp_path / "c.html", "t", [summary_row(chance, "C2", ["t1"])], ["t1"],
                        records={"C2": chance}).read_text()  # fmt: skip
    table = page.split("<table id='cases'")[1].split("</table>")[0]
    assert "<b>LGG</b>" not in table and "near chance (p 0.50): no real call" in table
    assert ["LGG", "0.51", "near", "chance"] in _cells(page, "C2")


def test_report_marks_a_wrong_diagnosis_and_drops_truth_when_unknown(tmp_path):
    wrong = summary_row({**RECORD, "true_class": "HGG"}, "C1", ["t1"])
    page = write_report(tmp_path / "r.html", "t", [wrong], ["t1"]).read_text()
    assert "<span class='wrong'>HGG</span>" in page
    unknown = summary_row({**RECORD, "true_class": None}, "C1", ["t1"])
    assert "<th>truth</th>" not in write_report(tmp_path / "u.html", "t", [unknown], ["t1"]).read_text()


def test_an_indeterminate_call_is_not_shown_as_a_class_and_flags_are_shown(tmp_path):
    unsure = {**RECORD, "fused": {"LGG": 0.55, "HGG": 0.45}, "call": "indeterminate",
              "fusion": {"method": "vote", "reasons": ["fused probability for LGG is 0.55, below 0.60"]},
              "flags": ["31 separate lesions (more than 25: implausible; check the input)"]}  # fmt: skip
    row = summary_row(unsure, "C1", ["t1"])
    assert row["call"] == "indeterminate" and row["why_indeterminate"] == "fused probability for LGG is 0.55, below 0.60"
    page = write_report(tmp_path / "r.html", "t", [row], ["t1"], records={"C1": unsure}).read_text()
    assert "<span class='unsure'>indeterminate</span>" in page and "leaning LGG, p 0.550" in page
    assert "<b>LGG</b>" not in page.split("<table id='cases'")[1].split("</table>")[0] and "below 0.60" in page
    assert "<div class='flag'>&#9888; 31 separate lesions" in page and "<tr class='ok flagged'>" in page
    sure = write_report(tmp_path / "s.html", "t", [summary_row({**RECORD, "call": "LGG"}, "C2", ["t1"])], ["t1"])
    assert "<b>LGG</b>" in sure.read_text() and "class='unsure'" not in sure.read_text()


def test_a_dlmdt_tie_says_who_decided():
    tie = {"fused": {"MG": 0.5, "AN": 0.5}, "fused_class": "AN", "sequences": {"t1c": {}, "t2": {}},
           "fusion": {"method": "dl_mdt", "votes": {"t1c": 0, "t2": 0, "radiology": 1, "radiotherapy": 1},
                      "missing": []}}  # fmt: skip
    text = fusion_decision(tie)
    assert text.startswith("networks: t1c MG, t2 MG; clinicians: radiology AN, radiotherapy AN; R 0.50")
    assert "a tie, which goes to AN" in text and text.endswith("The clinicians overruled both networks")
    won = {**tie, "fused": {"MG": 0.75, "AN": 0.25}, "fused_class": "MG",
           "fusion": {**tie["fusion"], "votes": {"t1c": 0, "t2": 0, "radiology": 1, "radiotherapy": None},
                      "missing": ["radiotherapy"]}}  # fmt: skip
    text = fusion_decision(won)
    assert "R 0.25" in text and "a tie" not in text and "The networks overruled clinicians;" in text
    assert "no vote from radiotherapy (weights renormalised)" in text
    same = {**tie, "fused": {"MG": 1.0, "AN": 0.0}, "fused_class": "MG",
            "fusion": {"method": "dl_mdt", "votes": dict.fromkeys(["t1c", "t2", "radiology", "radiotherapy"], 0)}}
    assert fusion_decision(same).endswith("Unanimous")


def test_implausible_volumes_are_flagged():
    lesions = [{"lesion_id": 1, "class_name": "primary_tumour", "volume_ml": 1881.0},
               {"lesion_id": 2, "class_name": "primary_tumour", "volume_ml": 420.0}]  # fmt: skip
    assert volume_warnings("neuroblastoma", lesions) == [
        "lesion 1 (primary_tumour) is 1881 ml, above 1000 ml: implausible for neuroblastoma; check the label map"]
    assert len(volume_warnings("glioma", lesions)) == 2 and volume_warnings("other", lesions) == []


def test_cohort_report_shows_provenance_details_metrics_and_links(tmp_path):
    out = tmp_path / "out"
    records = make_cohort(out, tmp_path / "inputs")
    (out / "metrics").mkdir()
    figure = plt.figure(figsize=(4, 4))
    figure.savefig(out / "metrics" / "roc_fused.png")
    plt.close(figure)
    reference = {"data": {"cases": 160, "randomise": "moderate", "seed": 2026, "synthetic_only": True}, "epochs": 20,
                 "finished": "2026-02-01T10:00:00+00:00", "mednet_version": "0.1.0", "weights_sha256": "a" * 64}
    bundles = [SimpleNamespace(name="cpa_mri_segmentation", version="0.2.0", reference=reference),
               SimpleNamespace(name="cpa_mri_classification", version="0.2.0", reference={})]  # fmt: skip
    provenance = cohort_provenance(bundles, list(records.values()), argv=["mednet", "report", str(out)])
    rows = [summary_row(r, k, SEQUENCES) for k, r in records.items()]
    metrics = {"headline": {"grading": {"fused auc": {"value": 0.75, "ci_low": 0.5, "ci_high": 1.0, "n": 3}}}}
    page = write_report(out / "report.html", "mednet cpa", rows, SEQUENCES, metrics=metrics, records=records,
                        provenance=provenance, metrics_images=[out / "metrics" / "roc_fused.png"]).read_text()  # fmt: skip
    # provenance: software, command, bundles and weights with what they were trained on, time zone
    prov = page.split("<h2>Provenance</h2>")[1].split("<h2>")[0]
    assert "abc123def456" in prov and "mednet predict --disease cpa --input in --out out" in prov
    assert "a" * 64 + "</code> (matches the training record)" in prov and "b" * 64 in prov
    assert "trained on: synthetic phantoms only (160 cases, moderate randomisation, seed 2026); 20 epochs" in prov
    assert "trained on: no training record (models/reference.json)" in prov
    assert "2026-03-02T14:05:09+01:00" in prov and "PyTorch, MONAI (predict)</dt><dd>2.0; 1.4" in prov
    assert re.search(r"this report</dt><dd>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", prov)
    assert "mednet report " in prov and "SHA-256 of each input file recorded for 3 of 3 cases" in prov
    # who decided the tie; the 1881 ml lesion flagged in the row and in its lesion table
    assert "The clinicians overruled both networks" in page
    assert "<span class='flag' title='lesion 1 (tumour) is 1881 ml, above 150 ml" in page
    assert "<span class=flag>&#9888; 1881.00</span>" in page and page.count("<tr class='ok flagged'>") == 1
    # per case: lesion table, Dice, links to the label map and inputs with their SHA-256, how to open them
    tie = page.split("<details class='case' id='case-TIE_1'>")[1].split("<details class='case'")[0]
    assert "<summary>Lesion table (2 lesion(s))</summary>" in tie and tie.count("<tr><td class='num'>") == 2
    assert "dice_lesions 0.830" in tie and "<a href='TIE_1/TIE_1_labels.nii.gz'>label map</a>" in tie
    digest = hashlib.sha256((tmp_path / "inputs" / "TIE_1_t1c.nii.gz").read_bytes()).hexdigest()
    assert "<a href='../inputs/TIE_1_t1c.nii.gz'>" in tie and f"SHA-256 {digest}" in tie
    assert "3D Slicer" in page and "ITK-SNAP" in page and "<th>Dice</th>" in page
    # the metrics image embedded, downscaled, linked to the full file
    assert '<a href="metrics/roc_fused.png"><img class="metric" alt="roc_fused"' in page


def test_large_cohorts_are_split_into_pages(tmp_path):
    rows = [summary_row({**RECORD, "case_id": f"C{i}"}, f"C{i}", ["t1"]) for i in range(5)]
    (tmp_path / "report_4.html").write_text("an earlier, larger cohort's page")
    first = write_report(tmp_path / "report.html", "t", rows, ["t1"], page_size=2)
    pages = [first, tmp_path / "report_2.html", tmp_path / "report_3.html"]
    assert all(p.is_file() for p in pages) and not (tmp_path / "report_4.html").exists()
    texts = [p.read_text() for p in pages]
    assert [re.findall(r"<td>(C\d)</td>", t) for t in texts] == [["C0", "C1"], ["C2", "C3"], ["C4"]]
    assert "Page 2 of 3 (cases 3 to 4 of 5): <a href='report.html'>1</a><b>2</b><a href='report_3.html'>3</a>" in texts[1]
    assert "<nav" not in write_report(tmp_path / "one.html", "t", rows, ["t1"]).read_text()


def test_input_checksums_and_provenance(tmp_path):
    (tmp_path / "t1.nii.gz").write_bytes(b"image bytes")
    series = tmp_path / "dicom"
    series.mkdir()
    (series / "1.dcm").write_bytes(b"x" * 10)
    sums = input_checksums({"t1": tmp_path / "t1.nii.gz", "t2": series, "flair": tmp_path / "absent"})
    assert sums["t1"] == {"sha256": hashlib.sha256(b"image bytes").hexdigest(), "bytes": 11}
    assert sums["t2"]["files"] == 1 and sums["t2"]["bytes"] == 10 and "not a file" in sums["flair"]["error"]
    (series / "2.dcm").write_bytes(b"y")
    assert input_checksums({"t2": series})["t2"]["file_list_sha256"] != sums["t2"]["file_list_sha256"]
    now = run_provenance(["/usr/bin/mednet", "predict", "--out", "a b"])
    assert now["command"] == "mednet predict --out 'a b'" and re.search(r"[+-]\d\d:\d\d$", now["time"])
    assert {"mednet", "torch", "monai", "git"} <= set(now)
    assert training_source({}).startswith("no training record")


def test_training_source_describes_a_single_and_a_merged_cohort_and_a_fine_tuning():
    made = {"generator": "mednet.synthetic", "mednet_version": "0.1.0", "cases": 160, "randomise": "moderate",
            "seed": 2026}  # fmt: skip
    assert training_source({"data": made, "epochs": 20}) == (
        "synthetic phantoms only (generator mednet.synthetic 0.1.0, 160 cases, moderate randomisation, seed 2026); "
        "20 epochs"
    )
    merged = {"parts": [{**made, "cases": 80, "randomise": None, "seed": 2050}, {**made, "cases": 80, "seed": 2051}],
              "synthetic_only": True}  # fmt: skip
    text = training_source({"data": merged, "epochs": 12, "base": {"epochs": 12}})
    assert text == (
        "synthetic phantoms only (generator mednet.synthetic 0.1.0, 160 cases, no + moderate randomisation, "
        "seeds 2050, 2051); 12 epochs fine-tuning earlier weights"
    )
    assert training_source({"data": {"cases": 10}, "epochs": 3}).startswith("data (10 cases)")
