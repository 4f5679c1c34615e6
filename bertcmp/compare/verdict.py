"""The head-to-head of two encoders on one task and its verdict: better, practically equivalent, or inconclusive.

The verdict rests on the interval over seeds when each side has two or more (it counts training noise), else on
the paired bootstrap over the test items of one run each (which counts only test-set noise, and says so).
"Better" needs the 95 % interval to exclude 0 and the p-value (Holm-adjusted when the leader meets several
encoders) under 0.05; "equivalent" needs the 90 % interval inside ±margin (two one-sided tests at 5 %).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import numpy as np

from bertcmp.compare import stats
from bertcmp.compare.differ import where_they_differ
from bertcmp.compare.table import points, valid_score
from bertcmp.runs import Run

DEFAULT_MARGIN = 0.5        # points of the compared metric
ONE_RUN = "from one run each, so training noise is not counted: add seed=0,1,2"
VERDICTS = ("better", "equivalent", "inconclusive")


@dataclass
class Standing:
    """An encoder's best configuration on one task, chosen on validation: one line of the ranking."""
    encoder: str
    family: str                 # its model_type
    configuration: str
    valid_score: float          # on the compared metric's validation counterpart (table.selection_of)
    metric: float               # the compared metric of that configuration (mean over its seeds)
    runs: int


@dataclass
class HeadToHead:
    """The task's leading encoder's best configuration (a) against another encoder's (b)."""
    a: str                      # the two configurations' labels
    b: str
    encoder_a: str              # the two encoders' names
    encoder_b: str
    family_a: str               # and their model_types
    family_b: str
    metric: str
    margin: float               # in [0, 1] units, as the difference
    difference: float           # metric(a) - metric(b), in [0, 1] units: over seeds, on the items, or of the scores
    low: Optional[float] = None         # its 95 % interval (None: no evidence beyond the scores)
    high: Optional[float] = None
    low90: Optional[float] = None       # its 90 % interval, for the equivalence test
    high90: Optional[float] = None
    evidence: str = "scores"    # seeds | items | scores: what the verdict rests on
    p_value: Optional[float] = None     # of that evidence
    adjusted_p: Optional[float] = None  # Holm-adjusted over the task's head-to-heads
    comparisons: int = 1        # how many head-to-heads the adjustment covers
    verdict: str = "inconclusive"       # better | equivalent | inconclusive
    winner: Optional[str] = None        # the better encoder's name, when the verdict is better
    seeds_needed: Optional[dict] = None  # over seeds: roughly how many per side would decide (stats.SeedsNeeded)
    items: Optional[dict] = None        # the two best-validation runs on the same test items (paired bootstrap)
    seeds: Optional[dict] = None        # the interval over seeds, when each side has two or more
    # where they differ (bertcmp.compare.differ), on the same two runs as `items`
    by_length: list[dict] = field(default_factory=list)  # per length bucket: items, accuracy a and b, a - b, CI
    length_sentence: str = ""
    by_class: list[dict] = field(default_factory=list)   # more than two classes: per class F1 a and b, a - b, CI
    class_sentence: str = ""
    examples: list[dict] = field(default_factory=list)   # test items one alone got right, most confident first
    sentence: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def one_run_each(self) -> bool:
        return self.evidence == "items"


def rank_encoders(rows: Sequence[dict], metric: str) -> list[Standing]:
    """Each encoder by its best configuration on validation, the best encoder first."""
    best: dict[str, dict] = {}
    for row in rows:  # rows come best validation first
        best.setdefault(row["encoder"], row)
    return [Standing(encoder=name, family=row["model"], configuration=row["configuration"],
                     valid_score=row["selection"], metric=row["metric_mean"], runs=row["runs"])
            for name, row in best.items()]


