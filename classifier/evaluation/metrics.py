"""Test-set metrics: accuracy with a Wilson 95% interval, per-class and macro scores, ROC AUC.

Undefined values (precision of a class never predicted, AUC of a class absent from the test
set) are ``None``, never a silent 0. Macro scores average the classes present in the labels
(``classes_present``): a two-class dataset is scored on its two classes.
"""
from __future__ import annotations

import numpy as np

from cxrdata import CLASSES
from runkit.intervals import wilson_interval


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = len(CLASSES)) -> np.ndarray:
    """Counts with rows = true class, columns = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U); None unless both outcomes occur."""
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = average_ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _mean(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if len(defined) == len(values) else None


def classification_metrics(y_true, probabilities) -> dict:
    """Every reported number for labels ``y_true`` (N,) and class probabilities (N, K)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y_pred = probabilities.argmax(axis=1)
    matrix = confusion_matrix(y_true, y_pred, probabilities.shape[1])
    n = int(matrix.sum())
    correct = int(np.trace(matrix))
    per_class = {}
    for k, name in enumerate(CLASSES[:probabilities.shape[1]]):
        tp = matrix[k, k]
        fp = matrix[:, k].sum() - tp
        fn = matrix[k, :].sum() - tp
        tn = n - tp - fp - fn
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        f1 = (_ratio(2 * precision * recall, precision + recall) or 0.0
              if precision is not None and recall is not None else None)
        per_class[name] = {"precision": precision, "recall": recall,
                           "recall_ci95": list(wilson_interval(int(tp), int(tp + fn))) if tp + fn else None,
                           "specificity": _ratio(tn, tn + fp),
                           "f1": f1, "support": int(tp + fn), "roc_auc": roc_auc(y_true == k, probabilities[:, k])}
    present = [name for name, scores in per_class.items() if scores["support"]]
    macro = {key: _mean([per_class[name][key] for name in present])
             for key in ("precision", "recall", "specificity", "f1", "roc_auc")}
    low, high = wilson_interval(correct, n)
    return {"n": n, "correct": correct, "accuracy": correct / n if n else None,
            "accuracy_ci95": [low, high], "per_class": per_class, "macro": macro,
            "confusion_matrix": matrix.tolist(), "classes": list(CLASSES[:probabilities.shape[1]]),
            "classes_present": present}
