"""Classification scores from labels and predicted labels (numpy arrays, 1 = the positive class).

Each function scores along the last axis: one set of predictions gives one number, a matrix of them (the
bootstrap's resamples, one per row) gives one number per row. The training loop and the comparison both
score with these, so an F1 in metrics.json and an F1 in a bootstrap interval are the same F1.
"""

from __future__ import annotations

import numpy as np


def accuracy(label: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return (label == pred).mean(axis=-1)


def precision_recall_f1(label: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of the positive class; each is 0 where it is undefined (nothing predicted, or nothing to find)."""
    true_pos = ((pred == 1) & (label == 1)).sum(axis=-1)
    predicted, actual = (pred == 1).sum(axis=-1), (label == 1).sum(axis=-1)
    precision = true_pos / np.maximum(predicted, 1)
    recall = true_pos / np.maximum(actual, 1)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(np.shape(both)), where=both > 0)
    return precision, recall, f1


def f1(label: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return precision_recall_f1(label, pred)[2]