def head_to_heads(runs: Sequence[Run], rows: Sequence[dict], ranking: Sequence[Standing], metric: str,
                  margin: float) -> list[HeadToHead]:
    """The leading encoder's best configuration against every other encoder's best. With several comparisons the
    p-values are Holm-adjusted, so that "better" anywhere among them is wrong at most 5 % of the time."""
    by_label = {row["configuration"]: row for row in rows}
    pairs = [head_to_head(runs, by_label[ranking[0].configuration], by_label[other.configuration], metric, margin)
             for other in ranking[1:]]
    tested = [h for h in pairs if h.p_value is not None]
    for h, adjusted in zip(tested, stats.holm([h.p_value for h in tested])):
        h.adjusted_p, h.comparisons = adjusted, len(tested)
    for h in pairs:
        decide(h)
    return pairs


def head_to_head(runs: Sequence[Run], row_a: dict, row_b: dict, metric: str, margin: float) -> HeadToHead:
    """Configuration a against b: on the same test items when both have them, and over seeds."""
    members = [[r for r in runs if r.configuration_key == row["key"]] for row in (row_a, row_b)]
    h = HeadToHead(a=row_a["configuration"], b=row_b["configuration"], encoder_a=row_a["encoder"],
                   encoder_b=row_b["encoder"], family_a=row_a["model"], family_b=row_b["model"], metric=metric,
                   margin=margin, difference=row_a["metric_mean"] - row_b["metric_mean"])
    by_seed = [{r.seed: r.value(metric) for r in m if r.value(metric) is not None} for m in members]
    seeds = stats.seed_difference(*by_seed)
    items = paired_items(h, *members)
    if seeds:
        h.seeds, h.evidence, interval = asdict(seeds), "seeds", seeds
        h.seeds_needed = asdict(stats.seeds_needed(seeds, margin))
    elif items:
        h.evidence, interval = "items", items
    else:
        return h
    h.difference, h.p_value = interval.mean, interval.p_value
    h.low, h.high, h.low90, h.high90 = interval.low, interval.high, interval.low90, interval.high90
    return h


def paired_items(h: HeadToHead, members_a: Sequence[Run], members_b: Sequence[Run]) -> Optional[stats.Interval]:
    """Each side's best-validation run with usable predictions, compared item by item; None (and a note) when
    they do not hold the same test items."""
    a, b = (max(m, key=lambda r: (r.predictions is not None, valid_score(r, h.metric) or -1))
            for m in (members_a, members_b))
    if a.predictions is None or b.predictions is None:
        h.notes.append("test predictions are missing or unusable for one side: not compared item by item")
        return None
    if not np.array_equal(a.predictions.index, b.predictions.index) or \
            not np.array_equal(a.predictions.label, b.predictions.label):
        h.notes.append(f"{a.dir}/test_predictions.csv and {b.dir}/test_predictions.csv list different test "
                       "items: not compared item by item")
        return None
    label, part = a.predictions.label, h.metric.split(".")[1]
    interval = stats.paired_bootstrap(label, a.predictions.pred, b.predictions.pred, part,
                                      num_classes=len(a.classes))
    only_a, only_b, mcnemar_p = stats.mcnemar_exact(label, a.predictions.pred, b.predictions.pred)
    if part == "accuracy":
        interval.p_value = mcnemar_p  # exact, where the bootstrap's p is only as fine as its resamples
    h.items = {**asdict(interval), "only_a": only_a, "only_b": only_b, "mcnemar_p": mcnemar_p,
               "seeds": [a.seed, b.seed], "test_items": int(len(label))}
    for name, value in where_they_differ(a, b, h.encoder_a, h.encoder_b, h.margin).items():
        setattr(h, name, value)
    return interval


def decide(h: HeadToHead) -> None:
    """The verdict and its sentence. Equivalence comes first: a difference that is real but inside the margin is
    practically no difference, which is what the margin means."""
    if h.evidence == "scores":
        h.verdict = "inconclusive"
    elif -h.margin < h.low90 and h.high90 < h.margin:
        h.verdict = "equivalent"
    elif (h.low > 0 or h.high < 0) and _tested_p(h) < 0.05:
        h.verdict = "better"
        h.winner = h.encoder_a if h.difference > 0 else h.encoder_b
    else:
        h.verdict = "inconclusive"
    h.sentence = conclusion(h)


def _tested_p(h: HeadToHead) -> float:
    return h.adjusted_p if h.adjusted_p is not None else h.p_value


