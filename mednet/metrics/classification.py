"""Classification metrics at patient level, each with a bootstrap confidence interval over patients.

Papers A and B report slice-level figures on slices split without regard to patients;
mednet reports patient-level figures (one aggregated probability per patient, see
:func:`mednet.grading.patient_probabilities`) as the primary result, and labels any
slice-level figure as secondary. Every figure carries a 95% percentile bootstrap interval
over the rows (patients), from :func:`mednet.metrics.bootstrap_ci`.

Conventions:

* a figure whose denominator is empty is NaN (e.g. sensitivity with no positive patient,
  AUC with a single class); bootstrap resamples giving NaN are skipped;
* binary prediction is positive when the probability is ``>= threshold`` (paper A's rule);
  multi-class prediction is the most probable class;
* the figures are scikit-learn's (``precision_recall_fscore_support``, ``confusion_matrix``,
  ``roc_curve``; the Brier score as ``mean_squared_error`` of the probabilities, which is
  what ``brier_score_loss`` computes), except the ROC AUC, computed for every resample at
  once in its Mann-Whitney form (equal to ``roc_auc_score``'s, tested) and the expected
  calibration error (sklearn has none); the specificity is the recall of the negatives
  ("not this class");
* the resamples are scored together, one column per resample, so that each library call
  covers a whole batch of resamples (:func:`mednet.metrics.bootstrap_resamples`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import sklearn
from sklearn.metrics import (
    confusion_matrix,
    mean_squared_error,
    precision_recall_fscore_support,
    roc_curve,
)

from mednet.io.atomic import atomic_path
from mednet.metrics.bootstrap import bootstrap_resamples

__all__ = ["classification_summary", "expected_calibration_error", "plot_confusion", "plot_roc"]

SLICE_LEVEL_NOTE = "slice-level figures are secondary: slices of one patient are not independent"
_LEVELS = ("patient", "slice")
_NAN = float("nan")


def _probabilities(y_prob) -> np.ndarray:
    """``(N,)`` positive-class probabilities or ``(N, C)`` class probabilities; ``(N, 1)`` and ``(N, 2)`` are binary."""
    p = np.asarray(y_prob, dtype=float)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    elif p.ndim == 2 and p.shape[1] == 2:
        p = p[:, 1]
    if p.ndim not in (1, 2):
        raise ValueError(f"y_prob must be (N,) or (N, C), got shape {p.shape}")
    if not np.all(np.isfinite(p)) or (p.size and (p.min() < 0 or p.max() > 1)):
        raise ValueError("y_prob must hold finite probabilities within [0, 1]")
    return p


def _truth(y_true, n_classes: int, classes: Sequence[str] | None) -> np.ndarray:
    """Class indices ``(N,)`` from indices, booleans or class names."""
    raw = np.asarray(y_true)
    if raw.ndim != 1:
        raise ValueError(f"y_true must be (N,), got shape {raw.shape}")
    if raw.dtype.kind in "USO":
        names = [str(c) for c in classes] if classes is not None else []
        unknown = sorted({str(v) for v in raw.tolist()} - set(names))
        if unknown:
            raise ValueError(f"y_true holds names {unknown} not among classes {names}")
        return np.array([names.index(str(v)) for v in raw.tolist()], dtype=int)
    if raw.dtype.kind == "f" and not np.all(np.isfinite(raw) & (raw == np.round(raw))):
        raise ValueError("y_true must hold class indices (integers), not fractions or NaN")
    y = raw.astype(int)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"y_true must hold class indices 0..{n_classes - 1}, got values {sorted(set(y.tolist()))}")
    return y


def _inputs(y_true, y_prob, classes) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    p = _probabilities(y_prob)
    n_classes = 2 if p.ndim == 1 else p.shape[1]
    if classes is None:
        classes = ("negative", "positive") if n_classes == 2 else tuple(f"class_{i}" for i in range(n_classes))
    classes = tuple(str(c) for c in classes)
    if len(classes) != n_classes:
        raise ValueError(f"{len(classes)} class names for {n_classes} classes")
    y = _truth(y_true, n_classes, classes)
    if len(y) != len(p):
        raise ValueError(f"y_true has {len(y)} rows but y_prob {len(p)}")
    return y, p, classes


def expected_calibration_error(y_true, y_prob, bins: int = 10) -> float:
    """Expected calibration error over equal-width probability bins.

    Binary (``y_prob`` of shape ``(N,)``): the positive-class probability against the
    outcome. Multi-class (``(N, C)``, C > 2): top-label calibration, the highest probability
    against whether that class is right. Bin ``i`` holds confidences in
    ``[i / bins, (i + 1) / bins)``, the last bin also 1.0. ECE is the sum over bins of the bin's
    share of the rows times ``|observed frequency - mean confidence|``.

    Args:
        y_true: ``(N,)`` class indices (0/1 for binary).
        y_prob: ``(N,)`` or ``(N, C)`` probabilities (``(N, 2)`` counts as binary, column 1).
        bins: number of bins.

    Returns:
        ECE in ``[0, 1]``; NaN for no rows.

    Raises:
        ValueError: ``bins`` below 1, or invalid inputs.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    p = _probabilities(y_prob)
    y = _truth(y_true, 2 if p.ndim == 1 else p.shape[1], None)
    if not len(y):
        return _NAN
    if p.ndim == 1:
        return float(_ece(y[:, None] == 1, p[:, None], bins)[0])
    return float(_ece((p.argmax(axis=1) == y)[:, None], p.max(axis=1)[:, None], bins)[0])


