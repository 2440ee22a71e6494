"""summary.csv rows and report.html without a browser (the browser test is in tests/bundles/test_predict.py)."""

from __future__ import annotations

import pytest
from matplotlib import pyplot as plt

from mednet.pipeline.summary import summary_row
from mednet.report.html import write_report

RECORD = {"patient_id": "P1", "fused_class": "LGG", "fused": {"LGG": 0.65, "HGG": 0.35},
          "sequences": {"t1": {"LGG": 0.51, "HGG": 0.49}, "t2": {"LGG": 0.74, "HGG": 0.26}},
          "fusion": {"method": "vote"}, "true_class": "LGG", "note": "",
          "lesions": [{"volume_ml": 1.5}, {"volume_ml": 0.25}]}  # fmt: skip


def test_summary_row_gives_every_probability_for_the_diagnosis():
    row = summary_row(RECORD, "C1", ["t1", "t2"])
    assert row["fused_class"] == "LGG" and row["fused_probability"] == pytest.approx(0.65)
    assert row["p_t1"] == pytest.approx(0.51) and row["p_t2"] == pytest.approx(0.74)
    assert row["lesions"] == 2 and row["lesion_volume_ml"] == pytest.approx(1.75)
    nothing = summary_row({**RECORD, "fused_class": None, "fused": None, "sequences": {}}, "C2", ["t1"])
    assert nothing["p_t1"] == "" and nothing["fused_probability"] == ""
    assert summary_row(None, "C3", ["t1"], "boom") == {"case_id": "C3", "status": "failed", "error": "boom"}


def test_report_embeds_overviews_and_lists_failures(tmp_path):
    (tmp_path / "C1").mkdir()
    figure = plt.figure(figsize=(2, 1))
    figure.savefig(tmp_path / "C1" / "C1_overview.png")
    plt.close(figure)
    rows = [summary_row(RECORD, "C1", ["t1", "t2"]), summary_row(None, "C<3>", ["t1", "t2"], "file not found")]
    page = write_report(tmp_path / "report.html", "mednet glioma", rows, ["t1", "t2"],
                        notes=["Research use only."]).read_text()  # fmt: skip
    assert page.count("data:image/png;base64,") == 1 and "C&lt;3&gt;" in page and "file not found" in page
    assert "<th>diagnosis</th><th>truth</th><th>p fused</th><th>p t1</th><th>p t2</th>" in page
    assert "give to the case's diagnosis" in page and "<span class='wrong'>" not in page
    assert "<td class='num'>0.510</td>" in page and "class='failed'" in page
    assert not list(tmp_path.glob(".*tmp"))


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
    page = write_report(tmp_path / "r.html", "t", [row], ["t1"]).read_text()
    assert "<span class='unsure'>indeterminate</span>" in page and "leaning LGG, p 0.550" in page
    assert "<b>LGG</b>" not in page and "below 0.60" in page
    assert "<span class='flag'>31 separate lesions" in page
    sure = write_report(tmp_path / "s.html", "t", [summary_row({**RECORD, "call": "LGG"}, "C2", ["t1"])], ["t1"])
    assert "<b>LGG</b>" in sure.read_text() and "unsure" not in sure.read_text().split("</style>")[1]
