"""Patient-level train / validation / test splits and k folds.

The unit of every split is the patient: all scans of one patient land in one
partition, so no model is ever tested on a patient it was trained on (the slice-level
split of the glioma and CPA papers inflated their accuracy). Splits are stratified by
class where classes are given, and seeded.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from mednet.errors import DatalistError, PatientLeakageError

__all__ = [
    "DEFAULT_RATIOS",
    "PARTITIONS",
    "check_no_leakage",
    "largest_remainder",
    "patient_of",
    "select_fold",
    "slice_split_partitions",
    "split_cases",
    "summarise",
]

PARTITIONS: tuple[str, str, str] = ("training", "validation", "testing")
#: The glioma method's split, 7 : 1.5 : 1.5.
DEFAULT_RATIOS: tuple[float, float, float] = (0.7, 0.15, 0.15)


def patient_of(case: Mapping) -> str:
    """A case's patient id (its case id when no patient id is given)."""
    return str(case.get("patient_id") or case["case_id"])


def _normalise_ratios(ratios: Sequence[float]) -> np.ndarray:
    values = np.asarray(ratios, dtype=float)
    if values.shape != (3,) or np.any(values < 0) or values.sum() <= 0:
        raise DatalistError(
            f"split ratios: expected three non-negative numbers (training, validation, testing), found {list(ratios)}"
        )
    return values / values.sum()


