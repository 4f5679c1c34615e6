"""The table of runs: one row per configuration (runs that differ only in seed), mean ± std over seeds, as text,
markdown and CSV."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from typing import Optional, Sequence

import numpy as np

from bertcmp.runs import Run

TABLE = [("configuration", "configuration", "{}"), ("runs", "runs", "{}"),
         ("valid acc", "valid.accuracy", "pm"), ("test acc", "test.accuracy", "pm"),
         ("macro-F1", "test.macro_f1", "pm"), ("MCC", "test.mcc", "pm"),
         ("best epoch", "best_epoch", "{:.1f}"), ("train ex/s", "train.examples_per_s", "{:.1f}"),
         ("tokens/s", "train.tokens_per_s", "{:.0f}"), ("infer ex/s", "inference.examples_per_s", "{:.1f}"),
         ("wall s", "wall_seconds", "{:.0f}"), ("params", "params", "{:.3g}"), ("peak MB", "peak_memory_mb", "{:.0f}")]
SUMMARISED = [key for _, key, _ in TABLE[2:]]  # the metrics.json values averaged over a configuration's seeds


def points(value: float) -> str:
    """A difference in [0, 1] units as points, e.g. 0.0123 -> 1.2."""
    return f"{value * 100:.1f}"


def selection_of(metric: str) -> str:
    """The validation score that picks a configuration when `metric` is compared (test.mcc: valid.mcc)."""
    return "valid." + metric.split(".", 1)[1]


def valid_score(run: Run, metric: str) -> Optional[float]:
    """The run's validation score that picks it when `metric` is compared; its validation accuracy where the run
    did not record that one (runs written by hand or by old versions)."""
    score = run.value(selection_of(metric))
    return score if score is not None else run.value("valid.accuracy")


def shared_overrides(runs: Sequence[Run]) -> list[str]:
    """The overrides that every one of two or more configurations has (e.g. the data source of a sweep)."""
    per_config = list({run.configuration_key: run.overrides for run in runs}.values())
    if len(per_config) < 2:
        return []
    return [o for o in per_config[0] if all(o in others for others in per_config[1:])]


def summarise(runs: Sequence[Run], metric: str, task: str, encoders: dict[str, str],
              shared: Sequence[str] = ()) -> list[dict]:
    """One row per configuration of one task, best validation first (on `metric`'s validation counterpart, its
    `selection`), named by its overrides less the `shared` ones; `encoders` names each run's encoder (by its
    encoder_key)."""
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.configuration_key].append(run)
    rows = []
    for key, members in groups.items():
        row = {"task": task, "encoder": encoders[members[0].encoder_key], "configuration": members[0].label(shared),
               "model": members[0].model, "runs": len(members), "seeds": [r.seed for r in members],
               "lr": members[0].lr, "key": key}
        for name in SUMMARISED:
            row[name], row[name + "_std"] = _mean_std([r.value(name) for r in members])
        row["metric"] = metric  # the compared metric's name; its mean and std over seeds:
        row["metric_mean"], row["metric_std"] = _mean_std([r.value(metric) for r in members])
        row["selection"], row["selection_std"] = _mean_std([valid_score(r, metric) for r in members])
        row["healed"] = sum(bool(r.metrics.get("recovered")) for r in members)  # marked in the table
        rows.append(row)
    labels = defaultdict(int)
    for row in rows:
        labels[row["configuration"]] += 1
    for row in rows:  # two configurations with one label (e.g. from two sweeps): tell them apart
        if labels[row["configuration"]] > 1:
            row["configuration"] += f" [{row['key'][:6]}]"
    return sorted(rows, key=lambda r: -r["selection"] if r["selection"] == r["selection"] else math.inf)


def _mean_std(values: Sequence[Optional[float]]) -> tuple[float, float]:
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row[key]
    if key == "configuration" and row.get("healed"):
        return f"{value} (healed: {row['healed']})"
    if fmt == "pm":  # mean ± std: the std of `test.accuracy` is `test.accuracy_std`, of `metric_mean` `metric_std`
        spread = row[key.removesuffix("_mean") + "_std"]
        return f"{value:.4f} ± {spread:.4f}" if row["runs"] > 1 else f"{value:.4f}"
    return fmt.format(value)


def grid_text(head: Sequence[str], lines: Sequence[Sequence[str]], rule: bool = False) -> str:
    """Cells as aligned columns on screen (`rule`: a line of dashes under the head)."""
    cells = [list(head), *map(list, lines)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(head))]
    text = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
    return "\n".join([text[0], *(["  ".join("-" * w for w in widths)] if rule else []), *text[1:]])


def grid_markdown(head: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                      *("| " + " | ".join(line) + " |" for line in lines)])


def _cells(rows: Sequence[dict]) -> tuple[list[str], list[list[str]]]:
    """TABLE's columns, and the compared metric's after MCC where TABLE lacks it (test.f1: MRPC, QQP)."""
    metric = rows[0]["metric"] if rows else None
    table = TABLE if metric is None or metric in SUMMARISED else [
        *TABLE[:6], ("test " + metric.split(".", 1)[1].replace("_", "-"), "metric_mean", "pm"), *TABLE[6:]]
    return [head for head, _, _ in table], [[_cell(r, key, fmt) for _, key, fmt in table] for r in rows]


def table_text(rows: Sequence[dict]) -> str:
    return grid_text(*_cells(rows), rule=True)


def table_markdown(rows: Sequence[dict]) -> str:
    return grid_markdown(*_cells(rows))


def table_records(rows: Sequence[dict]) -> tuple[list[str], list[list]]:
    """The table as column names and plain values, for summary.csv and the W&B table alike."""
    columns = ["task", "encoder", "configuration", "model", "runs", "seeds", "lr"]
    for _, key, _ in TABLE[2:]:
        columns += [key + "_mean", key + "_std"]
    records = []
    for r in rows:
        values = [r["task"], r["encoder"], r["configuration"], r["model"], r["runs"], " ".join(map(str, r["seeds"])),
                  r["lr"]]
        for _, key, _ in TABLE[2:]:
            values += [r[key], r[key + "_std"]]
        records.append(values)
    return columns, records


def table_csv(rows: Sequence[dict]) -> str:
    columns, records = table_records(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([columns, *records])
    return buffer.getvalue()
