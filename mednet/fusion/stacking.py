"""Stacking: a logistic regression over the sequences' patient-level probabilities.

The regression learns how much to trust each sequence. It is fitted on the
**validation** partition's predictions (never on test data: :func:`fit_stacking` checks
every case against the datalist) and saved beside the bundle's weights as JSON
(``models/stacking.json``: sources, classes, coefficients, the cases it was fitted on),
so that applying it needs no pickle and the file can be read by a person.

Features: for a binary task, one column per source, the logit of its positive-class
probability; for ``C`` classes, the ``C`` log-probabilities of each source.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from mednet.errors import PatientLeakageError
from mednet.io.atomic import write_json_atomic

__all__ = ["StackingFusion", "fit_stacking"]

_CLIP = 1e-6


class StackingFusion:
    """A fitted (or to-be-fitted) stacking model over named sources.

    Args:
        sources: the source names, in feature order (e.g. ``["t1c", "t2"]``).
        classes: class names, negative first for a binary task.
        c: inverse regularisation strength of the logistic regression.

    Shapes:
        probabilities: source -> ``(B, C')`` with ``C' = 1`` (binary, positive class) or
        ``C' = len(classes)``; :meth:`predict_proba` returns ``(B, C')`` likewise.
    """

    def __init__(self, sources: Sequence[str], classes: Sequence[str], c: float = 1.0):
        if not sources:
            raise ValueError("stacking needs at least one source")
        if len(classes) < 2:
            raise ValueError(f"stacking needs at least two classes, found {list(classes)}")
        self.sources = [str(s) for s in sources]
        self.classes = [str(c) for c in classes]
        self.c = float(c)
        self.coef: np.ndarray | None = None
        self.intercept: np.ndarray | None = None
        self.fitted_on: dict = {}

    @property
    def binary(self) -> bool:
        """Two classes (one positive-class column per source)."""
        return len(self.classes) == 2

    def features(self, probabilities: Mapping[str, torch.Tensor | np.ndarray]) -> np.ndarray:
        """``(B, F)`` regression inputs (see the module docstring)."""
        missing = [s for s in self.sources if s not in probabilities]
        if missing:
            raise ValueError(f"stacking: no probabilities for {missing}; it was fitted on {self.sources}")
        columns = []
        for source in self.sources:
            p = np.clip(np.asarray(probabilities[source], dtype=float), _CLIP, 1 - _CLIP)
            if p.ndim != 2:
                raise ValueError(f"stacking: {source!r} probabilities must be (B, C), found shape {p.shape}")
            if self.binary:
                positive = p[:, -1:]  # (B, 1) sigmoid, or the positive column of (B, 2)
                columns.append(np.log(positive) - np.log1p(-positive))
            else:
                if p.shape[1] != len(self.classes):
                    raise ValueError(f"stacking: {source!r} has {p.shape[1]} classes, expected {len(self.classes)}")
                columns.append(np.log(p))
        return np.concatenate(columns, axis=1)

    def fit(self, probabilities: Mapping[str, np.ndarray], targets: Sequence[int], fitted_on: dict | None = None):
        """Fit on ``(B, C')`` probabilities per source and ``(B,)`` class indices; returns self.

        Raises:
            ValueError: fewer than two classes among the targets.
        """
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(targets, dtype=int)
        if len(np.unique(y)) < 2:
            raise ValueError(f"stacking: the fitting cases hold only class(es) {sorted(set(y.tolist()))}; need two")
        model = LogisticRegression(C=self.c, max_iter=1000)
        model.fit(self.features(probabilities), y)
        coef, intercept = model.coef_, model.intercept_
        if not self.binary and len(model.classes_) != len(self.classes):  # a class absent: zero rows for it
            full_coef = np.zeros((len(self.classes), coef.shape[1]))
            full_intercept = np.full(len(self.classes), -1e3)
            full_coef[model.classes_], full_intercept[model.classes_] = coef, intercept
            coef, intercept = full_coef, full_intercept
        self.coef, self.intercept = coef, intercept
        self.fitted_on = dict(fitted_on or {}, cases=len(y))
        return self

    def predict_proba(self, probabilities: Mapping[str, torch.Tensor | np.ndarray]) -> torch.Tensor:
        """``(B, 1)`` positive-class probability (binary) or ``(B, C)`` class probabilities."""
        if self.coef is None or self.intercept is None:
            raise RuntimeError("stacking: not fitted; fit it on validation predictions or load a saved one")
        z = self.features(probabilities) @ self.coef.T + self.intercept
        if self.binary:
            return torch.as_tensor(1.0 / (1.0 + np.exp(-z)), dtype=torch.float32)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return torch.as_tensor(e / e.sum(axis=1, keepdims=True), dtype=torch.float32)

    def coefficients(self) -> dict[str, list[float]]:
        """Each source's regression coefficients (one per class column), for reports."""
        if self.coef is None:
            return {}
        per_source = self.coef.shape[1] // len(self.sources)
        return {s: self.coef[:, i * per_source : (i + 1) * per_source].ravel().tolist()
                for i, s in enumerate(self.sources)}  # fmt: skip

    def save(self, path: os.PathLike | str) -> Path:
        """Write the fitted model as JSON (atomically)."""
        if self.coef is None:
            raise RuntimeError("stacking: nothing to save before fitting")
        doc = {"method": "stacking", "model": "sklearn.linear_model.LogisticRegression", "C": self.c,
               "sources": self.sources, "classes": self.classes, "coef": self.coef.tolist(),
               "intercept": self.intercept.tolist(), "fitted_on": self.fitted_on}  # fmt: skip
        return write_json_atomic(path, doc, indent=2, parents=True)

    @classmethod
    def load(cls, path: os.PathLike | str) -> StackingFusion:
        """Read a model :meth:`save` wrote.

        Raises:
            FileNotFoundError: no such file, with how to make one.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no fitted stacking model; fit one on the validation partition "
                "(the bundle's fit_stacking.json, or mednet.fusion.fit_stacking)"
            )
        doc = json.loads(path.read_text())
        model = cls(doc["sources"], doc["classes"], doc.get("C", 1.0))
        model.coef, model.intercept = np.asarray(doc["coef"]), np.asarray(doc["intercept"])
        model.fitted_on = doc.get("fitted_on", {})
        return model


def fit_stacking(
    grading_json: os.PathLike | str,
    datalist: os.PathLike | str,
    out: os.PathLike | str,
    partition: str = "validation",
    c: float = 1.0,
) -> Path:
    """Fit stacking on a bundle's predictions for the validation partition and save it.

    Args:
        grading_json: ``grading.json`` written by the classification bundle's inference on
            ``partition`` (per case: each branch's probabilities and the true class).
        datalist: the datalist, to check where every case belongs.
        out: where the model goes (e.g. ``models/stacking.json``).
        partition: ``"validation"`` (the only partition stacking may be fitted on, as the
            checkpoint was chosen on it too; training predictions are over-confident).
        c: inverse regularisation strength.

    Raises:
        PatientLeakageError: a case is not in the datalist's validation partition (e.g.
            predictions made on the test partition).
        ValueError: ``partition`` other than validation, or cases without a true class.
    """
    from mednet.io import load_datalist

    if partition != "validation":
        raise ValueError(f"stacking is fitted on the validation partition only, not {partition!r}")
    doc = json.loads(Path(grading_json).read_text())
    parts = load_datalist(datalist)
    where = {str(c["case_id"]): name for name, cases in parts.items() if isinstance(cases, list)
             for c in cases if isinstance(c, Mapping) and "case_id" in c}  # fmt: skip
    cases = doc["cases"]
    wrong = [f"{c['case_id']} ({where.get(str(c['case_id']), 'not in the datalist')})" for c in cases
             if where.get(str(c["case_id"])) != "validation"]  # fmt: skip
    if wrong:
        raise PatientLeakageError(
            f"stacking must be fitted on validation cases only; {len(wrong)} are not: {', '.join(wrong[:5])}"
        )
    classes = list(doc["classes"])
    unlabelled = [c["case_id"] for c in cases if c.get("true_class") not in classes]
    if unlabelled:
        raise ValueError(f"stacking needs the true class of every case; missing for {unlabelled[:5]}")
    sources = list(cases[0]["branches"])
    probabilities = {s: np.array([[c["branches"][s][k] for k in classes] for c in cases]) for s in sources}
    targets = [classes.index(c["true_class"]) for c in cases]
    model = StackingFusion(sources, classes, c)
    model.fit(probabilities, targets, {"partition": partition, "grading_json": str(grading_json)})
    return model.save(out)
