"""The summary across tasks: marks, wins / ties / losses, mean ranks and the test over tasks, against scipy."""

import numpy as np
import pytest
from scipy import stats

from bertcmp.compare.across import TaskResult, across_tasks
from bertcmp.compare.verdict import HeadToHead, Standing


def task(name: str, scores: dict[str, float], verdicts: dict[str, str] | None = None,
         evidence: str = "seeds") -> TaskResult:
    """A task whose encoders scored `scores` (the first leads on validation); `verdicts` per other encoder:
    better (the leader is), worse (the leader is worse), equivalent, inconclusive."""
    names = list(scores)
    ranking = [Standing(encoder=e, family=e.lower(), configuration=e, valid_score=0.9, metric=scores[e], runs=3)
               for e in names]
    pairs = []
    for other in names[1:]:
        verdict = (verdicts or {}).get(other, "inconclusive")
        h = HeadToHead(a=names[0], b=other, encoder_a=names[0], encoder_b=other, family_a="", family_b="",
                       metric="test.accuracy", margin=0.005, difference=scores[names[0]] - scores[other],
                       evidence=evidence, verdict="better" if verdict == "worse" else verdict)
        h.winner = {"better": names[0], "worse": other}.get(verdict)
        pairs.append(h)
    return TaskResult(name, ranking, pairs)


def test_two_encoders_over_six_tasks_take_wilcoxons_test():
    bert = [0.90, 0.85, 0.70, 0.95, 0.80, 0.60]
    modern = [0.92, 0.86, 0.69, 0.97, 0.83, 0.64]
    verdicts = ["worse", "equivalent", "better", "worse", "inconclusive", "worse"]  # BERT's, against ModernBERT
    results = [task(f"t{i}", {"BERT": b, "ModernBERT": m}, {"ModernBERT": v})
               for i, (b, m, v) in enumerate(zip(bert, modern, verdicts))]
    summary = across_tasks(results)
    expected = stats.wilcoxon(np.array(bert) - np.array(modern))
    assert summary.test["name"] == "wilcoxon" and summary.test["p_value"] == pytest.approx(expected.pvalue)
    assert summary.encoders == ["ModernBERT", "BERT"]  # by mean rank
    assert summary.record["ModernBERT"] == {"wins": 3, "ties": 1, "losses": 1, "inconclusive": 1,
                                            "mean_rank": pytest.approx(1 + 1 / 6)}
    assert summary.sentence == ("Across 6 tasks ModernBERT is better than BERT on 3, equivalent on 1, worse on 1 and "
                                f"inconclusive on 1; Wilcoxon signed-rank test over 6 tasks: p = {expected.pvalue:.3g}.")
    marks = {(c["encoder"], c["task"]): c["mark"] for c in summary.cells}
    assert marks[("BERT", "t0")] == "leader" and marks[("ModernBERT", "t0")] == "better"
    assert marks[("ModernBERT", "t2")] == "worse" and marks[("ModernBERT", "t4")] == "inconclusive"


def test_three_encoders_take_friedman_and_nemenyi():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.7, 0.9, size=(8, 3)) + np.array([0.05, 0.0, -0.05])
    results = [task(f"t{i}", dict(zip(["A", "B", "C"], row))) for i, row in enumerate(scores)]
    summary = across_tasks(results)
    expected = stats.friedmanchisquare(*scores.T)
    assert summary.test["p_value"] == pytest.approx(expected.pvalue)
    assert summary.test["critical_difference"] == pytest.approx(2.343 * np.sqrt(3 * 4 / (6 * 8)), rel=1e-3)  # Demsar
    ranks = stats.rankdata(-scores, axis=1).mean(axis=0)
    assert [summary.record[e]["mean_rank"] for e in "ABC"] == pytest.approx(ranks)
    assert summary.sentence.startswith("Across 8 tasks, by mean rank: ")


def test_too_few_tasks_for_a_test_say_so():
    two = across_tasks([task("t0", {"A": 0.9, "B": 0.8, "C": 0.7}), task("t1", {"A": 0.9, "B": 0.8, "C": 0.7})])
    assert two.test["p_value"] is None and "with 2 tasks the Friedman test of 3 encoders cannot reach p < 0.05" in \
        two.sentence
    assert "nan" not in two.sentence


def test_one_run_each_is_marked():
    summary = across_tasks([task("t0", {"A": 0.9, "B": 0.8}, evidence="items"), task("t1", {"A": 0.9, "B": 0.8})])
    assert [c["one_run"] for c in summary.cells] == [True, True, False, False]
