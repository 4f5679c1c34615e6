"""Expected performance at each tuning budget (Dodge et al. 2019, "Show Your Work"; Tang et al. 2020): an encoder's
N runs on a task read as N trials from its search space, what n of them would give.

Sort the trials by validation score. P(trial i is the best of n) is C(i-1, n-1) / C(N, n) drawing without
replacement (unbiased; n <= N) or (i/N)^n - ((i-1)/N)^n with replacement (Dodge's plug-in estimate, biased low).
Runs tied on validation share their probability equally: a selection among them is a uniform pick, so the
expected test score is the mean, over all n-subsets, of the test score the subset's best validation selects.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np

SEARCH_SPACE = ("Each encoder's runs on a task are read as trials drawn uniformly from its search space (a grid: "
                "each configuration x seed cell one equally likely trial).")


@dataclass
class BudgetPoint:
    n: int             # trials
    valid: float       # the expected best validation accuracy after n trials
    valid_sd: float    # the spread of that best (not a standard error)
    test: float        # the expected test score of the run n trials would select on validation
    test_sd: float
    one_run: bool      # the whole expectation rests on one run: its training noise is not counted


def selection_probabilities(valid: np.ndarray, n: int, replacement: bool = False) -> np.ndarray:
    """P(each trial, in the given order, is the one n trials select on validation)."""
    count = len(valid)
    order = np.argsort(valid, kind="stable")
    i = np.arange(1, count + 1)
    if replacement:
        p_sorted = (i / count) ** n - ((i - 1) / count) ** n
    else:
        total = math.comb(count, n)
        p_sorted = np.array([math.comb(k - 1, n - 1) / total if k >= n else 0.0 for k in i])
    p = np.empty(count)
    p[order] = p_sorted
    for value in np.unique(valid):  # ties share their probability: the pick among them is uniform
        tied = valid == value
        p[tied] = p[tied].mean()
    return p


def curve(valid: Sequence[float], test: Sequence[float], replacement: bool = False) -> list[BudgetPoint]:
    """The expected best validation score and the selected run's test score for n = 1..N trials."""
    v, t = np.asarray(valid, dtype=float), np.asarray(test, dtype=float)
    points = []
    for n in range(1, len(v) + 1):
        p = selection_probabilities(v, n, replacement)
        ev, et = float(p @ v), float(p @ t)
        points.append(BudgetPoint(n=n, valid=ev, valid_sd=_spread(p, v, ev), test=et, test_sd=_spread(p, t, et),
                                  one_run=bool(p.max() > 1 - 1e-12)))
    return points


def _spread(p: np.ndarray, values: np.ndarray, mean: float) -> float:
    return float(np.sqrt(max(0.0, p @ (values - mean) ** 2)))


def budgets(longest: int) -> list[int]:
    """The budgets a table shows: 1, 2, 4, ... and the largest."""
    shown = [2 ** k for k in range(longest.bit_length()) if 2 ** k <= longest]
    return shown + ([longest] if shown[-1] != longest else [])


def records(points: Sequence[BudgetPoint]) -> list[dict]:
    return [asdict(p) for p in points]


def lead_sentence(a: str, b: str, curve_a: Sequence[BudgetPoint], curve_b: Sequence[BudgetPoint],
                  metric: str) -> Optional[str]:
    """Who is expected to score higher at each budget both encoders reach, in one sentence; None when they are
    level at every budget."""
    shared = min(len(curve_a), len(curve_b))
    leaders = [_leader(a, b, curve_a[k].test, curve_b[k].test) for k in range(shared)]
    if not any(leaders):
        return None

    def scores(name: str, k: int) -> str:  # the named encoder's expected score first
        mine, theirs = (curve_a[k].test, curve_b[k].test) if name == a else (curve_b[k].test, curve_a[k].test)
        return f"{mine:.3f} vs {theirs:.3f}"

    last, first = shared - 1, next(k for k, leader in enumerate(leaders) if leader)
    if len(set(leaders) - {None}) == 1:
        only = leaders[first]
        other = b if only == a else a
        if first == last:  # one budget where they differ: no range to speak of
            at = f"at {shared} {_trials(shared)}" if first == 0 else f"only at {shared} {_trials(shared)}, level before"
            return f"{only} is expected to score higher than {other} {at} ({metric} {scores(only, last)})."
        return (f"{only} is expected to score higher than {other} at every budget from {first + 1} to {shared} "
                f"{_trials(shared)} ({metric} {scores(only, first)} at {first + 1}, {scores(only, last)} at {shared}).")
    sentence = (f"With {first + 1} {_trials(first + 1)} {leaders[first]} is expected to score higher "
                f"({scores(leaders[first], first)})")
    final = leaders[last]
    if final is None:
        return sentence + f"; at {shared} {_trials(shared)} the two are level ({curve_a[last].test:.3f})."
    settled = max(k for k, leader in enumerate(leaders) if leader not in (final, None)) + 1
    settled = next(k for k in range(settled, shared) if leaders[k] == final)
    return sentence + f"; from {settled + 1} {_trials(settled + 1)} on, {final} ({scores(final, last)} at {shared})."


def _leader(a: str, b: str, score_a: float, score_b: float) -> Optional[str]:
    if abs(score_a - score_b) < 1e-12:
        return None
    return a if score_a > score_b else b


def _trials(n: int) -> str:
    return "trial" if n == 1 else "trials"
