"""Scores for any number of classes, checked against their textbook definitions on small cases."""

import math

import numpy as np
import pytest

from bertcmp.metrics import accuracy, f1, macro_f1, mcc, per_class, scores


def test_three_classes_by_hand():
    label = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    precision, recall, f1s, support = per_class(label, pred, 3)
    assert precision.tolist() == [0.5, 2 / 3, 1.0] and recall.tolist() == [0.5, 1.0, 0.5]
    assert support.tolist() == [2, 2, 2]
    assert macro_f1(label, pred, 3) == pytest.approx(np.mean([0.5, 0.8, 2 / 3]))
    # Gorodkin's MCC: (c s - sum p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)); c = 4, s = 6, p = (2, 3, 1)
    expected = (4 * 6 - (2 * 2 + 3 * 2 + 1 * 2)) / math.sqrt((36 - (4 + 9 + 1)) * (36 - 12))
    assert mcc(label, pred, 3) == pytest.approx(expected)


def test_binary_mcc_is_the_phi_coefficient_and_f1_the_positive_class():
    rng = np.random.default_rng(1)
    label = rng.integers(0, 2, 500)
    pred = np.where(rng.random(500) < 0.8, label, 1 - label)
    tp, tn = int(((pred == 1) & (label == 1)).sum()), int(((pred == 0) & (label == 0)).sum())
    fp, fn = int(((pred == 1) & (label == 0)).sum()), int(((pred == 0) & (label == 1)).sum())
    phi = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert mcc(label, pred) == pytest.approx(phi)
    assert f1(label, pred) == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_rows_are_scored_one_by_one():
    """The bootstrap scores a matrix of resamples at once: each row must score as it would alone."""
    rng = np.random.default_rng(2)
    label, pred = rng.integers(0, 4, (5, 40)), rng.integers(0, 4, (5, 40))
    for score in (accuracy, macro_f1, mcc):
        together = score(label, pred, 4)
        assert together == pytest.approx([float(score(label[i], pred[i], 4)) for i in range(5)])


def test_a_class_never_predicted_counts_as_zero():
    label, pred = np.array([0, 1, 2, 2]), np.array([0, 1, 1, 1])
    assert per_class(label, pred, 3)[2].tolist()[2] == 0.0
    assert mcc(np.zeros(4, int), np.zeros(4, int), 2) == 0.0  # undefined (one class everywhere): 0, not NaN


def test_scores_record_what_metrics_json_holds():
    label, pred = np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])
    many = scores(label, pred, ["a", "b", "c"])
    assert set(many) == {"accuracy", "macro_f1", "mcc", "per_class"} and list(many["per_class"]) == ["a", "b", "c"]
    two = scores(np.array([0, 1, 1]), np.array([0, 1, 0]), ["neg", "pos"])
    assert {"f1", "precision", "recall"} <= set(two) and two["recall"] == 0.5