def largest_remainder(total: int, ratios: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``total`` in the given proportions."""
    exact = total * ratios
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return counts


def _patients(cases: Sequence[Mapping], stratify: bool) -> tuple[dict[str, list[Mapping]], dict[str, str], list[str]]:
    """Group cases by patient and give each patient a stratum (its most frequent class)."""
    by_patient: dict[str, list[Mapping]] = defaultdict(list)
    for case in cases:
        by_patient[patient_of(case)].append(case)
    notes = []
    strata = {}
    use_classes = stratify and any(c.get("class") not in (None, "") for c in cases)
    for pid, own in by_patient.items():
        classes = Counter(str(c.get("class") or "unknown") for c in own)
        if use_classes and len(classes) > 1:
            notes.append(f"patient {pid} has cases of several classes {dict(classes)}; stratified as the most frequent")
        strata[pid] = sorted(classes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] if use_classes else "all"
    return by_patient, strata, notes


def split_cases(
    cases: Sequence[Mapping],
    ratios: Sequence[float] = DEFAULT_RATIOS,
    *,
    seed: int = 0,
    stratify: bool = True,
    folds: int | None = None,
) -> tuple[dict[str, list[dict]], dict]:
    """Split cases into training, validation and testing by patient.

    Without ``folds``, patients are shuffled within each class and cut in the
    given proportions, so each partition gets its share of every class.
    With ``folds = k``, the testing share is held out the same way, the remaining
    patients are divided into ``k`` folds (scikit-learn's ``StratifiedGroupKFold``),
    each case gets a ``fold`` number, and fold 0 is the validation partition
    (:func:`select_fold` picks another).

    Args:
        cases: datalist entries with ``case_id``, optionally ``patient_id`` and ``class``.
        ratios: training, validation, testing proportions (normalised to sum to 1).
            With ``folds``, only the testing proportion is used.
        seed: random seed; the same seed and cases give the same split.
        stratify: keep class proportions in every partition (when classes are given).
        folds: number of cross-validation folds, or None.

    Returns:
        ``(partitions, info)``: partition name -> list of case dicts (copies), and a
        JSON-ready description of how the split was made, with counts.

    Raises:
        DatalistError: bad ratios, too few patients for the folds, duplicate case ids.
    """
    ids = [str(c["case_id"]) for c in cases]
    duplicated = sorted(k for k, n in Counter(ids).items() if n > 1)
    if duplicated:
        raise DatalistError(f"duplicate case ids: {', '.join(duplicated)}")
    weights = _normalise_ratios(ratios)
    by_patient, strata, notes = _patients(cases, stratify)
    rng = np.random.default_rng(seed)

    # Order patients so that every prefix holds each stratum in proportion: within a
    # stratum, shuffled patients take evenly spaced positions in (0, 1).
    keyed = []
    for stratum in sorted(set(strata.values())):
        members = sorted(p for p, s in strata.items() if s == stratum)
        members = [members[i] for i in rng.permutation(len(members))]
        keyed += [((i + 0.5) / len(members), rng.random(), pid) for i, pid in enumerate(members)]
    order = [pid for *_, pid in sorted(keyed)]

    if folds is None:
        counts = largest_remainder(len(order), weights)
        bounds = np.cumsum(counts)
        assignment = {pid: PARTITIONS[int(np.searchsorted(bounds, i, side="right"))] for i, pid in enumerate(order)}
        fold_of: dict[str, int] = {}
    else:
        n_test = int(largest_remainder(len(order), np.array([1 - weights[2], weights[2]]))[1])
        # the testing share comes from the end of the order, like the ratio split
        test = set(order[len(order) - n_test :])
        rest = [p for p in sorted(by_patient) if p not in test]
        if folds < 2 or len(rest) < folds:
            raise DatalistError(
                f"folds: expected 2 <= folds <= number of non-test patients ({len(rest)}), found {folds}"
            )
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        labels = [strata[p] for p in rest]
        fold_of = {}
        for k, (_, held) in enumerate(splitter.split(rest, labels, groups=rest)):
            fold_of.update({rest[i]: k for i in held})
        assignment = {p: "testing" if p in test else ("validation" if fold_of[p] == 0 else "training") for p in order}

    partitions: dict[str, list[dict]] = {name: [] for name in PARTITIONS}
    for case in cases:
        pid = patient_of(case)
        entry = dict(case)
        if pid in fold_of:
            entry["fold"] = fold_of[pid]
        partitions[assignment[pid]].append(entry)
    for name, weight in zip(PARTITIONS, weights, strict=True):
        if weight > 0 and not partitions[name] and folds is None:
            notes.append(f"{name} is empty: too few patients ({len(order)}) for the ratios")
    check_no_leakage(partitions)
    info = {
        "unit": "patient",
        "method": "stratified by class" if any(s != "all" for s in strata.values()) else "random",
        "seed": seed,
        "ratios": dict(zip(PARTITIONS, (round(float(w), 4) for w in weights), strict=True)),
        "folds": folds,
        "validation_fold": 0 if folds else None,
        "counts": summarise(partitions),
        "notes": notes,
    }
    return partitions, info


def summarise(partitions: Mapping[str, Sequence[Mapping]]) -> dict:
    """Patients, cases and cases per class in each partition."""
    return {
        name: {
            "patients": len({patient_of(c) for c in members}),
            "cases": len(members),
            "classes": dict(sorted(Counter(str(c["class"]) for c in members if c.get("class")).items())),
        }
        for name, members in partitions.items()
    }


def check_no_leakage(partitions: Mapping[str, Sequence[Mapping]]) -> None:
    """Prove that no patient is in two partitions.

    Raises:
        PatientLeakageError: naming each patient found in several partitions.
    """
    seen: dict[str, set[str]] = defaultdict(set)
    for name, members in partitions.items():
        for case in members:
            seen[patient_of(case)].add(name)
    leaked = {pid: sorted(names) for pid, names in seen.items() if len(names) > 1}
    if leaked:
        listing = "; ".join(f"{pid} in {', '.join(names)}" for pid, names in sorted(leaked.items()))
        raise PatientLeakageError(
            f"patient-level split violated: expected every patient in one partition, "
            f"found {len(leaked)} patient(s) in several: {listing}"
        )


def select_fold(datalist: Mapping, fold: int) -> dict:
    """A copy of a k-fold datalist whose validation partition is fold ``fold``.

    Raises:
        DatalistError: the datalist has no folds, or ``fold`` is out of range.
    """
    k = (datalist.get("split") or {}).get("folds")
    if not k:
        raise DatalistError("select_fold: expected a datalist split into folds (--folds), found none")
    if not 0 <= fold < k:
        raise DatalistError(f"select_fold: expected a fold from 0 to {k - 1}, found {fold}")
    pool = list(datalist["training"]) + list(datalist["validation"])
    out = dict(datalist)
    out["training"] = [c for c in pool if c["fold"] != fold]
    out["validation"] = [c for c in pool if c["fold"] == fold]
    out["split"] = dict(datalist["split"], validation_fold=fold, counts=summarise({n: out[n] for n in PARTITIONS}))
    return out


def slice_split_partitions(
    partitions: Mapping[str, Sequence[Mapping]],
    n_slices: int | Callable[[Mapping], int],
    ratios: Sequence[float] = DEFAULT_RATIOS,
    seed: int = 0,
) -> dict[str, list[dict]]:
    """The papers' slice-level split, for measuring how much it inflates test figures.

    Every case of every partition is cut into its slice ranks (the ranks of
    :class:`mednet.transforms.LesionSlicesd`); each case's ranks are shuffled and shared out
    over training, validation and testing by ``ratios``, so that every partition holds
    slices of every patient, as when a paper splits a pool of slices at random. Each
    output case carries ``slice_ranks``; a case whose share for a partition is empty is
    left out of that partition.

    Args:
        partitions: the patient-level partitions (their union is re-split).
        n_slices: slices per case, or a function of the case giving its count (when only
            the slices showing the lesion are used, cases differ).
        ratios: training, validation, testing shares of each case's slices.
        seed: random seed.
    """
    rng = np.random.default_rng(seed)
    weights = _normalise_ratios(ratios)
    out: dict[str, list[dict]] = {name: [] for name in PARTITIONS}
    for case in (c for name in PARTITIONS for c in partitions.get(name, [])):
        count = int(n_slices(case) if callable(n_slices) else n_slices)
        order = rng.permutation(count)
        start = 0
        for name, share in zip(PARTITIONS, largest_remainder(count, weights), strict=True):
            ranks = sorted(int(r) for r in order[start : start + share])
            start += share
            if ranks:
                out[name].append({**case, "slice_ranks": ranks})
    return out
