"""Slice-to-patient aggregation on known numbers."""

from __future__ import annotations

import numpy as np
import pytest

from mednet.grading import AGGREGATION_METHODS, aggregate, patient_probabilities

SLICES = [0.2, 0.4, 0.9, 0.5]


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("mean", 0.5),
        ("median", 0.45),
        ("max", 0.9),
        ("vote", 0.5),  # 0.9 and 0.5 are >= 0.5
        ("logit_mean", 1.5**0.25 / (1 + 1.5**0.25)),  # geometric mean of the odds 1/4, 2/3, 9, 1
    ],
)
def test_binary_methods(method, expected):
    assert aggregate(SLICES, method) == pytest.approx(expected)
    assert isinstance(aggregate(np.array(SLICES)[:, None], method), float)


def test_logit_mean_handles_certain_slices():
    assert 0.5 < aggregate([1.0, 1.0, 0.3], "logit_mean") < 1.0
    assert aggregate([0.0, 1.0], "logit_mean") == pytest.approx(0.5)


def test_multiclass_methods_renormalise():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
    np.testing.assert_allclose(aggregate(p, "mean"), [0.4, 0.4, 0.2])
    np.testing.assert_allclose(aggregate(p, "median"), [0.4, 0.4, 0.2])
    np.testing.assert_allclose(aggregate(p, "max"), np.array([0.7, 0.6, 0.3]) / 1.6)
    np.testing.assert_allclose(aggregate(p, "vote"), [0.5, 0.5, 0.0])
    geometric = np.sqrt([0.07, 0.12, 0.03])
    np.testing.assert_allclose(aggregate(p, "logit_mean"), geometric / geometric.sum())
    two = np.array([[0.8, 0.2], [0.4, 0.6]])
    assert aggregate(two, "logit_mean")[1] == pytest.approx(aggregate(two[:, 1], "logit_mean"))


def test_unknown_method_and_bad_input():
    with pytest.raises(ValueError, match="did you mean 'mean'"):
        aggregate(SLICES, "maen")
    with pytest.raises(ValueError, match="did you mean 'logit_mean'"):
        aggregate(SLICES, "logitmean")
    with pytest.raises(ValueError, match="N >= 1"):
        aggregate([], "mean")
    with pytest.raises(ValueError, match="within"):
        aggregate([0.2, 1.3])
    with pytest.raises(ValueError, match="within"):
        aggregate([0.2, float("nan")])
    assert set(AGGREGATION_METHODS) == {"mean", "median", "max", "vote", "logit_mean"}


def test_patient_probabilities():
    rows = [{"patient_id": "p1", "probability": p} for p in (0.2, 0.4)]
    rows += [{"patient_id": "p2", "probability": p} for p in (0.9, 0.7, 0.8)]
    assert patient_probabilities(rows) == pytest.approx({"p1": 0.3, "p2": 0.8})
    assert patient_probabilities(rows, method="max") == pytest.approx({"p1": 0.4, "p2": 0.9})
    assert list(patient_probabilities(rows)) == ["p1", "p2"]


def test_patient_probabilities_by_sequence_and_multiclass():
    rows = [
        {"case": 7, "sequence": "T1", "score": 0.2},
        {"case": 7, "sequence": "T1", "score": 0.6},
        {"case": 7, "sequence": "FLAIR", "score": 0.9},
        {"case": 8, "sequence": "T1", "score": 0.1},
    ]
    out = patient_probabilities(rows, key="score", group="case", method="vote")
    assert out == {(7, "T1"): 0.5, (7, "FLAIR"): 1.0, (8, "T1"): 0.0}
    multi = [{"patient_id": 1, "probability": [0.6, 0.3, 0.1]}, {"patient_id": 1, "probability": [0.2, 0.5, 0.3]}]
    np.testing.assert_allclose(patient_probabilities(multi)[1], [0.4, 0.4, 0.2])


def test_patient_probabilities_errors():
    with pytest.raises(ValueError, match="lacks 'probability'"):
        patient_probabilities([{"patient_id": 1}])
    with pytest.raises(ValueError, match="every row names"):
        patient_probabilities(
            [
                {"patient_id": 1, "probability": 0.1, "sequence": "T2"},
                {"patient_id": 1, "probability": 0.3},
            ]
        )
    with pytest.raises(ValueError, match="did you mean"):
        patient_probabilities([], method="meen")
