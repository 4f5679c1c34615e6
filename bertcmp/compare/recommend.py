"""Which encoder to pick: the accuracy verdict, the cost ratios and the length finding of a task in one short
paragraph, and across tasks in one more. It never claims more than they show: an inconclusive verdict is said as
such, with the seeds that would decide it; a cost that was not compared is not used; a speed counts only where it
differs clearly (cost.CostRatio.clear).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

from bertcmp.compare.cost import NOT_COMPARED, CostRatio, ahead, clauses, hardware_words
from bertcmp.compare.table import points
from bertcmp.compare.verdict import ONE_RUN, HeadToHead, seeds_clause

SPEEDS = ("train_tokens_per_s", "infer_examples_per_s")  # what "cheaper" means: time to train, time to classify


@dataclass
class Advice:
    pick: Optional[str]   # an encoder's name, "either", or None: undecided
    text: str


def cost_words(costs: Sequence[CostRatio]) -> tuple[dict[str, str], str]:
    """For each clear speed difference, who is ahead, and the clauses that say it, on which hardware."""
    clear = [c for c in costs if c.measure in SPEEDS and c.clear]
    if not clear:
        return {}, ""
    words = clauses(clear, " and ") + f" on {hardware_words(clear[0].hardware)}"
    return {c.measure: ahead(c) for c in clear}, words


def not_compared(costs: Sequence[CostRatio]) -> Optional[str]:
    """Why cost was not compared, if it was not."""
    if costs and not any(c.compared for c in costs):
        return (costs[0].why or "").removesuffix(NOT_COMPARED)
    return None


def pair_advice(h: HeadToHead, costs: Sequence[CostRatio]) -> Advice:
    """What to pick between the task's leader (a) and one other encoder (b)."""
    ahead, speed = cost_words(costs)
    cheaper = set(ahead.values())
    why_not = not_compared(costs)
    unit = "points" if h.metric.endswith("accuracy") else f"points of {h.metric}"
    cost_unknown = f"cost was not compared: {why_not}" if why_not else "neither is clearly faster"
    if h.verdict == "better":
        loser = h.encoder_b if h.winner == h.encoder_a else h.encoder_a
        low, high = (h.low, h.high) if h.winner == h.encoder_a else (-h.high, -h.low)
        gain = f"{abs(h.difference) * 100:.1f} {unit} (95 % CI {points(low)} to {points(high)})"
        if cheaper == {loser}:
            return Advice(h.winner, f"Pick {h.winner} for accuracy: it is better by {gain}; {speed}, which may "
                                    f"count for more where training or serving cost rules.")
        if cheaper == {h.winner}:
            return Advice(h.winner, f"Pick {h.winner}: it is better by {gain}, and cheaper: {speed}.")
        tail = f"; on cost, {speed}" if speed else f"; {cost_unknown}"
        return Advice(h.winner, f"Pick {h.winner}: it is better than {loser} by {gain}{tail}.")
    if h.verdict == "equivalent":
        same = (f"{h.encoder_a} and {h.encoder_b} are practically equivalent in accuracy "
                f"(within ±{h.margin * 100:g} {unit})")
        if len(cheaper) == 1:
            pick = cheaper.pop()
            return Advice(pick, f"Pick {pick}, the cheaper: {same}, and {speed}.")
        if cheaper:
            return Advice("either", f"Either, by what costs you more: {same}; {speed}.")
        return Advice("either", f"Either: {same}, and {cost_unknown}.")
    # inconclusive: no pick on accuracy; say what would decide it, and what cost alone says
    if h.evidence == "scores":
        decide = "these runs cannot tell (no shared test items, fewer than two seeds a side): add seed=0,1,2"
    elif h.one_run_each:
        decide = ONE_RUN
    else:
        decide = seeds_clause(h.seeds_needed, h.seeds["n_a"], h.seeds["n_b"])
    interval = f" (95 % CI {points(h.low)} to {points(h.high)})" if h.low is not None else ""
    text = (f"No pick on accuracy yet: {h.encoder_a} minus {h.encoder_b} is {h.difference * 100:+.1f} {unit}"
            f"{interval}, inconclusive; {decide}.")
    if len(cheaper) == 1:
        text += f" On cost alone {speed}: {next(iter(cheaper))} is the pick if accuracy turns out equivalent."
    elif speed:
        text += f" On cost: {speed}."
    elif why_not:
        text += f" Cost was not compared: {why_not}."
    return Advice(None, text)


def task_advice(head_to_heads: Sequence[HeadToHead], costs: dict[str, list[CostRatio]]) -> Advice:
    """The task's paragraph: the pick and why, then where a longer context pays (if it does). `costs` are the
    ratios of each head-to-head, by its encoder_b."""
    if not head_to_heads:
        return Advice(None, "")
    advice = [pair_advice(h, costs.get(h.encoder_b, [])) for h in head_to_heads]
    if len(advice) == 1:
        pick, text = advice[0].pick, advice[0].text
    else:  # the leader against each other encoder
        picks = {a.pick for a in advice}
        pick = picks.pop() if len(picks) == 1 and None not in picks and "either" not in picks else None
        text = " ".join(f"Against {h.encoder_b}: {a.text}" for h, a in zip(head_to_heads, advice))
    pays = [h.length_sentence for h in head_to_heads if h.length_sentence.startswith("A longer context pays")]
    return Advice(pick, " ".join([text, *pays]))


def across_advice(tasks: Sequence[tuple[str, Advice, list[CostRatio]]]) -> str:
    """Across tasks, the same in one paragraph: the picks counted, and each speed ratio's geometric mean over the
    tasks where it was compared."""
    picks: dict[str, list[str]] = {}
    for name, advice, _ in tasks:
        picks.setdefault(advice.pick or "undecided", []).append(name)
    named = sorted((p for p in picks if p not in ("either", "undecided")), key=lambda p: -len(picks[p]))
    parts = []
    if len(named) == 1:
        only = named[0]
        parts.append(f"Pick {only}: it is the pick on {len(picks[only])} of {len(tasks)} tasks and no other "
                     "encoder is the pick on any")
    elif named:
        parts.append("No single pick: " + ", ".join(f"{p} on {len(picks[p])} ({', '.join(picks[p])})" for p in named))
    else:
        parts.append(f"No encoder is the pick on any of the {len(tasks)} tasks")
    if picks.get("either"):
        parts.append(f"either on {len(picks['either'])} ({', '.join(picks['either'])})")
    if picks.get("undecided"):
        parts.append(f"undecided on {len(picks['undecided'])} ({', '.join(picks['undecided'])})")
    text = "; ".join(parts) + "."
    for measure in SPEEDS:
        ratios: dict[tuple[str, str], list[float]] = {}  # (a, b) in name order -> b over a, per task
        for c in (c for _, _, costs in tasks for c in costs if c.measure == measure and c.compared and c.ratio):
            pair = tuple(sorted((c.encoder_a, c.encoder_b)))
            ratios.setdefault(pair, []).append(c.ratio if pair == (c.encoder_a, c.encoder_b) else 1 / c.ratio)
        for (a, b), mine in sorted(ratios.items()):
            mean = math.exp(sum(map(math.log, mine)) / len(mine))
            what = "trains" if measure == "train_tokens_per_s" else "classifies texts"
            faster, slower, times = (b, a, mean) if mean >= 1 else (a, b, 1 / mean)
            text += (f" {faster} {what} {times:.2f}x as fast as {slower} (geometric mean over the {len(mine)} "
                     f"task{'s' if len(mine) > 1 else ''} where it was compared).")
    return text
