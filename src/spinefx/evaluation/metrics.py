"""Generic binary-classification metrics: at a threshold, threshold-free, chosen thresholds,
mean +- std over trials and bootstrap intervals.

Pure functions on ``(y_true, y_score)`` arrays; scikit-learn does the ROC/PR work. Undefined
values (AUC with one class present, F1 with no positives at all) are NaN, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import numpy as np

METRIC_NAMES = ("f1", "accuracy", "auc", "ap", "sensitivity", "specificity", "precision")


def _safe_div(num: float, den: float) -> float:
    return float(num / den) if den else math.nan


def binary_metrics(
    y_true: np.ndarray, y_score: np.ndarray, *, threshold: float = 0.5
) -> dict[str, float]:
    """F1, accuracy, AUC, AP, sensitivity, specificity, precision and counts.

    Args:
        y_true: ``(N,)`` 0/1 labels.
        y_score: ``(N,)`` scores (probabilities); positive when ``score >= threshold``.
        threshold: decision threshold.

    Returns:
        Metric name -> value (NaN where undefined), plus ``n``, ``n_positive``, ``tp``, ``fp``,
        ``tn``, ``fn`` and ``threshold``.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y_true = np.asarray(y_true).astype(int)
    y_score = np.asarray(y_score, dtype=float)
    pred = y_score >= threshold
    tp = int(np.sum(pred & (y_true == 1)))
    fp = int(np.sum(pred & (y_true == 0)))
    tn = int(np.sum(~pred & (y_true == 0)))
    fn = int(np.sum(~pred & (y_true == 1)))
    both = len(np.unique(y_true)) == 2
    return {
        "f1": _safe_div(2 * tp, 2 * tp + fp + fn),
        "accuracy": _safe_div(tp + tn, len(y_true)),
        "auc": float(roc_auc_score(y_true, y_score)) if both else math.nan,
        "ap": float(average_precision_score(y_true, y_score)) if y_true.any() else math.nan,
        "sensitivity": _safe_div(tp, tp + fn),
        "specificity": _safe_div(tn, tn + fp),
        "precision": _safe_div(tp, tp + fp),
        "n": int(len(y_true)),
        "n_positive": int(y_true.sum()),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "threshold": float(threshold),
    }


def choose_threshold(
    y_true: np.ndarray, y_score: np.ndarray, *, method: str = "youden", one_class: float = 0.5
) -> float:
    """Threshold maximising Youden's J (sensitivity + specificity - 1) or F1 on given data.

    Returns ``one_class`` (0.5; NaN where a caller must see that none exists) when the data
    hold one class only.
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    y_true = np.asarray(y_true).astype(int)
    if len(np.unique(y_true)) < 2:
        return one_class
    if method == "youden":
        fpr, tpr, thresholds = roc_curve(y_true, y_score)
        best = int(np.argmax(tpr - fpr))
        return float(min(thresholds[best], 1.0))
    if method == "f1":
        precision, recall, thresholds = precision_recall_curve(y_true, y_score)
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        return float(thresholds[int(np.argmax(f1[:-1]))])
    raise ValueError(f"unknown threshold method {method!r}; use 'youden' or 'f1'")


def roc_points(y_true: np.ndarray, y_score: np.ndarray) -> dict[str, np.ndarray]:
    """ROC curve ``fpr``, ``tpr`` and PR curve ``precision``, ``recall`` arrays."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(y_true, y_score)
    precision, recall, _ = precision_recall_curve(y_true, y_score)
    return {"fpr": fpr, "tpr": tpr, "precision": precision, "recall": recall}


def mean_std(values: Iterable[float]) -> dict[str, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value), NaNs ignored."""
    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "n": int(arr.size)}


def aggregate_trials(per_trial: Iterable[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Mean +- std of every metric in :data:`METRIC_NAMES` over trials."""
    per_trial = list(per_trial)
    return {name: mean_std(m.get(name, math.nan) for m in per_trial) for name in METRIC_NAMES}


def bootstrap(
    y_true: np.ndarray,
    y_score: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], float],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> dict[str, float]:
    """Bootstrap mean, std and 95 % percentile interval of ``statistic(y_true, y_score)``.

    Args:
        groups: optional cluster id per item (e.g. patient); whole clusters are resampled.
        seed: seed of the resampling.

    Resamples where the statistic is undefined (NaN, e.g. one class) are dropped.
    """
    rng = np.random.default_rng(seed)
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score)
    if groups is None:
        members = [np.array([i]) for i in range(len(y_true))]
    else:
        groups = np.asarray(groups)
        members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    values = []
    for _ in range(n_resamples):
        pick = rng.integers(0, len(members), size=len(members))
        idx = np.concatenate([members[i] for i in pick])
        value = statistic(y_true[idx], y_score[idx])
        if not math.isnan(value):
            values.append(value)
    if not values:
        return {"mean": math.nan, "std": math.nan, "low": math.nan, "high": math.nan, "n": 0}
    arr = np.asarray(values)
    low, high = np.percentile(arr, [2.5, 97.5])
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        "low": float(low),
        "high": float(high),
        "n": int(arr.size),
    }


def auc_statistic(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """ROC AUC, NaN with one class (for :func:`bootstrap`)."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y_true)) < 2:
        return math.nan
    return float(roc_auc_score(y_true, y_score))
