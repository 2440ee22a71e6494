"""Patient-level splits: no patient in two partitions, stratified, seeded, k folds."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from mednet.errors import DatalistError, PatientLeakageError
from mednet.io import check_no_leakage, select_fold, split_cases


def cohort(seed, n_patients=40, classes=("HGG", "LGG"), weights=(0.75, 0.25)):
    """Patients with 1 to 4 scans each (as in follow-up studies), one class per patient."""
    rng = np.random.default_rng(seed)
    cases = []
    for p in range(n_patients):
        label = classes[rng.choice(len(classes), p=weights)]
        for t in range(int(rng.integers(1, 5))):
            cases.append({"case_id": f"P{p:03d}-{t}", "patient_id": f"P{p:03d}", "class": label})
    return cases


def partitions_of_patients(partitions):
    where = defaultdict(set)
    for name, members in partitions.items():
        for case in members:
            where[case["patient_id"]].add(name)
    return where


@pytest.mark.parametrize("seed", range(10))
def test_no_patient_crosses_partitions(seed):
    cases = cohort(seed)
    partitions, info = split_cases(cases, seed=seed)
    where = partitions_of_patients(partitions)
    crossing = {p: names for p, names in where.items() if len(names) > 1}
    assert crossing == {}
    assert sum(len(m) for m in partitions.values()) == len(cases)  # nothing lost
    assert info["unit"] == "patient"


def test_patient_proportions_follow_the_ratios_in_every_class():
    cases = cohort(0, n_patients=200)
    partitions, info = split_cases(cases, (0.7, 0.15, 0.15), seed=1)
    patients = {name: Counter() for name in partitions}
    for name, members in partitions.items():
        for _, label in {(c["patient_id"], c["class"]) for c in members}:
            patients[name][label] += 1
    totals = patients["training"] + patients["validation"] + patients["testing"]
    for label, total in totals.items():
        for name, ratio in [("training", 0.7), ("validation", 0.15), ("testing", 0.15)]:
            assert abs(patients[name][label] - ratio * total) <= 1.0, (label, name)
    assert info["method"] == "stratified by class"
    assert sum(c["patients"] for c in info["counts"].values()) == 200


def test_same_seed_same_split_other_seed_other_split():
    cases = cohort(4)
    first, _ = split_cases(cases, seed=7)
    again, _ = split_cases(list(reversed(cases)), seed=7)
    other, _ = split_cases(cases, seed=8)
    ids = lambda parts: {n: sorted(c["case_id"] for c in m) for n, m in parts.items()}  # noqa: E731
    assert ids(first) == ids(again)
    assert ids(first) != ids(other)


def test_folds_hold_out_test_and_put_each_patient_in_one_fold():
    cases = cohort(2, n_patients=50)
    partitions, info = split_cases(cases, seed=0, folds=5)
    assert info["folds"] == 5 and info["validation_fold"] == 0
    fold_of = defaultdict(set)
    for case in partitions["training"] + partitions["validation"]:
        fold_of[case["patient_id"]].add(case["fold"])
    assert all(len(f) == 1 for f in fold_of.values())
    assert {next(iter(f)) for f in fold_of.values()} == set(range(5))
    assert all("fold" not in c for c in partitions["testing"])
    assert all(c["fold"] == 0 for c in partitions["validation"])
    test_patients = {c["patient_id"] for c in partitions["testing"]}
    assert test_patients and not test_patients & set(fold_of)

    datalist = {"split": info, **partitions}
    third = select_fold(datalist, 3)
    assert all(c["fold"] == 3 for c in third["validation"])
    assert third["testing"] == partitions["testing"]
    check_no_leakage({n: third[n] for n in ("training", "validation", "testing")})
    with pytest.raises(DatalistError, match=r"expected a fold from 0 to 4, found 5"):
        select_fold(datalist, 5)


def test_without_classes_the_split_is_random_by_patient():
    cases = [{"case_id": f"c{i}"} for i in range(20)]
    partitions, info = split_cases(cases, (0.5, 0.25, 0.25), seed=0)
    assert info["method"] == "random"
    assert [len(partitions[n]) for n in ("training", "validation", "testing")] == [10, 5, 5]


def test_tiny_cohort_says_which_partition_is_empty():
    partitions, info = split_cases([{"case_id": "a"}, {"case_id": "b"}], seed=0)
    assert sum(len(m) for m in partitions.values()) == 2
    assert any("is empty: too few patients (2)" in n for n in info["notes"])


def test_leakage_check_names_the_patient():
    partitions = {
        "training": [{"case_id": "a", "patient_id": "P7"}],
        "testing": [{"case_id": "b", "patient_id": "P7"}, {"case_id": "c", "patient_id": "P8"}],
    }
    with pytest.raises(PatientLeakageError, match=r"found 1 patient\(s\) in several: P7 in testing, training"):
        check_no_leakage(partitions)


@pytest.mark.parametrize("ratios", [(0.7, 0.3), (-1, 1, 1), (0, 0, 0)])
def test_bad_ratios(ratios):
    with pytest.raises(DatalistError, match=r"split ratios: expected three non-negative numbers"):
        split_cases([{"case_id": "a"}], ratios)


def test_duplicate_case_ids_and_too_many_folds():
    with pytest.raises(DatalistError, match="duplicate case ids: a"):
        split_cases([{"case_id": "a"}, {"case_id": "a"}])
    with pytest.raises(DatalistError, match=r"expected 2 <= folds <= number of non-test patients \(\d+\), found 9"):
        split_cases([{"case_id": str(i)} for i in range(6)], folds=9)
