"""Is a difference between two classifiers more than noise, or less than a margin? Paired tests on the same test
items, intervals over seeds, and the tests across tasks."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Optional, Sequence

import numpy as np
from scipy import stats

from bertcmp import metrics

LEVEL = 0.95              # the interval a "better" rests on
EQUIVALENCE_LEVEL = 0.90  # two one-sided tests at 5 % each: the 90 % interval inside the margin


def mcnemar_exact(label: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> tuple[int, int, float]:
    """Exact (binomial) McNemar test: (items only A gets right, items only B gets right, two-sided p)."""
    right_a, right_b = pred_a == label, pred_b == label
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    if only_a + only_b == 0:
        return only_a, only_b, 1.0
    return only_a, only_b, float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


@dataclass
class Interval:
    """A difference A - B, its 95 % interval, the 90 % interval of the equivalence test, and a two-sided p."""
    mean: float
    low: float
    high: float
    low90: float
    high90: float
    p_value: float


def paired_bootstrap(label: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, metric: str = "accuracy",
                     resamples: int = 10_000, seed: int = 0, num_classes: Optional[int] = None) -> Interval:
    """metric(A) - metric(B) on the test items, its percentile intervals from resampling the items (the same
    resampled items for both, which is what makes it paired), and a two-sided p-value: twice the share of
    resamples on the far side of 0."""
    score = partial(metrics.SCORES[metric], num_classes=num_classes)
    observed, diffs = bootstrap_differences(label, pred_a, pred_b, score, resamples, seed)
    return _interval(float(observed), diffs)


def per_class_f1_bootstrap(label: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, num_classes: int,
                           resamples: int = 10_000, seed: int = 0) -> list[Interval]:
    """Each class's F1(A) - F1(B) on the test items, with the paired bootstrap's intervals and p-value."""
    def f1s(lab: np.ndarray, pred: np.ndarray) -> np.ndarray:
        return metrics.per_class(lab, pred, num_classes)[2]

    observed, diffs = bootstrap_differences(label, pred_a, pred_b, f1s, resamples, seed, width=num_classes)
    return [_interval(float(observed[k]), diffs[:, k]) for k in range(num_classes)]


def bootstrap_differences(label: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, score, resamples: int,
                          seed: int, width: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """score(A) - score(B) on the items, and on `resamples` resamplings of them (the same resampled items for
    both: what makes it paired); `width` is how many numbers the score gives per set of predictions."""
    rng = np.random.default_rng(seed)
    n = len(label)
    observed = score(label, pred_a) - score(label, pred_b)
    diffs = np.empty((resamples, width)) if width > 1 else np.empty(resamples)
    chunk = max(1, 2_000_000 // max(n * width, 1))  # bounded memory for large test sets
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        diffs[start:start + len(idx)] = score(label[idx], pred_a[idx]) - score(label[idx], pred_b[idx])
    return observed, diffs


def _interval(observed: float, diffs: np.ndarray) -> Interval:
    """The percentile intervals of the resampled differences, and a two-sided p-value: twice the share of
    resamples on the far side of 0."""
    low, high = _percentiles(diffs, LEVEL)
    low90, high90 = _percentiles(diffs, EQUIVALENCE_LEVEL)
    p_value = min(1.0, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean()))
    return Interval(observed, low, high, low90, high90, float(p_value))


def _percentiles(diffs: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return float(low), float(high)


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
class SeedDifference(Interval):
    paired: bool
    n_a: int
    n_b: int
    sd_a: float     # the spread of each side's runs over seeds
    sd_b: float
    sd_diff: float  # the spread of the per-seed differences (paired only, else nan)


def seed_difference(a: dict, b: dict) -> Optional[SeedDifference]:
    """Mean of metric(A) - metric(B) over seeds, with t intervals: paired by seed when at least two seeds are
    shared, otherwise Welch's intervals for two independent samples. `a` and `b` map seed -> value."""
    if len(a) < 2 or len(b) < 2:
        return None
    xa, xb = np.array(list(a.values())), np.array(list(b.values()))
    shared = sorted(set(a) & set(b), key=str)
    if len(shared) >= 2:
        diffs = np.array([a[s] - b[s] for s in shared])
        mean, sd_diff = diffs.mean(), diffs.std(ddof=1)
        se, dof = sd_diff / np.sqrt(len(diffs)), len(diffs) - 1
    else:
        mean, sd_diff = xa.mean() - xb.mean(), float("nan")
        se, dof = welch(xa.std(ddof=1), xb.std(ddof=1), len(xa), len(xb))
    (low, high), (low90, high90) = (_t_interval(mean, se, dof, level) for level in (LEVEL, EQUIVALENCE_LEVEL))
    p_value = float(2 * stats.t.sf(abs(mean) / se, dof)) if se > 0 else float(mean == 0)
    return SeedDifference(float(mean), low, high, low90, high90, p_value, paired=len(shared) >= 2, n_a=len(a),
                          n_b=len(b), sd_a=float(xa.std(ddof=1)), sd_b=float(xb.std(ddof=1)), sd_diff=float(sd_diff))


