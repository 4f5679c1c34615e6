"""Across tasks: each encoder's validation-selected score on each task with that task's verdict, wins / ties /
losses, mean ranks, and a test over tasks (Demsar 2006: Wilcoxon signed-rank for two encoders, Friedman with the
Nemenyi critical difference for three or more), or why there is none."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import stats as scipy_stats

from bertcmp.compare import stats
from bertcmp.compare.verdict import HeadToHead, Standing

@dataclass
class TaskResult:
    """What the across-task summary needs of one task."""
    name: str
    ranking: list[Standing]
    head_to_heads: list[HeadToHead]


@dataclass
class AcrossTasks:
    tasks: list[str]
    encoders: list[str]         # best mean rank first
    cells: list[dict]           # one per encoder and task it ran: encoder, task, metric, mark, one_run
    record: dict[str, dict]     # encoder -> wins, ties, losses, inconclusive, mean_rank
    ranked_tasks: int           # the tasks every encoder ran: the ranks and the test are over these
    test: dict                  # name, statistic, p_value (and critical_difference), or why: no test
    sentence: str = ""
    notes: list[str] = field(default_factory=list)


def across_tasks(results: Sequence[TaskResult]) -> AcrossTasks:
    """The summary over two or more tasks (the encoders named alike in every task)."""
    encoders = list(dict.fromkeys(s.encoder for r in results for s in r.ranking))
    cells, record = [], {e: {"wins": 0, "ties": 0, "losses": 0, "inconclusive": 0} for e in encoders}
    for result in results:
        marks = _marks(result)
        for s in result.ranking:
            cells.append({"encoder": s.encoder, "task": result.name, "metric": s.metric, "mark": marks[s.encoder],
                          "one_run": any(h.one_run_each for h in result.head_to_heads
                                         if s.encoder in (h.encoder_a, h.encoder_b))})
        for h in result.head_to_heads:
            for me in (h.encoder_a, h.encoder_b):
                outcome = {"better": "wins" if h.winner == me else "losses", "equivalent": "ties",
                           "inconclusive": "inconclusive"}[h.verdict]
                record[me][outcome] += 1
    score = {(c["encoder"], c["task"]): c["metric"] for c in cells}
    complete = [r.name for r in results if all((e, r.name) in score for e in encoders)]
    table = np.array([[score[(e, t)] for e in encoders] for t in complete]).reshape(len(complete), len(encoders))
    ranks = scipy_stats.rankdata(-table, axis=1) if len(complete) else np.full((0, len(encoders)), np.nan)
    for i, e in enumerate(encoders):
        record[e]["mean_rank"] = float(ranks[:, i].mean()) if len(complete) else None
    order = sorted(encoders, key=lambda e: (record[e]["mean_rank"] is None, record[e]["mean_rank"] or 0))
    summary = AcrossTasks(tasks=[r.name for r in results], encoders=order, cells=cells, record=record,
                          ranked_tasks=len(complete), test=_test(table, encoders))
    if len(complete) < len(results):
        summary.notes.append(f"mean ranks and the test are over the {len(complete)} of {len(results)} tasks that every "
                             "encoder ran")
    summary.sentence = _sentence(summary, results)
    return summary


def _marks(result: TaskResult) -> dict[str, str]:
    """Each encoder's standing on the task against the task's leader (the encoder best on validation)."""
    if len(result.ranking) == 1:
        return {result.ranking[0].encoder: "alone"}
    marks = {result.ranking[0].encoder: "leader"}
    for h in result.head_to_heads:
        marks[h.encoder_b] = {"better": "worse" if h.winner == h.encoder_a else "better", "equivalent": "equivalent",
                              "inconclusive": "inconclusive"}[h.verdict]
    return marks


def _test(table: np.ndarray, encoders: Sequence[str]) -> dict:
    """Wilcoxon for two encoders, Friedman + Nemenyi for more, over the tasks in `table` (tasks x encoders)."""
    tasks, k = table.shape
    if k < 2:
        return {"name": None, "why": "only one encoder ran"}
    if k == 2:
        need = stats.wilcoxon_min_tasks()
        if tasks < need:
            return {"name": "wilcoxon", "p_value": None,
                    "why": f"with {tasks} tasks the Wilcoxon signed-rank test cannot reach p < 0.05 (it needs at "
                           f"least {need})"}
        diffs = table[:, 0] - table[:, 1]
        if not np.any(diffs):
            return {"name": "wilcoxon", "p_value": None, "why": "the two encoders score alike on every task"}
        result = scipy_stats.wilcoxon(diffs)
        return {"name": "wilcoxon", "statistic": float(result.statistic), "p_value": float(result.pvalue),
                "tasks": tasks}
    if tasks < 2 or stats.friedman_min_p(tasks, k) >= 0.05:
        return {"name": "friedman", "p_value": None,
                "why": f"with {tasks} tasks the Friedman test of {k} encoders cannot reach p < 0.05"}
    result = scipy_stats.friedmanchisquare(*table.T)
    return {"name": "friedman", "statistic": float(result.statistic), "p_value": float(result.pvalue), "tasks": tasks,
            "critical_difference": stats.nemenyi_critical_difference(tasks, k)}


def test_clause(test: dict) -> str:
    if test.get("p_value") is None:
        return f"no test across tasks: {test['why']}"
    if test["name"] == "wilcoxon":
        return f"Wilcoxon signed-rank test over {test['tasks']} tasks: p = {test['p_value']:.3g}"
    return (f"Friedman test over {test['tasks']} tasks: p = {test['p_value']:.3g}; mean ranks further apart than "
            f"{test['critical_difference']:.2f} differ (Nemenyi, 5 %)")


def _sentence(summary: AcrossTasks, results: Sequence[TaskResult]) -> str:
    n = len(results)
    if len(summary.encoders) == 2:
        first, second = summary.encoders
        counts = defaultdict(int)
        for r in results:
            for h in r.head_to_heads:
                counts["better" if h.winner == first else "worse" if h.winner == second else h.verdict] += 1
        not_met = n - sum(counts.values())
        text = (f"Across {n} tasks {first} is better than {second} on {counts['better']}, equivalent on "
                f"{counts['equivalent']}, worse on {counts['worse']} and inconclusive on {counts['inconclusive']}")
        text += f" (not both run on {not_met})" if not_met else ""
        return text + f"; {test_clause(summary.test)}."
    ranks = ", ".join(f"{e} {summary.record[e]['mean_rank']:.2f}" for e in summary.encoders
                      if summary.record[e]["mean_rank"] is not None)
    tallies = ", ".join(f"{e} {'/'.join(str(summary.record[e][k]) for k in ('wins', 'ties', 'losses', 'inconclusive'))}"
                        for e in summary.encoders)
    return (f"Across {n} tasks, by mean rank: {ranks or 'none (no task ran every encoder)'}; head-to-heads won / tied / "
            f"lost / inconclusive: {tallies}; {test_clause(summary.test)}.")
