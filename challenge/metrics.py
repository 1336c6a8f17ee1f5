"""The organisers' metrics (definitions: docs/formats.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Score:
    value: float  # the official score
    details: dict[str, float] = field(default_factory=dict)  # per label, as the track names them


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r; 0 when either side is constant (the organisers' scripts would give NaN)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    xc, yc = x - x.mean(), y - y.mean()
    denominator = np.sqrt((xc**2).sum() * (yc**2).sum())
    return float((xc * yc).sum() / denominator) if denominator > 0 else 0.0


def mean_pearson(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, list[float]]:
    per_column = [pearson(y_true[:, j], y_pred[:, j]) for j in range(y_true.shape[1])]
    return float(np.mean(per_column)), per_column


def ccc(x: np.ndarray, y: np.ndarray) -> float:
    """Concordance correlation with population statistics (ddof=0) throughout: mixing np.cov
    (ddof=1) with np.var (ddof=0) is a known pitfall in public code."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    covariance = ((x - x.mean()) * (y - y.mean())).mean()
    denominator = x.var() + y.var() + (x.mean() - y.mean()) ** 2
    return float(2 * covariance / denominator) if denominator > 0 else 0.0


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, labels=list(range(n_classes)), average="macro", zero_division=0))


def present_macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro F1 over the classes present in the truth of this set (the field's convention): a
    class with no example and no prediction does not count as a 0 that caps the score."""
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0)) if len(y_true) else float("nan")


def classification_figures(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """The figures a class report gives: macro F1 over the classes present (the headline), macro
    F1 over all classes (what some papers compare with: labelled as such), micro F1 and Cohen's kappa."""
    from sklearn.metrics import cohen_kappa_score, f1_score

    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    agree = len(np.unique(np.concatenate([y_true, y_pred]))) > 1
    return {
        "macro_f1": present_macro_f1(y_true, y_pred),
        "macro_f1_all_classes": macro_f1(y_true, y_pred, n_classes),
        "micro_f1": float(f1_score(y_true, y_pred, labels=list(range(n_classes)), average="micro", zero_division=0)),
        # kappa is undefined when truth and prediction hold one class between them
        "kappa": float(cohen_kappa_score(y_true, y_pred)) if agree else 0.0,
        "classes_present": float(len(np.unique(y_true))),
    }


def mean_binary_f1(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, list[float]]:
    from sklearn.metrics import f1_score

    per_label = [float(f1_score(y_true[:, j], y_pred[:, j], zero_division=0)) for j in range(y_true.shape[1])]
    return float(np.mean(per_label)), per_label
