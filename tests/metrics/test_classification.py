"""Patient-level classification metrics on small examples worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, precision_score, recall_score, roc_auc_score

from mednet.metrics.classification import (
    SLICE_LEVEL_NOTE,
    classification_summary,
    expected_calibration_error,
    plot_confusion,
    plot_roc,
)

PNG = b"\x89PNG\r\n\x1a\n"
# 4 positives, 6 negatives; at 0.5: TP 3 (0.9, 0.8, 0.6), FN 1 (0.3), FP 1 (0.7), TN 5
Y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
P = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1, 0.1, 0.05])


def _inside(figure: dict) -> bool:
    return figure["ci_low"] - 1e-12 <= figure["value"] <= figure["ci_high"] + 1e-12


def test_binary_summary_by_hand():
    out = classification_summary(Y, P, n_boot=300)
    assert out["level"] == "patient" and "note" not in out and out["n"] == 10
    assert out["classes"] == ["negative", "positive"] and out["support"] == [6, 4] and out["threshold"] == 0.5
    assert out["confusion_matrix"] == [[5, 1], [1, 3]]
    expected = {
        "accuracy": 0.8,
        "sensitivity": 0.75,
        "specificity": 5 / 6,
        "precision": 0.75,
        "f1": 0.75,  # 2 TP / (2 TP + FP + FN) = 6 / 8
        "auc": 21 / 24,  # pairs ranked right: 6 + 6 + 5 + 4 of 4 x 6
        "brier": float(np.mean((P - Y) ** 2)),
    }
    for name, value in expected.items():
        assert out[name]["value"] == pytest.approx(value), name
        assert out[name]["n"] == 10 and _inside(out[name]), name
    assert 0 <= out["ece"]["value"] <= 1 and _inside(out["ece"])


def test_binary_summary_agrees_with_sklearn(rng):
    y = rng.integers(0, 2, 40)
    p = np.clip(0.35 * y + rng.uniform(0, 0.65, 40), 0, 1).round(2)  # ties included
    out = classification_summary(y, p, n_boot=50, threshold=0.4)
    pred = (p >= 0.4).astype(int)
    assert out["accuracy"]["value"] == pytest.approx(accuracy_score(y, pred))
    assert out["sensitivity"]["value"] == pytest.approx(recall_score(y, pred))
    assert out["specificity"]["value"] == pytest.approx(recall_score(1 - y, 1 - pred))
    assert out["precision"]["value"] == pytest.approx(precision_score(y, pred, zero_division=0))
    assert out["f1"]["value"] == pytest.approx(f1_score(y, pred, zero_division=0))
    assert out["auc"]["value"] == pytest.approx(roc_auc_score(y, p))
    assert out["brier"]["value"] == pytest.approx(brier_score_loss(y, p))


def test_separable_case_and_slice_level():
    y = [0, 0, 0, 1, 1, 1]
    p = [0.1, 0.2, 0.45, 0.55, 0.8, 0.9]
    out = classification_summary(y, p, n_boot=200, level="slice")
    assert out["level"] == "slice" and out["note"] == SLICE_LEVEL_NOTE
    assert out["auc"]["value"] == 1.0 and out["auc"]["ci_low"] == out["auc"]["ci_high"] == 1.0
    assert out["accuracy"]["value"] == 1.0 and out["confusion_matrix"] == [[3, 0], [0, 3]]
    with pytest.raises(ValueError, match="level"):
        classification_summary(y, p, level="lesion")


def test_undefined_figures_are_nan_not_warnings():
    out = classification_summary([0, 0, 0], [0.1, 0.2, 0.3], n_boot=20)
    assert np.isnan(out["auc"]["value"]) and out["auc"]["ci_low"] is None
    assert np.isnan(out["sensitivity"]["value"]) and np.isnan(out["precision"]["value"])
    assert out["specificity"]["value"] == 1.0 and out["accuracy"]["value"] == 1.0
    never = classification_summary([0, 1, 1, 0], [0.1, 0.2, 0.3, 0.4], n_boot=20)  # no positive prediction
    assert np.isnan(never["precision"]["value"]) and never["f1"]["value"] == 0.0


def test_input_forms_and_errors():
    names = np.array(["mg", "an", "an", "mg"])
    out = classification_summary(names, [0.2, 0.7, 0.4, 0.1], classes=("mg", "an"), n_boot=20)
    assert out["confusion_matrix"] == [[2, 0], [1, 1]] and out["classes"] == ["mg", "an"]
    two_column = classification_summary([0, 1, 1, 0], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.9, 0.1]], n_boot=20)
    assert two_column["confusion_matrix"] == out["confusion_matrix"]
    assert classification_summary([False, True], [0.3, 0.6], n_boot=5)["accuracy"]["value"] == 1.0
    with pytest.raises(ValueError, match="rows"):
        classification_summary([0, 1], [0.5], n_boot=5)
    with pytest.raises(ValueError, match="within"):
        classification_summary([0, 1], [0.5, 1.5], n_boot=5)
    with pytest.raises(ValueError, match="class indices"):
        classification_summary([0, 2], [0.5, 0.6], n_boot=5)
    with pytest.raises(ValueError, match="not among classes"):
        classification_summary(["an", "xx"], [0.5, 0.6], classes=("mg", "an"), n_boot=5)


def test_expected_calibration_error():
    # bin [0.2, 0.3): 4 rows at 0.25, one positive; bin [0.7, 0.8): 4 rows at 0.75, three positive
    y = [1, 0, 0, 0, 1, 1, 1, 0]
    p = [0.25] * 4 + [0.75] * 4
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error([0, 0, 0], [0.9, 0.9, 0.9]) == pytest.approx(0.9)
    # bins 0.65 (2 rows, half positive: gap 0.15) and 1.0 (last bin, 2 rows all positive: gap 0)
    assert expected_calibration_error([1, 0, 1, 1], [0.65, 0.65, 1.0, 1.0]) == pytest.approx(2 / 4 * 0.15)
    assert expected_calibration_error([1, 0], [0.55, 0.55], bins=1) == pytest.approx(0.05)
    top = np.array([[0.8, 0.1, 0.1], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1]])
    # top-label: all confidences 0.8 in one bin, 4 of 5 right
    assert expected_calibration_error([0, 0, 2, 1, 1], top) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="bins"):
        expected_calibration_error([0], [0.1], bins=0)


def _three_class() -> tuple[np.ndarray, np.ndarray]:
    """Truth 0,0,0,1,1,1,2,2,2; predicted 0,0,1, 1,1,2, 2,2,0: each class 2 TP, 1 FN, 1 FP, 5 TN."""
    y = np.repeat([0, 1, 2], 3)
    predicted = np.array([0, 0, 1, 1, 1, 2, 2, 2, 0])
    confidence = np.array([0.8, 0.6, 0.5, 0.7, 0.9, 0.6, 0.5, 0.8, 0.4])
    p = np.full((9, 3), 0.0)
    p[np.arange(9), predicted] = confidence
    rest = (1 - confidence) / 2
    for i, c in enumerate(predicted):
        p[i, [k for k in range(3) if k != c]] = rest[i] + np.array([0.01, -0.01]) * (i % 2)
    return y, p


def test_multiclass_summary_on_known_confusion():
    y, p = _three_class()
    names = ("L1", "L2", "M")
    out = classification_summary(y, p, classes=names, n_boot=200)
    assert out["confusion_matrix"] == [[2, 1, 0], [0, 2, 1], [1, 0, 2]] and out["threshold"] is None
    assert out["accuracy"]["value"] == pytest.approx(6 / 9)
    for name in names:
        figures = out["per_class"][name]
        assert figures["sensitivity"]["value"] == pytest.approx(2 / 3)
        assert figures["specificity"]["value"] == pytest.approx(5 / 6)
        assert figures["precision"]["value"] == pytest.approx(2 / 3)
        assert figures["f1"]["value"] == pytest.approx(2 / 3)
    for c, name in enumerate(names):
        assert out["per_class"][name]["auc"]["value"] == pytest.approx(roc_auc_score(y == c, p[:, c]))
    assert out["macro_f1"]["value"] == pytest.approx(2 / 3)
    assert out["macro_sensitivity"]["value"] == pytest.approx(2 / 3)
    assert out["macro_specificity"]["value"] == pytest.approx(5 / 6)
    assert out["macro_auc"]["value"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert out["brier"]["value"] == pytest.approx(np.mean(np.sum((p - np.eye(3)[y]) ** 2, axis=1)))
    for name in ("accuracy", "macro_f1", "macro_auc", "brier", "ece"):
        assert _inside(out[name]), name
    assert _inside(out["per_class"]["M"]["sensitivity"])


def test_multiclass_class_never_predicted():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.5, 0.2, 0.3], [0.2, 0.5, 0.3]])
    out = classification_summary(y, p, n_boot=50)
    assert np.isnan(out["per_class"]["class_2"]["precision"]["value"])
    pred = p.argmax(axis=1)
    assert out["macro_precision"]["value"] == pytest.approx(precision_score(y, pred, average="macro", zero_division=0))
    assert out["macro_f1"]["value"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    missing = classification_summary([0, 0, 1, 1], p[:4], n_boot=20)  # class 2 absent: macro figures undefined
    assert np.isnan(missing["macro_auc"]["value"]) and missing["accuracy"]["value"] == 1.0


def test_resamples_scored_together_match_sklearn_one_by_one(rng):
    """Each resample is a column of one sklearn call; its figures are those of the resample alone."""
    from mednet.metrics.classification import _binary_figures, _multiclass_figures

    y = rng.integers(0, 2, 15)
    p = rng.uniform(size=15).round(1)
    index = np.vstack([rng.integers(0, 15, 15) for _ in range(6)] + [np.zeros(15, int)])  # the last: one row only
    figures = _binary_figures(y, p, index, 0.5, 10)
    for b, rows in enumerate(index):
        truth, score = y[rows], p[rows]
        called = (score >= 0.5).astype(int)
        expected = {
            "sensitivity": recall_score(truth, called, zero_division=np.nan),
            "specificity": recall_score(1 - truth, 1 - called, zero_division=np.nan),
            "precision": precision_score(truth, called, zero_division=np.nan),
            "f1": f1_score(truth, called, zero_division=np.nan),
            "auc": roc_auc_score(truth, score) if 0 < truth.sum() < len(truth) else np.nan,
            "brier": brier_score_loss(truth, score, labels=[0, 1]),
            "accuracy": accuracy_score(truth, called),
            "ece": expected_calibration_error(truth, score),
        }
        for name, value in expected.items():
            assert figures[name][b] == pytest.approx(value, nan_ok=True), (b, name)
    y3, p3 = _three_class()
    index = np.vstack([rng.integers(0, 9, 9) for _ in range(5)] + [np.arange(9)])
    figures = _multiclass_figures(y3, p3, index, 10)
    for b, rows in enumerate(index):
        truth, prob = y3[rows], p3[rows]
        called = prob.argmax(axis=1)
        every = len(np.unique(truth)) == 3
        assert figures["brier"][b] == pytest.approx(brier_score_loss(truth, prob, labels=[0, 1, 2]))
        macro_f1 = f1_score(truth, called, labels=[0, 1, 2], average="macro", zero_division=0)
        assert figures["macro_f1"][b] == pytest.approx(macro_f1 if every else np.nan, nan_ok=True)
        for c in range(3):
            sens = recall_score(truth == c, called == c, zero_division=np.nan)
            assert figures[c, "sensitivity"][b] == pytest.approx(sens, nan_ok=True), (b, c)
            spec = recall_score(truth != c, called != c, zero_division=np.nan)
            assert figures[c, "specificity"][b] == pytest.approx(spec, nan_ok=True), (b, c)
            auc = roc_auc_score(truth == c, prob[:, c]) if 0 < np.sum(truth == c) < len(truth) else np.nan
            assert figures[c, "auc"][b] == pytest.approx(auc, nan_ok=True), (b, c)


def test_default_bootstrap_is_seeded():
    first = classification_summary(Y, P)
    assert first["auc"] == classification_summary(Y, P)["auc"]
    assert first["auc"]["ci_low"] < first["auc"]["value"] <= first["auc"]["ci_high"]


def test_roc_points_at_every_distinct_threshold():
    from mednet.metrics.classification import _roc_curves  # the curves plot_roc draws

    # thresholds 0.9 (one positive), 0.5 (two positives and a negative, tied), 0.1 (the rest)
    y, score = np.array([0, 1, 1, 0, 1]), np.array([0.1, 0.5, 0.5, 0.5, 0.9])
    [(label, fpr, tpr)] = _roc_curves(y, score, ("negative", "positive"))
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == pytest.approx([0.0, 1 / 3, 1.0, 1.0])
    assert label == "AUC 0.833"  # pairs ranked right: 2 + 2 + two ties at one half, of 6
    p = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.5, 0.4, 0.1], [0.2, 0.7, 0.1]])
    curves = _roc_curves(np.array([0, 1, 0, 1]), p, ("L1", "L2", "M"))  # no M patient: no M curve
    assert [c[0] for c in curves] == ["L1 (AUC 1.000)", "L2 (AUC 1.000)"]
    assert all(c[1][0] == c[2][0] == 0.0 and c[1][-1] == c[2][-1] == 1.0 for c in curves)


def test_plots_are_png(tmp_path):
    y, p = _three_class()
    paths = [
        plot_roc(Y, P, tmp_path / "roc.png", "s-VGG-T1, patients"),
        plot_roc(y, p, tmp_path / "nested" / "roc3.png", "stage", classes=("L1", "L2", "M")),
        plot_confusion([[5, 1], [1, 3]], ["mg", "an"], tmp_path / "confusion.png", "DL-MDT"),
        plot_confusion(classification_summary(y, p, n_boot=5)["confusion_matrix"], ["L1", "L2", "M"],
                       tmp_path / "confusion3.png", "stage"),
    ]  # fmt: skip
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 1000
    assert sorted(f.name for f in tmp_path.rglob("*") if f.is_file()) == [
        "confusion.png", "confusion3.png", "roc.png", "roc3.png",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="both positive and negative"):
        plot_roc([1, 1], [0.3, 0.8], tmp_path / "none.png")
    with pytest.raises(ValueError, match="2 x 2"):
        plot_confusion([[1, 2, 3]], ["a", "b"], tmp_path / "bad.png")
    assert not (tmp_path / "none.png").exists()


def test_auc_of_many_columns_equals_sklearn_column_by_column(rng):
    """The Mann-Whitney AUC of every column at once is sklearn's ROC AUC, ties included; NaN with one class."""
    from mednet.metrics.classification import _auc

    truth = rng.uniform(size=(40, 300)) < rng.uniform(0.05, 0.95, size=300)
    score = rng.uniform(size=(40, 300)).round(1)  # many ties
    score[:, :50] = (score[:, :50] + truth[:, :50]) / 2  # some columns well separated
    truth[:, 7], truth[:, 8] = True, False  # one class only
    auc = _auc(truth, score)
    for b in range(truth.shape[1]):
        expected = roc_auc_score(truth[:, b], score[:, b]) if 0 < truth[:, b].sum() < len(truth) else np.nan
        assert auc[b] == pytest.approx(expected, abs=1e-12, nan_ok=True), b