def welch(sd_a: float, sd_b: float, n_a: int, n_b: int) -> tuple[float, float]:
    """The standard error of a difference of two independent means and its Welch-Satterthwaite degrees of freedom."""
    va, vb = sd_a ** 2 / n_a, sd_b ** 2 / n_b
    dof = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1)) if va + vb > 0 else 1.0
    return float(np.sqrt(va + vb)), float(dof)


def _t_interval(mean: float, se: float, dof: float, level: float) -> tuple[float, float]:
    half = float(stats.t.ppf(0.5 + level / 2, dof) * se) if se > 0 else 0.0
    return float(mean - half), float(mean + half)


MOST_SEEDS = 1000  # past this, "more than 1000" says enough


@dataclass
class SeedsNeeded:
    """Rough counts of seeds per side, were the spread (and the difference) what these seeds show; None: more
    than MOST_SEEDS."""
    to_decide: Optional[int]   # the interval around the observed difference excludes 0 or lies within ±margin
    for_margin: Optional[int]  # the 95 % interval is narrower than the margin: decisive whatever the difference


def seeds_needed(s: SeedDifference, margin: float) -> SeedsNeeded:
    to_decide = for_margin = None
    for n in range(2, MOST_SEEDS + 1):
        if s.paired:
            se, dof = s.sd_diff / np.sqrt(n), n - 1
        else:
            se, dof = welch(s.sd_a, s.sd_b, n, n)
        low, high = _t_interval(s.mean, se, dof, LEVEL)
        low90, high90 = _t_interval(s.mean, se, dof, EQUIVALENCE_LEVEL)
        if to_decide is None and (low > 0 or high < 0 or (-margin < low90 and high90 < margin)):
            to_decide = n
        if high - low < margin:
            for_margin = n
            break
    return SeedsNeeded(to_decide=to_decide, for_margin=for_margin)


# ------------------------------------------------------------------------------------------ across tasks


def wilcoxon_min_tasks() -> int:
    """The fewest tasks on which the two-sided exact Wilcoxon signed-rank test can reach p < 0.05: 2 / 2^n < 0.05."""
    n = 1
    while 2 / 2 ** n >= 0.05:
        n += 1
    return n


def friedman_min_p(tasks: int, encoders: int) -> float:
    """The smallest p the Friedman test (chi-square form) can give: every task ranking the encoders alike."""
    return float(stats.chi2.sf(tasks * (encoders - 1), encoders - 1))


def nemenyi_critical_difference(tasks: int, encoders: int, alpha: float = 0.05) -> float:
    """Two mean ranks further apart than this differ at `alpha` (Demsar 2006: q_alpha sqrt(k(k+1) / 6N))."""
    q = float(stats.studentized_range.ppf(1 - alpha, encoders, np.inf)) / np.sqrt(2)
    return q * float(np.sqrt(encoders * (encoders + 1) / (6 * tasks)))
