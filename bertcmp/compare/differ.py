"""Where two encoders differ, on the two runs a head-to-head compares item by item: by text length (buckets set by
the models' own limits), by class (tasks of more than two classes), and the test items one alone got right.

Every difference comes with its paired-bootstrap 95 % interval over the items; "better" in a bucket or class also
needs its Holm-adjusted p under 0.05 over the buckets (or classes) looked at, so looking in several places does not
make a difference appear.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from bertcmp.compare import stats
from bertcmp.compare.table import points
from bertcmp.metrics import per_class
from bertcmp.runs import Run

EXAMPLES = 5  # test items shown per encoder


def _standing(row: dict, margin: float, a: str, b: str) -> str:
    """better-a / better-b / equivalent / inconclusive for one bucket or class (its `adjusted_p` set)."""
    if (row["low"] > 0 or row["high"] < 0) and row["adjusted_p"] < 0.05:
        return f"better-{a}" if row["difference"] > 0 else f"better-{b}"
    if -margin < row["low90"] and row["high90"] < margin:
        return "equivalent"
    return "inconclusive"


def _adjust(rows: list[dict]) -> None:
    for row, adjusted in zip(rows, stats.holm([r["p_value"] for r in rows])):
        row["adjusted_p"] = adjusted


# ---------------------------------------------------------------------------------------------- by length


Buckets = list[tuple[str, np.ndarray, Optional[str]]]


def length_buckets(run_a: Run, run_b: Run, a: str, b: str) -> tuple[bool, Buckets]:
    """Whether the buckets are quarters, and each bucket's name, its items, and which model had to cut them (a, b,
    "both", "none"): by each model's own token count against its own max_length where either cut a text; else the
    quarters of the items by A's token counts, cut by "none" (neither cut any) or None (the runs did not record
    their limits). No buckets without token counts."""
    pa, pb = run_a.predictions, run_b.predictions
    if pa.n_tokens is None:
        return False, []
    limits = bool(run_a.max_length and run_b.max_length and pb.n_tokens is not None)
    if limits:
        cut_a, cut_b = pa.n_tokens > run_a.max_length, pb.n_tokens > run_b.max_length
        if cut_a.any() or cut_b.any():
            if run_a.max_length == run_b.max_length:
                limit = f"{run_a.max_length} tokens"
                names = {(False, False): f"within {limit} for both", (True, True): f"longer than {limit} for both",
                         (True, False): f"longer than {limit} for {a} only",
                         (False, True): f"longer than {limit} for {b} only"}
            else:
                both = f"({a} {run_a.max_length}, {b} {run_b.max_length} tokens)"
                names = {(False, False): f"within both limits {both}", (True, True): f"longer than both limits {both}",
                         (True, False): f"longer than {a}'s {run_a.max_length} tokens, within {b}'s",
                         (False, True): f"longer than {b}'s {run_b.max_length} tokens, within {a}'s"}
            cut_by = {(False, False): "none", (True, True): "both", (True, False): a, (False, True): b}
            return False, [(name, (cut_a == ca) & (cut_b == cb), cut_by[ca, cb]) for (ca, cb), name in names.items()]
    n = pa.n_tokens
    quarter = np.searchsorted(np.quantile(n, [0.25, 0.5, 0.75]), n, side="left")
    return True, [(f"{n[quarter == q].min()}-{n[quarter == q].max()} tokens", quarter == q,
                   "none" if limits else None) for q in range(4) if (quarter == q).any()]


def by_length(run_a: Run, run_b: Run, a: str, b: str) -> list[dict]:
    """Accuracy of A and B in each length bucket and the paired difference A - B with its intervals; `quarters`
    says whether the buckets are quarters of the items by length (nothing was cut) or what the models cut."""
    quarters, buckets = length_buckets(run_a, run_b, a, b)
    label, pred_a, pred_b = run_a.predictions.label, run_a.predictions.pred, run_b.predictions.pred
    rows = []
    for name, chosen, cut_by in buckets:
        if not chosen.any():
            continue
        interval = stats.paired_bootstrap(label[chosen], pred_a[chosen], pred_b[chosen])
        rows.append({"bucket": name, "quarters": quarters, "cut_by": cut_by, "items": int(chosen.sum()),
                     "difference": interval.mean, "low": interval.low,
                     "high": interval.high, "low90": interval.low90, "high90": interval.high90,
                     "p_value": interval.p_value, "a": float((pred_a[chosen] == label[chosen]).mean()),
                     "b": float((pred_b[chosen] == label[chosen]).mean())})
    _adjust(rows)
    return rows


def length_sentence(rows: Sequence[dict], a: str, b: str, margin: float) -> str:
    """Where a longer context pays, or that it does not: one clause per bucket."""
    if not rows:
        return ""
    clauses = []
    for row in rows:
        standing = _standing(row, margin, a, b)
        where = f"on the {row['items']} test items {row['bucket']}"
        if standing.startswith("better-"):
            winner = standing.removeprefix("better-")
            low, high = (row["low"], row["high"]) if winner == a else (-row["high"], -row["low"])
            clauses.append(f"{where} {winner} is better by {abs(row['difference']) * 100:.1f} points "
                           f"({points(low)} to {points(high)})")
        elif standing == "equivalent":
            clauses.append(f"{where} the two are within the margin")
        else:
            clauses.append(f"{where} the difference is inconclusive ({row['difference'] * 100:+.1f} points, "
                           f"{points(row['low'])} to {points(row['high'])})")
    if rows[0]["quarters"]:
        lead = ("Neither model cut any test text; by length (quarters of the items)" if rows[0]["cut_by"] == "none"
                else "By length (quarters of the items)")
    else:
        lead = "A longer context pays" if context_pays(rows, a, b, margin) else "By length"
    return f"{lead}: " + "; ".join(clauses) + " (accuracy, paired bootstrap 95 % CI, Holm-adjusted over buckets)."


def context_pays(rows: Sequence[dict], a: str, b: str, margin: float) -> bool:
    """Whether the model that read a text whole is better where the other had to cut it, and by more than it is on
    the texts both read whole: a model better everywhere is not better because it reads further."""
    whole = next((r["difference"] for r in rows if r["cut_by"] == "none"), 0.0)  # a - b where neither cut
    for r in rows:
        if r["cut_by"] in (a, b):
            reader = b if r["cut_by"] == a else a  # the one that read these texts whole
            sign = 1 if reader == a else -1
            low = min(sign * r["low"], sign * r["high"])  # the reader's lead, its interval's lower end
            if _standing(r, margin, a, b) == f"better-{reader}" and low > sign * whole:
                return True
    return False


# ---------------------------------------------------------------------------------------------- by class


def by_class(run_a: Run, run_b: Run) -> list[dict]:
    """Each class's F1 for A and B and the paired difference, for tasks of more than two classes."""
    classes = run_a.classes
    if len(classes) <= 2:
        return []
    label, pred_a, pred_b = run_a.predictions.label, run_a.predictions.pred, run_b.predictions.pred
    f1_a, f1_b = per_class(label, pred_a, len(classes))[2], per_class(label, pred_b, len(classes))[2]
    intervals = stats.per_class_f1_bootstrap(label, pred_a, pred_b, len(classes))
    rows = [{"class": name, "f1_a": float(f1_a[k]), "f1_b": float(f1_b[k]), "difference": i.mean, "low": i.low,
             "high": i.high, "low90": i.low90, "high90": i.high90, "p_value": i.p_value,
             "items": int((label == k).sum())}
            for k, (name, i) in enumerate(zip(classes, intervals))]
    _adjust(rows)
    return rows