def conclusion(h: HeadToHead) -> str:
    """One plain sentence: better, practically equivalent or inconclusive, by how much, and how sure."""
    unit = "points" if h.metric.endswith("accuracy") else f"points of {h.metric}"
    margin = f"{h.margin * 100:g} {unit}"
    if h.evidence == "scores":
        return (f"Inconclusive: {h.encoder_a} minus {h.encoder_b} is {h.difference * 100:+.1f} {unit} on {h.metric}, "
                "and these runs cannot say whether that is more than noise (no shared test items and fewer than "
                "two seeds per side).")
    over = " over seeds" if h.evidence == "seeds" else ""
    low, high = (h.low, h.high) if h.verdict != "better" or h.winner == h.encoder_a else (-h.high, -h.low)
    evidence = f"95 % CI {points(low)} to {points(high)}{over}"  # of the difference the sentence names
    if h.evidence == "items" and h.metric.endswith("accuracy"):
        evidence += f", McNemar p = {h.p_value:.3g}"
    if h.comparisons > 1:
        evidence += f", Holm-adjusted p = {h.adjusted_p:.3g} over {h.comparisons} comparisons"
    caveat = f", {ONE_RUN}" if h.one_run_each else ""
    if h.verdict == "equivalent":
        sentence = (f"{h.encoder_a} and {h.encoder_b} are practically equivalent: the difference is within ±{margin} "
                    f"(90 % CI {points(h.low90)} to {points(h.high90)}{over}){caveat}.")
        if h.low > 0 or h.high < 0:
            ahead = h.encoder_a if h.difference > 0 else h.encoder_b
            sentence += (f" {ahead} is ahead by {abs(h.difference) * 100:.1f} {unit} ({evidence}): more than noise, "
                         "less than the margin.")
        return sentence
    if h.verdict == "better":
        loser = h.encoder_b if h.winner == h.encoder_a else h.encoder_a
        return f"{h.winner} is better than {loser} by {abs(h.difference) * 100:.1f} {unit} ({evidence}){caveat}."
    if h.low <= 0 <= h.high:
        why = f"which spans both no difference and a difference larger than {margin}"
    else:
        why = f"which is not significant after Holm's adjustment and reaches past ±{margin}"
    sentence = f"Inconclusive: {h.encoder_a} minus {h.encoder_b} is {h.difference * 100:+.1f} {unit} ({evidence}), {why}"
    if h.one_run_each:
        return sentence + f"; {ONE_RUN}."
    if h.evidence == "seeds":
        sentence += "; " + seeds_clause(h.seeds_needed, h.seeds["n_a"], h.seeds["n_b"])
    return sentence + "."


def seeds_clause(needed: dict, n_a: int, n_b: int) -> str:
    """How many seeds per side would decide, roughly: at the observed difference, and whatever the difference."""
    count = lambda n: f"about {n}" if n else f"more than {stats.MOST_SEEDS}"  # noqa: E731
    seen = f"these {n_a} and {n_b} seeds" if n_a != n_b else f"these {n_a} seeds per side"
    if needed["to_decide"] == needed["for_margin"]:
        return (f"{count(needed['for_margin'])} seeds per side would make the interval narrower than the margin, "
                f"which decides it (a rough estimate from the spread {seen} show)")
    return (f"if the difference and its spread stay what {seen} show, {count(needed['to_decide'])} seeds per side "
            f"would decide it, and {count(needed['for_margin'])} would make the interval narrower than the margin, "
            "which decides it whatever the difference (rough estimates)")


def item_level_line(h: HeadToHead) -> str:
    i = h.items
    line = (f"On the same {i['test_items']} test items, runs of seed {i['seeds'][0]} ({h.encoder_a}) and "
            f"{i['seeds'][1]} ({h.encoder_b}): {i['mean'] * 100:+.1f} points (paired bootstrap 95 % CI "
            f"{points(i['low'])} to {points(i['high'])})")
    if h.metric.endswith("accuracy"):
        line += (f", McNemar p = {i['mcnemar_p']:.3g} ({h.encoder_a} alone right on {i['only_a']} items, "
                 f"{h.encoder_b} alone on {i['only_b']})")
    return line + "."
