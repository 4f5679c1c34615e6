"""Classification scores from labels and predicted labels (numpy arrays of class ids 0..K-1).

Each function scores along the last axis: one set of predictions gives one number, a matrix of them (the
bootstrap's resamples, one per row) gives one number per row. The training loop and the comparison both
score with these, so a macro-F1 in metrics.json and a macro-F1 in a bootstrap interval are the same number.
Pass `num_classes` (the task's class count) where it is known: a class that neither the labels nor the
predictions hold then still counts, as 0, in a macro average.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


def accuracy(label: np.ndarray, pred: np.ndarray, num_classes: Optional[int] = None) -> np.ndarray:
    return (label == pred).mean(axis=-1)


def _counts(label: np.ndarray, pred: np.ndarray, num_classes: Optional[int]) -> tuple[np.ndarray, ...]:
    """Per class (the last axis): true positives, predicted, actual."""
    k = num_classes or int(max(label.max(initial=0), pred.max(initial=0))) + 1
    classes = np.arange(k)
    is_label = label[..., None, :] == classes[:, None]  # (..., K, n)
    is_pred = pred[..., None, :] == classes[:, None]
    return (is_label & is_pred).sum(-1), is_pred.sum(-1), is_label.sum(-1)


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """top / bottom, 0 where bottom is 0 (a score that is undefined counts as 0, as scikit-learn's default)."""
    top, bottom = np.asarray(top, dtype=float), np.asarray(bottom, dtype=float)
    return np.divide(top, bottom, out=np.zeros(np.broadcast(top, bottom).shape), where=bottom > 0)


def per_class(label: np.ndarray, pred: np.ndarray,
              num_classes: Optional[int] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support of each class, along a new last axis of length K."""
    true_pos, predicted, actual = _counts(label, pred, num_classes)
    precision, recall = _ratio(true_pos, predicted), _ratio(true_pos, actual)
    return precision, recall, _ratio(2 * precision * recall, precision + recall), actual


def f1(label: np.ndarray, pred: np.ndarray, num_classes: Optional[int] = None) -> np.ndarray:
    """F1 of the positive class (class 1): the binary F1."""
    return per_class(label, pred, 2)[2][..., 1]


def macro_f1(label: np.ndarray, pred: np.ndarray, num_classes: Optional[int] = None) -> np.ndarray:
    """The unweighted mean of every class's F1: a rare class counts as much as a common one."""
    return per_class(label, pred, num_classes)[2].mean(axis=-1)


def mcc(label: np.ndarray, pred: np.ndarray, num_classes: Optional[int] = None) -> np.ndarray:
    """Matthews correlation coefficient, in its multi-class form (Gorodkin 2004; the binary MCC for K = 2):
    1 is perfect, 0 no better than chance, whatever the class balance."""
    _, predicted, actual = _counts(label, pred, num_classes)
    n = np.asarray(label.shape[-1], dtype=float)
    correct = (label == pred).sum(-1).astype(float)
    top = correct * n - (predicted * actual).sum(-1)
    bottom = np.sqrt((n ** 2 - (predicted.astype(float) ** 2).sum(-1)) * (n ** 2 - (actual.astype(float) ** 2).sum(-1)))
    return _ratio(top, bottom)


SCORES = {"accuracy": accuracy, "f1": f1, "macro_f1": macro_f1, "mcc": mcc}  # by their names in metrics.json


def scores(label: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict:
    """Every score of one set of predictions, as metrics.json records them: accuracy, macro-F1 and MCC for any
    task; for two classes also the positive class's F1, precision and recall; and each class's own scores."""
    k = len(classes)
    precision, recall, f1s, support = per_class(label, pred, k)
    result = {"accuracy": float(accuracy(label, pred)), "macro_f1": float(f1s.mean()),
              "mcc": float(mcc(label, pred, k))}
    if k == 2:
        result.update(f1=float(f1s[1]), precision=float(precision[1]), recall=float(recall[1]))
    result["per_class"] = {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1s[i]),
                                  "support": int(support[i])} for i, name in enumerate(classes)}
    return result