def _ece(outcome: np.ndarray, confidence: np.ndarray, bins: int) -> np.ndarray:
    """ECE of each column: ``outcome`` ``(n, B)`` booleans, ``confidence`` ``(n, B)`` -> ``(B,)``.

    sklearn has no ECE: ``calibration_curve`` gives each bin's frequency and mean confidence
    but not its row count, and closes its bins on the right (``(a, b]``), not on the left.
    """
    n, columns = confidence.shape
    index = np.minimum((confidence * bins).astype(int), bins - 1) + bins * np.arange(columns)
    gap = np.bincount(index.ravel(), weights=(outcome - confidence).ravel(), minlength=bins * columns)
    return np.abs(gap.reshape(columns, bins)).sum(axis=1) / n


def _confusion_figures(truth: np.ndarray, called: np.ndarray) -> dict[str, np.ndarray]:
    """Sensitivity, specificity, precision and F1 of each column's yes/no problem: ``(n, B)`` -> ``(B,)``.

    The columns (resamples) are scored in one ``precision_recall_fscore_support`` call: column
    ``b``'s rows are labelled ``2b`` (no) and ``2b + 1`` (yes), so that label ``2b + 1``'s
    recall is the column's sensitivity and label ``2b``'s recall its specificity.
    """
    offset = 2 * np.arange(truth.shape[1])
    precision, recall, f1, _ = precision_recall_fscore_support(
        (offset + truth).ravel(),
        (offset + called).ravel(),
        labels=np.arange(2 * truth.shape[1]),
        average=None,
        zero_division=np.nan,
    )
    return {"sensitivity": recall[1::2], "specificity": recall[0::2], "precision": precision[1::2], "f1": f1[1::2]}


def _auc(truth: np.ndarray, score: np.ndarray) -> np.ndarray:
    """ROC AUC of each column with both outcomes (NaN for the others): ``(n, B)`` -> ``(B,)``.

    The Mann-Whitney form, all columns at once: ``(sum of the positives' ranks - P (P + 1) / 2)
    / (P N)``, tied scores sharing their mean rank. It is the area under the ROC curve with
    ties counted a half, what ``sklearn.metrics.roc_auc_score`` computes (the tests compare
    the two), without a call per column: scoring a cohort's 2000 bootstrap resamples one
    column at a time took minutes.
    """
    from scipy.stats import rankdata

    auc = np.full(truth.shape[1], _NAN)
    positives = truth.sum(axis=0)
    negatives = truth.shape[0] - positives
    both = (positives > 0) & (negatives > 0)
    if both.any():
        ranks = rankdata(score[:, both], axis=0)  # (n, columns): average ranks of ties
        pos = positives[both].astype(float)
        auc[both] = ((ranks * truth[:, both]).sum(axis=0) - pos * (pos + 1) / 2) / (pos * negatives[both])
    return auc


def _binary_figures(y: np.ndarray, p: np.ndarray, index: np.ndarray, threshold: float, bins: int) -> dict:
    """Every binary figure of each resample: ``index`` ``(B, n)`` rows of ``y`` (0/1) and ``p`` -> ``(B,)`` each."""
    truth, score = y[index].T == 1, p[index].T  # (n, B): one column per resample
    called = score >= threshold
    return {
        "accuracy": np.mean(called == truth, axis=0),
        **_confusion_figures(truth, called),
        "auc": _auc(truth, score),
        "brier": mean_squared_error(truth, score, multioutput="raw_values"),  # brier_score_loss, per column
        "ece": _ece(truth, score, bins),
    }


_PER_CLASS = ("sensitivity", "specificity", "precision", "f1", "auc")


