"""Budget curves checked against a direct computation: every n-subset of the trials enumerated, and draws with
replacement simulated."""

import itertools

import numpy as np
import pytest

from bertcmp.compare.budget import budgets, curve, lead_sentence


def by_enumeration(valid: np.ndarray, test: np.ndarray, n: int) -> tuple[float, float, float]:
    """Over all n-subsets: the mean best validation score, and the mean and spread of the test score of the run a
    subset's best validation selects (a uniform pick among runs tied on it)."""
    best, chosen, chosen_sq = [], [], []
    for subset in itertools.combinations(range(len(valid)), n):
        top = max(valid[list(subset)])
        tied = [i for i in subset if valid[i] == top]
        best.append(top)
        chosen.append(np.mean(test[tied]))
        chosen_sq.append(np.mean(test[tied] ** 2))
    mean = float(np.mean(chosen))
    return float(np.mean(best)), mean, float(np.sqrt(np.mean(chosen_sq) - mean ** 2))


def test_without_replacement_is_the_mean_over_all_subsets_ties_included():
    rng = np.random.default_rng(3)
    valid = rng.choice([0.80, 0.82, 0.85, 0.90], size=9)  # many ties on validation
    test = rng.uniform(0.7, 0.95, size=9)
    points = curve(valid, test)
    assert [p.n for p in points] == list(range(1, 10))
    for p in points:
        expected_valid, expected_test, spread = by_enumeration(valid, test, p.n)
        assert p.valid == pytest.approx(expected_valid, abs=1e-12)
        assert p.test == pytest.approx(expected_test, abs=1e-12)
        assert p.test_sd == pytest.approx(spread, abs=1e-9)


def test_the_estimators_known_limits():
    valid = np.array([0.80, 0.90, 0.85, 0.90, 0.70])
    test = np.array([0.81, 0.88, 0.86, 0.92, 0.69])
    for replacement in (False, True):
        one = curve(valid, test, replacement)[0]  # n = 1: the mean of the trials
        assert one.valid == pytest.approx(valid.mean()) and one.test == pytest.approx(test.mean())
        assert one.test_sd == pytest.approx(test.std())
    last = curve(valid, test)[-1]  # n = N without replacement: the best validation run (two tied: their mean)
    assert last.valid == pytest.approx(0.90) and last.valid_sd == pytest.approx(0.0, abs=1e-12)
    assert last.test == pytest.approx(0.90) and not last.one_run  # two runs share it
    assert curve([0.8, 0.9], [0.7, 0.95])[-1].one_run and curve([0.8], [0.7])[0].one_run


def test_with_replacement_matches_draws_with_replacement():
    rng = np.random.default_rng(0)
    valid, test = rng.uniform(size=6).round(2), rng.uniform(size=6)
    draws = rng.integers(0, 6, size=(200_000, 8))
    for p in curve(valid, test, replacement=True)[:6]:
        picked = draws[:, :p.n]
        best = valid[picked].max(axis=1)
        # among draws tied on the best validation, each distinct tied run equally likely
        selected = np.array([np.mean(test[np.unique(row[valid[row] == top])]) for row, top in
                             zip(picked[:20_000], best[:20_000])])
        assert p.valid == pytest.approx(best.mean(), abs=0.003)
        assert p.test == pytest.approx(selected.mean(), abs=0.01)
    # biased low (Tang et al. 2020): n draws with replacement hold fewer distinct runs, so a lower expected best
    with_, without = curve(valid, test, True), curve(valid, test)
    assert all(w.valid < u.valid for w, u in zip(with_[1:], without[1:]))


def test_budgets_shown():
    assert budgets(1) == [1] and budgets(4) == [1, 2, 4] and budgets(12) == [1, 2, 4, 8, 12]


def test_a_lead_that_changes_with_the_budget_is_said():
    # A: one lucky-on-validation great run among two poor ones; B: three good runs
    a = curve([0.90, 0.80, 0.70], [0.93, 0.80, 0.70])
    b = curve([0.90, 0.80, 0.70], [0.86, 0.86, 0.86])
    assert [round(p.test, 4) for p in a] == [0.81, 0.8867, 0.93]
    assert lead_sentence("BERT", "ModernBERT", a, b, "test.accuracy") == (
        "With 1 trial ModernBERT is expected to score higher (0.860 vs 0.810); from 2 trials on, BERT "
        "(0.930 vs 0.860 at 3).")
    behind = curve([0.9, 0.8], [0.80, 0.80])
    assert lead_sentence("BERT", "ModernBERT", b, behind, "test.accuracy") == (
        "BERT is expected to score higher than ModernBERT at every budget from 1 to 2 trials (test.accuracy 0.860 vs "
        "0.800 at 1, 0.860 vs 0.800 at 2).")
    level_first = curve([0.9, 0.8], [0.81, 0.79])  # 0.80 at 1 trial, as `behind`
    assert lead_sentence("A", "B", behind, level_first, "test.accuracy").startswith(
        "B is expected to score higher than A only at 2 trials, level before (test.accuracy")
    assert lead_sentence("A", "B", curve([0.9], [0.9]), curve([0.8], [0.8]), "test.accuracy") == (
        "A is expected to score higher than B at 1 trial (test.accuracy 0.900 vs 0.800).")
    same = curve([0.9, 0.8], [0.85, 0.85])
    assert lead_sentence("A", "B", same, same, "test.accuracy") is None
