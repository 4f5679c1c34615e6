"""Is a difference between two classifiers more than noise? Paired tests on the same test items, and
intervals over seeds."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Optional, Sequence

import numpy as np
from scipy import stats

from bertcmp import metrics



def mcnemar_exact(label: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> tuple[int, int, float]:
    """Exact (binomial) McNemar test: (items only A gets right, items only B gets right, two-sided p)."""
    right_a, right_b = pred_a == label, pred_b == label
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    if only_a + only_b == 0:
        return only_a, only_b, 1.0
    return only_a, only_b, float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def paired_bootstrap(label: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, metric: str = "accuracy",
                     resamples: int = 10_000, seed: int = 0, level: float = 0.95,
                     num_classes: Optional[int] = None) -> tuple[float, float, float, float]:
    """metric(A) - metric(B) on the test items, its percentile interval from resampling the items (the same
    resampled items for both, which is what makes it paired), and a two-sided p-value: twice the share of
    resamples on the far side of 0."""
    score = partial(metrics.SCORES[metric], num_classes=num_classes)

    rng = np.random.default_rng(seed)
    n = len(label)
    observed = score(label, pred_a) - score(label, pred_b)
    diffs = np.empty(resamples)
    chunk = max(1, 2_000_000 // max(n, 1))  # bounded memory for large test sets
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        diffs[start:start + len(idx)] = score(label[idx], pred_a[idx]) - score(label[idx], pred_b[idx])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    p_value = min(1.0, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean()))
    return float(observed), float(low), float(high), float(p_value)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: the p-values of several comparisons made at once, each raised so that the
    chance of any false "better" among them stays at the chosen level."""
    order = np.argsort(p_values, kind="stable")
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class SeedDifference:
    mean: float
    low: float
    high: float
    paired: bool
    n_a: int
    n_b: int
    p_value: float  # two-sided, of the t test behind the interval


def seed_difference(a: dict, b: dict, level: float = 0.95) -> Optional[SeedDifference]:
    """Mean of metric(A) - metric(B) over seeds, with a t interval: paired by seed when at least two seeds
    are shared, otherwise Welch's interval for two independent samples. `a` and `b` map seed -> value."""
    if len(a) < 2 or len(b) < 2:
        return None
    shared = sorted(set(a) & set(b), key=str)
    if len(shared) >= 2:
        diffs = np.array([a[s] - b[s] for s in shared])
        mean, se, dof = diffs.mean(), diffs.std(ddof=1) / np.sqrt(len(diffs)), len(diffs) - 1
        paired = True
    else:
        xa, xb = np.array(list(a.values())), np.array(list(b.values()))
        va, vb = xa.var(ddof=1) / len(xa), xb.var(ddof=1) / len(xb)
        mean, se = xa.mean() - xb.mean(), np.sqrt(va + vb)
        dof = (va + vb) ** 2 / (va ** 2 / (len(xa) - 1) + vb ** 2 / (len(xb) - 1)) if va + vb > 0 else 1
        paired = False
    half = float(stats.t.ppf(0.5 + level / 2, dof) * se) if se > 0 else 0.0
    p_value = float(2 * stats.t.sf(abs(mean) / se, dof)) if se > 0 else float(mean == 0)
    return SeedDifference(float(mean), float(mean - half), float(mean + half), paired, len(a), len(b), p_value)