def _multiclass_figures(y: np.ndarray, p: np.ndarray, index: np.ndarray, bins: int) -> dict:
    """Every multi-class figure of each resample: ``index`` ``(B, n)`` rows of ``y`` and ``p`` ``(N, C)``.

    Keys: the summary's figure names, and ``(c, name)`` for class ``c``'s one-vs-rest figures;
    values ``(B,)``.
    """
    n_classes = p.shape[1]
    truth, prob = y[index].T, np.moveaxis(p[index], 0, 1)  # (n, B), (n, B, C)
    called = prob.argmax(axis=2)
    onehot = truth[..., None] == np.arange(n_classes)  # (n, B, C)
    columns = onehot.reshape(len(truth), -1)  # (n, B * C): one yes/no problem per resample and class
    auc = _auc(columns, prob.reshape(len(truth), -1)).reshape(-1, n_classes)
    per_class = [{**_confusion_figures(truth == c, called == c), "auc": auc[:, c]} for c in range(n_classes)]
    every = onehot.any(axis=0).all(axis=1)  # macro figures need every class in the resample

    def macro(name: str) -> np.ndarray:
        values = np.stack([figures[name] for figures in per_class], axis=1)  # (B, C)
        if name == "precision":
            values = np.nan_to_num(values, nan=0.0)  # sklearn's zero_division=0
        return np.where(every, values.mean(axis=1), _NAN)

    squared = mean_squared_error(columns, prob.reshape(len(truth), -1), multioutput="raw_values")
    return {
        "accuracy": np.mean(called == truth, axis=0),
        **{f"macro_{name}": macro(name) for name in _PER_CLASS},
        "brier": squared.reshape(-1, n_classes).sum(axis=1),  # brier_score_loss over C classes, per resample
        "ece": _ece(called == truth, prob.max(axis=2), bins),
        **{(c, name): figures[name] for c, figures in enumerate(per_class) for name in _PER_CLASS},
    }


def classification_summary(
    y_true,
    y_prob,
    *,
    classes: Sequence[str] | None = None,
    threshold: float = 0.5,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    level: str = "patient",
    bins: int = 10,
) -> dict:
    """Classification figures with bootstrap confidence intervals over the rows (patients).

    Binary (``y_prob`` of shape ``(N,)``, the positive class's probability; ``(N, 2)`` uses
    column 1): ``accuracy``, ``sensitivity`` (recall), ``specificity``, ``precision``, ``f1``,
    ``auc`` (ROC), ``brier`` (mean squared error of the probability) and ``ece``
    (:func:`expected_calibration_error`), the prediction being positive when
    ``probability >= threshold``.

    Multi-class (``(N, C)``, C > 2; prediction: the most probable class): ``accuracy``,
    ``macro_sensitivity`` (balanced accuracy), ``macro_specificity``, ``macro_precision``,
    ``macro_f1``, ``macro_auc`` (one-vs-rest), ``brier`` (sum over classes, range 0..2) and
    ``ece`` (top-label), plus ``per_class[name]`` with the one-vs-rest ``sensitivity``,
    ``specificity``, ``precision``, ``f1`` and ``auc``. Macro figures are NaN for a (re)sample
    lacking a class (such resamples are skipped); a class never predicted counts as precision
    0 in ``macro_precision`` (sklearn's ``zero_division=0``) but is NaN in ``per_class``.

    Every figure is a :func:`mednet.metrics.bootstrap_ci` dict ``{"value", "ci_low",
    "ci_high", "n"}``; all figures use the same resamples (one seed).

    Args:
        y_true: ``(N,)`` true class indices (0 negative, 1 positive for binary), booleans, or
            names from ``classes``.
        y_prob: ``(N,)`` or ``(N, C)`` probabilities, one row per patient (or slice).
        classes: class names, index order; default ``("negative", "positive")`` or ``class_i``.
        threshold: binary decision threshold (ignored for multi-class).
        n_boot: bootstrap resamples.
        confidence: interval coverage.
        seed: bootstrap seed.
        level: ``"patient"`` (primary) or ``"slice"`` (secondary: adds a ``"note"`` saying so).
        bins: bins of the calibration error.

    Returns:
        The figures above and ``"confusion_matrix"`` (counts, rows true class, columns
        predicted, in ``classes`` order: binary ``[[TN, FP], [FN, TP]]``), ``"classes"``,
        ``"support"`` (true count per class), ``"threshold"`` (None for multi-class), ``"n"``,
        ``"level"`` and, for slices, ``"note"``.

    Raises:
        ValueError: unknown level, mismatched or invalid inputs, no rows.
    """
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {_LEVELS}, got {level!r}")
    y, p, classes = _inputs(y_true, y_prob, classes)
    if not len(y):
        raise ValueError("no rows to evaluate")
    binary = p.ndim == 1
    n_classes = len(classes)
    out: dict = {"level": level}
    if level == "slice":
        out["note"] = SLICE_LEVEL_NOTE
    out.update({"n": len(y), "classes": list(classes), "threshold": float(threshold) if binary else None})
    out["support"] = np.bincount(y, minlength=n_classes).tolist()
    predicted = (p >= threshold).astype(int) if binary else p.argmax(axis=1)
    out["confusion_matrix"] = confusion_matrix(y, predicted, labels=np.arange(n_classes)).tolist()

    def statistic(index: np.ndarray) -> dict:
        return _binary_figures(y, p, index, threshold, bins) if binary else _multiclass_figures(y, p, index, bins)

    # the inputs are checked above: skip sklearn's checks of its arguments
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        figures = bootstrap_resamples(len(y), statistic, n_boot=n_boot, confidence=confidence, seed=seed)
    out.update({name: ci for name, ci in figures.items() if isinstance(name, str)})
    if not binary:
        out["per_class"] = {cls: {name: figures[c, name] for name in _PER_CLASS} for c, cls in enumerate(classes)}
    return out


