"""Compare runs: which encoder wins, by how much, and whether the difference is more than noise.

    python -m bertcmp.compare PATH [PATH ...] [--out DIR] [--metric test.accuracy]

PATH is a sweep directory, a run directory or a glob of them; runs of different sweeps may be mixed.
Writes summary.csv, summary.md, comparison.json, report.md and PNG plots into --out (default: a
`comparison/` folder inside the first PATH). Reads only the files runs write: no torch, any machine.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from bertcmp import plots, stats
from bertcmp.outputs import METRICS_FILE, write_text
from bertcmp.runs import Found, Run, is_glob, load_runs

COMPARABLE_METRICS = ("test.accuracy", "test.f1")  # what --metric accepts


@dataclass
class HeadToHead:
    a: str                      # the two configurations' labels: a = best ModernBERT, b = best BERT
    b: str
    metric: str
    difference: float           # metric(a) - metric(b), in [0, 1] units
    low: Optional[float] = None
    high: Optional[float] = None
    paired_items: bool = False  # the interval comes from a paired bootstrap on the same test items
    only_a: Optional[int] = None
    only_b: Optional[int] = None
    p_value: Optional[float] = None
    seeds: Optional[dict] = None
    seeds_used: tuple = ()      # the seeds of the two runs compared item by item
    by_length: list[dict] = field(default_factory=list)  # accuracy of a and b in each length quartile
    sentence: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    rows: list[dict]
    shared: list[str]           # overrides every configuration has: said once, left out of each row's name
    head_to_head: Optional[HeadToHead]
    not_completed: list[str]    # a line per run that did not complete or has no readable metrics.json
    problems: list[str]         # a line per path or file that could not be used
    runs: list[Run] = field(default_factory=list, repr=False)  # the completed runs compared
    files: list[Path] = field(default_factory=list)

    @property
    def compared(self) -> bool:
        return bool(self.rows)


# ---------------------------------------------------------------------------------------------- the table


TABLE = [("configuration", "configuration", "{}"), ("runs", "runs", "{}"),
         ("valid acc", "valid.accuracy", "pm"), ("test acc", "test.accuracy", "pm"), ("test F1", "test.f1", "pm"),
         ("best epoch", "best_epoch", "{:.1f}"), ("train ex/s", "train.examples_per_s", "{:.1f}"),
         ("tokens/s", "train.tokens_per_s", "{:.0f}"), ("infer ex/s", "inference.examples_per_s", "{:.1f}"),
         ("wall s", "wall_seconds", "{:.0f}"), ("params", "params", "{:.3g}"), ("peak MB", "peak_memory_mb", "{:.0f}")]
SUMMARISED = [key for _, key, _ in TABLE[2:]]  # the metrics.json values averaged over a configuration's seeds


def shared_overrides(runs: Sequence[Run]) -> list[str]:
    """The overrides that every one of two or more configurations has (e.g. the data source of a sweep)."""
    per_config = list({run.configuration_key: run.overrides for run in runs}.values())
    if len(per_config) < 2:
        return []
    return [o for o in per_config[0] if all(o in others for others in per_config[1:])]


def summarise(runs: Sequence[Run], metric: str, shared: Sequence[str] = ()) -> list[dict]:
    """One row per configuration (runs that differ only in seed), best validation accuracy first, named by
    its overrides less the `shared` ones."""
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.configuration_key].append(run)
    rows = []
    for key, members in groups.items():
        row = {"configuration": members[0].label(shared), "model": members[0].model, "runs": len(members),
               "seeds": [r.seed for r in members], "lr": members[0].lr, "key": key}
        for name in SUMMARISED:
            row[name], row[name + "_std"] = _mean_std(members, name)
        row["metric_mean"], row["metric_std"] = row[metric], row[metric + "_std"]
        rows.append(row)
    labels = defaultdict(int)
    for row in rows:
        labels[row["configuration"]] += 1
    for row in rows:  # two configurations with one label (e.g. from two sweeps): tell them apart
        if labels[row["configuration"]] > 1:
            row["configuration"] += f" [{row['key'][:6]}]"
    return sorted(rows, key=lambda r: -r["valid.accuracy"])


def _mean_std(runs: Sequence[Run], name: str) -> tuple[float, float]:
    values = [v for v in (r.value(name) for r in runs) if v is not None]
    if not values:
        return float("nan"), float("nan")
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0



def _cell(row: dict, key: str, fmt: str) -> str:
    value = row[key]
    if fmt == "pm":
        return f"{value:.4f} ± {row[key + '_std']:.4f}" if row["runs"] > 1 else f"{value:.4f}"
    return fmt.format(value)


def table_text(rows: Sequence[dict]) -> str:
    cells = [[head for head, _, _ in TABLE]] + [[_cell(r, key, fmt) for _, key, fmt in TABLE] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(TABLE))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def table_markdown(rows: Sequence[dict]) -> str:
    lines = ["| " + " | ".join(head for head, _, _ in TABLE) + " |", "|" + "---|" * len(TABLE)]
    lines += ["| " + " | ".join(_cell(r, key, fmt) for _, key, fmt in TABLE) + " |" for r in rows]
    return "\n".join(lines)


def table_records(rows: Sequence[dict]) -> tuple[list[str], list[list]]:
    """The table as column names and plain values, for summary.csv and the W&B table alike."""
    columns = ["configuration", "model", "runs", "seeds", "lr"]
    for _, key, _ in TABLE[2:]:
        columns += [key + "_mean", key + "_std"]
    records = []
    for r in rows:
        values = [r["configuration"], r["model"], r["runs"], " ".join(map(str, r["seeds"])), r["lr"]]
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


# ---------------------------------------------------------------------------------------------- head to head


def head_to_head(runs: Sequence[Run], rows: Sequence[dict], metric: str) -> Optional[HeadToHead]:
    """The best ModernBERT configuration against the best BERT one, both chosen on validation accuracy."""
    best = {}
    for model in ("modernbert", "bert"):
        candidates = [r for r in rows if r["model"] == model]
        if not candidates:
            return None
        best[model] = max(candidates, key=lambda r: r["valid.accuracy"])
    members = {m: [r for r in runs if r.configuration_key == best[m]["key"]] for m in best}
    # on the item level, each side is represented by its best-validation run among those with usable predictions
    rep = {m: max(members[m], key=lambda r: (r.predictions is not None, r.value("valid.accuracy") or -1))
           for m in members}
    a, b = rep["modernbert"], rep["bert"]
    h = HeadToHead(a=best["modernbert"]["configuration"], b=best["bert"]["configuration"], metric=metric,
                   difference=best["modernbert"][metric] - best["bert"][metric])
    part = metric.split(".")[1]
    if a.data_key != b.data_key:
        h.notes.append("the two configurations use different data configs, so their test items differ: "
                       "compared by their accuracies only, not item by item")
    elif a.predictions is None or b.predictions is None:
        h.notes.append("test predictions are missing or unusable for one side: compared by accuracies only")
    elif not np.array_equal(a.predictions.index, b.predictions.index) or \
            not np.array_equal(a.predictions.label, b.predictions.label):
        h.notes.append(f"{a.dir}/test_predictions.csv and {b.dir}/test_predictions.csv list different test "
                       "items: compared by accuracies only")
    else:
        label = a.predictions.label
        h.difference, h.low, h.high = stats.paired_bootstrap(label, a.predictions.pred, b.predictions.pred, part)
        h.only_a, h.only_b, h.p_value = stats.mcnemar_exact(label, a.predictions.pred, b.predictions.pred)
        h.paired_items = True
        h.seeds_used = (a.seed, b.seed)
        if a.predictions.n_tokens is not None:
            h.by_length = accuracy_by_length(a.predictions.n_tokens, label, a.predictions.pred, b.predictions.pred)
    by_seed = {m: {r.seed: r.value(metric) for r in members[m] if r.value(metric) is not None} for m in members}
    seeds = stats.seed_difference(by_seed["modernbert"], by_seed["bert"])
    if seeds:
        h.seeds = asdict(seeds)
    h.sentence = conclusion(h)
    return h


def accuracy_by_length(n_tokens: np.ndarray, label: np.ndarray, pred_a: np.ndarray,
                       pred_b: np.ndarray) -> list[dict]:
    """Accuracy of A and B on the test items of each quarter by length (quartiles of their whole token counts, as
    A's tokenizer counts them): where truncation bites, a model that reads further should pull ahead."""
    edges = np.quantile(n_tokens, [0.25, 0.5, 0.75])
    quarter = np.searchsorted(edges, n_tokens, side="left")  # 0: up to the first quartile, ... 3: the longest
    rows = []
    for q in range(4):
        chosen = quarter == q
        if chosen.any():
            rows.append({"tokens": f"{n_tokens[chosen].min()}-{n_tokens[chosen].max()}", "items": int(chosen.sum()),
                         "a": float((pred_a[chosen] == label[chosen]).mean()),
                         "b": float((pred_b[chosen] == label[chosen]).mean())})
    return rows


BY_LENGTH = "Accuracy by length, the same two runs, in quarters of the test items by their length in ModernBERT's tokens"


def by_length_markdown(h: HeadToHead) -> str:
    lines = ["| ModernBERT tokens per text | items | ModernBERT accuracy | BERT accuracy |", "|---|---|---|---|"]
    lines += [f"| {r['tokens']} | {r['items']} | {r['a']:.4f} | {r['b']:.4f} |" for r in h.by_length]
    return "\n".join(lines)


def by_length_lines(h: HeadToHead) -> list[str]:
    return [f"{BY_LENGTH}:"] + [f"  {r['tokens']} tokens ({r['items']} items): ModernBERT {r['a']:.4f}, "
                                f"BERT {r['b']:.4f}" for r in h.by_length]


def conclusion(h: HeadToHead) -> str:
    """One plain sentence: who is better, by how much, and how sure we are.

    With two or more seeds per side the verdict rests on the interval over seeds, which counts training noise
    too; the item-level test of one pair of runs alone would flatter a lucky seed."""
    unit = "points" if h.metric.endswith("accuracy") else f"points of {h.metric}"
    if h.seeds:
        difference, low, high = h.seeds["mean"], h.seeds["low"], h.seeds["high"]
        evidence = f"95 % CI {low * 100:.1f} to {high * 100:.1f} over seeds"
        significant = low > 0 or high < 0
    elif h.paired_items:
        difference, low, high = h.difference, h.low, h.high
        evidence = f"95 % CI {low * 100:.1f} to {high * 100:.1f}"
        if h.metric.endswith("accuracy"):
            evidence += f", McNemar p = {h.p_value:.3g}"
        significant = (low > 0 or high < 0) and (h.p_value < 0.05 or not h.metric.endswith("accuracy"))
    else:
        return (f"ModernBERT minus BERT: {h.difference * 100:+.1f} {unit} on {h.metric}; these runs cannot say "
                "whether that is more than noise (no shared test items and fewer than two seeds per side).")
    if not significant or difference == 0:
        return f"No significant difference between ModernBERT and BERT ({difference * 100:+.1f} {unit}, {evidence})."
    winner, loser = ("ModernBERT", "BERT") if difference > 0 else ("BERT", "ModernBERT")
    return f"{winner} is better than {loser} by {abs(difference) * 100:.1f} {unit} ({evidence})."


def item_level_line(h: HeadToHead) -> str:
    line = (f"On the same test items, runs of seed {h.seeds_used[0]} (ModernBERT) and {h.seeds_used[1]} (BERT): "
            f"{h.difference * 100:+.1f} points (paired bootstrap 95 % CI {h.low * 100:.1f} to {h.high * 100:.1f})")
    if h.metric.endswith("accuracy"):
        line += f", McNemar p = {h.p_value:.3g} (ModernBERT alone right on {h.only_a} items, BERT alone on {h.only_b})"
    return line + "."


# ---------------------------------------------------------------------------------------------- the report


def build_report(paths: Sequence[str], out: Optional[Path] = None, metric: str = "test.accuracy",
                 found: Optional[Found] = None) -> Report:
    """Compare every run under `paths` (or the runs already `found` there), write the comparison into `out`
    (default: `comparison/` in the first path), and return it."""
    found = found or load_runs(paths)
    report = compare_runs(found, metric)
    if report.compared:
        first = paths[0] if not is_glob(paths[0]) else found.dirs[0].parent
        report.files = write_files(report, metric, out or Path(first) / "comparison")
    return report


def compare_runs(found: Found, metric: str = "test.accuracy") -> Report:
    """The table and the head-to-head of the completed runs; the others listed with why."""
    completed = [r for r in found.runs if r.status == "completed"]
    not_completed = [f"{r.dir}: {r.status}: {r.metrics.get('error', 'no error recorded')}"
                     for r in found.runs if r.status != "completed"]
    not_completed += [f"{d / METRICS_FILE}: {why}; run skipped" for d, why in found.unreadable.items()]
    shared = shared_overrides(completed)
    rows = summarise(completed, metric, shared)
    return Report(rows=rows, shared=shared, head_to_head=head_to_head(completed, rows, metric) if rows else None,
                  not_completed=not_completed, problems=list(found.problems), runs=completed)


def write_files(report: Report, metric: str, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    runs = report.runs
    figures = {"learning_curves.png": lambda p: plots.learning_curves(runs, report.shared, p),
               "accuracy_vs_lr.png": lambda p: plots.metric_vs_lr(report.rows, metric, p),
               "accuracy_vs_throughput.png": lambda p: plots.metric_vs_throughput(runs, metric, p)}
    if report.head_to_head and report.head_to_head.by_length:
        figures["accuracy_by_length.png"] = lambda p: plots.accuracy_by_length(report.head_to_head.by_length, p)
    for name, draw in figures.items():
        draw(out / name)
    comparison = {"metric": metric, "shared_overrides": report.shared, "rows": report.rows,
                  "head_to_head": asdict(report.head_to_head) if report.head_to_head else None,
                  "not_completed": report.not_completed, "problems": report.problems}
    files = {"summary.csv": table_csv(report.rows), "summary.md": table_markdown(report.rows) + "\n",
             "comparison.json": json.dumps(comparison, indent=2, default=str) + "\n",
             "report.md": report_markdown(report, list(figures))}
    for name, text in files.items():
        write_text(out / name, text)
    return [out / name for name in [*files, *figures]]


def report_markdown(report: Report, figures: list[str]) -> str:
    h = report.head_to_head
    parts = ["# bertcmp comparison", ""]
    if h:
        parts += [f"**{h.sentence}**", "", f"Best ModernBERT configuration (on validation accuracy): `{h.a}`; "
                  f"best BERT configuration: `{h.b}`."]
        if h.seeds:
            s = h.seeds
            parts += ["", f"Over seeds ({s['n_a']} ModernBERT, {s['n_b']} BERT runs, "
                          f"{'paired by seed' if s['paired'] else 'unpaired'}): mean difference "
                          f"{s['mean'] * 100:+.1f} points (95 % CI {s['low'] * 100:.1f} to {s['high'] * 100:.1f})."]
        if h.paired_items:
            parts += ["", item_level_line(h) + " Each side is its configuration's best-validation run."]
        if h.by_length:
            parts += ["", f"{BY_LENGTH}:", "", by_length_markdown(h)]
        parts += [f"- {note}" for note in h.notes]
    else:
        parts += ["No head-to-head: it needs at least one completed run of each model."]
    parts += ["", "## Runs", "", "Mean ± standard deviation over seeds; one row per configuration, best validation "
              "accuracy first."]
    if report.shared:
        parts += ["", f"Every configuration has `{','.join(report.shared)}`."]
    parts += ["", table_markdown(report.rows), ""]
    parts += [f"![{name}]({name})" for name in figures]
    if report.not_completed or report.problems:
        parts += ["", "## Not compared", ""] + [f"- {line}" for line in report.not_completed + report.problems]
    return "\n".join(parts) + "\n"


def print_report(report: Report, stream=None, list_not_completed: bool = True) -> None:
    """The comparison on screen; `list_not_completed=False` where a list of every run follows anyway."""
    stream = stream or sys.stdout
    if report.shared:
        print(f"every configuration has: {','.join(report.shared)}", file=stream)
    if report.rows:
        print(table_text(report.rows), file=stream)
    if report.rows and not report.head_to_head:
        print("\nno head-to-head: it needs at least one completed run of each model (bert and modernbert)",
              file=stream)
    if report.head_to_head:
        h = report.head_to_head
        print(f"\n{h.sentence}", file=stream)
        if h.paired_items:
            print(item_level_line(h), file=stream)
        for line in by_length_lines(h) if h.by_length else ():
            print(line, file=stream)
        for note in h.notes:
            print(f"  note: {note}", file=stream)
    for line in report.not_completed if list_not_completed else ():
        print(f"not completed: {line}", file=stream)
    for line in report.problems:
        print(f"problem: {line}", file=stream)
    if report.files:
        print(f"report: {report.files[0].parent / 'report.md'}", file=stream)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bertcmp.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="sweep dir, run dir, or a glob of them")
    parser.add_argument("--out", type=Path, help="where to write the report (default: PATH/comparison)")
    parser.add_argument("--metric", default="test.accuracy", choices=COMPARABLE_METRICS, help="the metric compared")
    args = parser.parse_args(argv)
    report = build_report(args.paths, args.out, args.metric)
    print_report(report)
    if not report.compared:
        print("error: no completed run to compare in " + " ".join(args.paths), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