def class_sentence(rows: Sequence[dict], a: str, b: str, margin: float) -> str:
    """A class where one encoder is clearly weaker, or none."""
    if not rows:
        return ""
    weaker = [(r, s) for r in rows if (s := _standing(r, margin, a, b)).startswith("better-")]
    if not weaker:
        return (f"By class: neither is clearly weaker on any of the {len(rows)} classes (per-class F1, paired "
                "bootstrap, Holm-adjusted over classes).")
    said = []
    for r, s in sorted(weaker, key=lambda pair: -abs(pair[0]["difference"])):
        loser = b if s == f"better-{a}" else a
        mine, theirs = (r["f1_b"], r["f1_a"]) if loser == b else (r["f1_a"], r["f1_b"])
        low, high = sorted((-r["high"], -r["low"]) if loser == a else (r["low"], r["high"]))
        said.append(f"{loser} is clearly weaker on {r['class']!s} (F1 {mine:.3f} vs {theirs:.3f}, "
                    f"{points(low)} to {points(high)} points)")
    return "By class: " + "; ".join(said) + " (paired bootstrap 95 % CI, Holm-adjusted over classes)."


# ---------------------------------------------------------------------------------------------- examples


def examples(run_a: Run, run_b: Run, a: str, b: str, count: int = EXAMPLES) -> list[dict]:
    """Up to `count` test items each encoder alone got right, the most confident first: its index, the start of its
    text (None where no run wrote texts: then the item is shown by its index), its label and the probability the
    right encoder gave it."""
    pa, pb = run_a.predictions, run_b.predictions
    texts = pa.text or pb.text
    right_a, right_b = pa.pred == pa.label, pb.pred == pb.label
    shown = []
    for name, alone, probs in ((a, right_a & ~right_b, pa.prob), (b, right_b & ~right_a, pb.prob)):
        items = np.flatnonzero(alone)
        if probs is not None:
            items = items[np.argsort(-probs[items], kind="stable")]
        for i in items[:count]:
            shown.append({"encoder": name, "index": int(pa.index[i]), "text": texts[i] if texts else None,
                          "label": run_a.classes[pa.label[i]],
                          "prob": float(probs[i]) if probs is not None else None})
    return shown


def example_line(example: dict) -> str:
    text = example["text"] if example["text"] is not None else f"item {example['index']}"
    prob = f", p = {example['prob']:.2f}" if example["prob"] is not None else ""
    return f"[{example['label']}{prob}] {text}"


def where_they_differ(run_a: Run, run_b: Run, a: str, b: str, margin: float) -> dict:
    """Everything of this module for one head-to-head, as HeadToHead's fields."""
    length_rows, class_rows = by_length(run_a, run_b, a, b), by_class(run_a, run_b)
    return {"by_length": length_rows, "length_sentence": length_sentence(length_rows, a, b, margin),
            "by_class": class_rows, "class_sentence": class_sentence(class_rows, a, b, margin),
            "examples": examples(run_a, run_b, a, b)}