def _save(figure, path: os.PathLike | str) -> Path:
    """Write a matplotlib figure as PNG atomically (:func:`mednet.io.atomic.atomic_path`)."""
    with atomic_path(path, parents=True) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    return Path(path)


def _new_figure(size: tuple[float, float]):
    """A figure on its own Agg canvas: no pyplot, no global backend state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _roc_curves(y: np.ndarray, p: np.ndarray, classes: Sequence[str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The curves :func:`plot_roc` draws: ``(legend label, fpr, tpr)``, one per class with both outcomes.

    ``fpr`` and ``tpr`` hold a point at every distinct threshold, from (0, 0) to (1, 1).
    """
    binary = p.ndim == 1
    scores = [p] if binary else list(p.T)
    targets = [y == 1] if binary else [y == c for c in range(len(classes))]
    names = classes[1:] if binary else classes
    curves = []
    for name, positive, score in zip(names, targets, scores, strict=True):
        if 0 < positive.sum() < len(positive):
            fpr, tpr, _ = roc_curve(positive, score, drop_intermediate=False)
            auc = float(_auc(positive[:, None], score[:, None])[0])
            curves.append((f"AUC {auc:.3f}" if binary else f"{name} (AUC {auc:.3f})", fpr, tpr))
    return curves


def plot_roc(
    y_true, y_prob, path: os.PathLike | str, title: str = "ROC curve", classes: Sequence[str] | None = None
) -> Path:
    """Plot the ROC curve (one-vs-rest, one curve per class, for multi-class) to a PNG, atomically.

    Args:
        y_true: ``(N,)`` true class indices (or names from ``classes``).
        y_prob: ``(N,)`` positive-class probabilities or ``(N, C)`` class probabilities.
        path: the PNG to write (folders are created).
        title: the plot's title.
        classes: class names for the legend.

    Returns:
        ``path``.

    Raises:
        ValueError: no class has both positive and negative rows (no curve can be drawn).
    """
    curves = _roc_curves(*_inputs(y_true, y_prob, classes))
    if not curves:
        raise ValueError("the ROC curve needs both positive and negative rows")
    figure = _new_figure((5.0, 5.0))
    axes = figure.add_subplot()
    for label, fpr, tpr in curves:
        axes.plot(fpr, tpr, linewidth=1.5, label=label)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 - specificity", ylabel="sensitivity", title=title)
    axes.set_aspect("equal")
    axes.legend(loc="lower right", fontsize="small")
    return _save(figure, path)


def plot_confusion(matrix, classes: Sequence[str], path: os.PathLike | str, title: str = "Confusion matrix") -> Path:
    """Plot a confusion matrix of counts (rows true, columns predicted) to a PNG, atomically.

    Each cell shows its count and its share of the true class (row percentage); colours
    follow the row share so that small classes stay readable.

    Args:
        matrix: ``(C, C)`` counts.
        classes: the ``C`` class names.
        path: the PNG to write (folders are created).
        title: the plot's title.

    Returns:
        ``path``.

    Raises:
        ValueError: the matrix is not square or does not match ``classes``.
    """
    counts = np.asarray(matrix, dtype=float)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] != len(classes):
        raise ValueError(
            f"need a {len(classes)} x {len(classes)} matrix for {len(classes)} classes, got {counts.shape}"
        )
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    size = 1.2 + 1.1 * len(classes)
    figure = _new_figure((size + 1.0, size))
    axes = figure.add_subplot()
    image = axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            axes.text(
                j,
                i,
                f"{int(counts[i, j])}\n{100 * share[i, j]:.0f}%",
                ha="center",
                va="center",
                color="white" if share[i, j] > 0.5 else "black",
                fontsize="small",
            )
    ticks = np.arange(len(classes))
    axes.set_xticks(ticks, labels=list(classes))
    axes.set_yticks(ticks, labels=list(classes))
    axes.set(xlabel="predicted", ylabel="true", title=title)
    figure.colorbar(image, ax=axes, label="share of true class")
    return _save(figure, path)
