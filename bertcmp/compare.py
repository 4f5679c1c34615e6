"""Compare runs: which encoder wins, by how much, and whether the difference is more than noise.

    python -m bertcmp.compare PATH [PATH ...] [--out DIR] [--metric test.accuracy]

PATH is a sweep directory, a run directory or a glob of them; runs of different sweeps may be mixed. Runs
are grouped into configurations (runs that differ only in seed) and families (the encoder's model_type);
the family whose best configuration leads on validation meets every other family's best, item by item and
over seeds, with Holm's correction when there are several.
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
from bertcmp.errors import NoSpaceError, writing
from bertcmp.outputs import write_text
from bertcmp.runs import Found, Run, is_glob, load_runs

COMPARABLE_METRICS = ("test.accuracy", "test.macro_f1", "test.mcc", "test.f1")  # what --metric accepts


FAMILY_NAMES = {"bert": "BERT", "modernbert": "ModernBERT", "roberta": "RoBERTa", "xlm-roberta": "XLM-R",
                "deberta": "DeBERTa", "deberta-v2": "DeBERTa-v2", "distilbert": "DistilBERT", "electra": "ELECTRA",
                "albert": "ALBERT", "mpnet": "MPNet", "camembert": "CamemBERT"}


def family_name(model: str) -> str:
    """A family as people write it (ModernBERT, RoBERTa); an unknown model_type as it is."""
    return FAMILY_NAMES.get(model, model)


@dataclass
class Standing:
    """A family's best configuration, chosen on validation accuracy: one line of the ranking."""
    family: str
    configuration: str
    valid_accuracy: float
    metric: float               # the compared metric of that configuration (mean over its seeds)
    runs: int


@dataclass
class HeadToHead:
    """The best family's best configuration (a) against another family's (b)."""
    a: str                      # the two configurations' labels
    b: str
    family_a: str               # their families, as people write them
    family_b: str
    model_a: str                # and as the runs record them (model_type)
    model_b: str
    metric: str
    difference: float           # metric(a) - metric(b), in [0, 1] units
    low: Optional[float] = None
    high: Optional[float] = None
    paired_items: bool = False  # the interval comes from a paired bootstrap on the same test items
    only_a: Optional[int] = None
    only_b: Optional[int] = None
    p_value: Optional[float] = None  # item level: McNemar's for accuracy, the paired bootstrap's otherwise
    seeds: Optional[dict] = None
    seeds_used: tuple = ()      # the seeds of the two runs compared item by item
    adjusted_p: Optional[float] = None  # the p-value the verdict rests on, Holm-adjusted over the head-to-heads
    comparisons: int = 1        # how many head-to-heads the adjustment covers
    by_length: list[dict] = field(default_factory=list)  # accuracy of a and b in each length quartile
    sentence: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    metric: str                 # what the head-to-heads compare, e.g. test.accuracy
    rows: list[dict]
    shared: list[str]           # overrides every configuration has: said once, left out of each row's name
    ranking: list[Standing]     # the families, best first, each by its best configuration on validation
    head_to_heads: list[HeadToHead]  # the best family against each other one
    not_completed: list[str]    # a line per run that did not complete or has no readable metrics.json
    problems: list[str]         # a line per path or file that could not be used
    runs: list[Run] = field(default_factory=list, repr=False)  # the completed runs compared
    files: list[Path] = field(default_factory=list)

    @property
    def compared(self) -> bool:
        return bool(self.rows)


# ---------------------------------------------------------------------------------------------- the table


TABLE = [("configuration", "configuration", "{}"), ("runs", "runs", "{}"),
         ("valid acc", "valid.accuracy", "pm"), ("test acc", "test.accuracy", "pm"),
         ("macro-F1", "test.macro_f1", "pm"), ("MCC", "test.mcc", "pm"),
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


def rank_families(rows: Sequence[dict], metric: str) -> list[Standing]:
    """Each family by its best configuration on validation accuracy, the best family first."""
    best: dict[str, dict] = {}
    for row in rows:  # rows come best validation first
        best.setdefault(row["model"], row)
    return [Standing(family=model, configuration=row["configuration"], valid_accuracy=row["valid.accuracy"],
                     metric=row[metric], runs=row["runs"]) for model, row in best.items()]


def head_to_heads(runs: Sequence[Run], rows: Sequence[dict], ranking: Sequence[Standing],
                  metric: str) -> list[HeadToHead]:
    """The best family's best configuration against every other family's best. With several comparisons the
    verdicts are Holm-adjusted, so that "better" anywhere among them is wrong at most 5 % of the time."""
    by_label = {row["configuration"]: row for row in rows}
    pairs = [head_to_head(runs, by_label[ranking[0].configuration], by_label[other.configuration], metric)
             for other in ranking[1:]]
    tested = [h for h in pairs if _evidence_p(h) is not None]
    for h, adjusted in zip(tested, stats.holm([_evidence_p(h) for h in tested])):
        h.adjusted_p, h.comparisons = adjusted, len(tested)
    for h in pairs:
        h.sentence = conclusion(h)
    return pairs


def _evidence_p(h: HeadToHead) -> Optional[float]:
    """The p-value of the evidence the verdict rests on: seeds when there are two or more per side, else items."""
    if h.seeds:
        return h.seeds["p_value"]
    return h.p_value if h.paired_items else None


def head_to_head(runs: Sequence[Run], row_a: dict, row_b: dict, metric: str) -> HeadToHead:
    """Configuration a against b: on the same test items when both have them, and over seeds."""
    members = [[r for r in runs if r.configuration_key == row["key"]] for row in (row_a, row_b)]
    # on the item level, each side is represented by its best-validation run among those with usable predictions
    a, b = (max(m, key=lambda r: (r.predictions is not None, r.value("valid.accuracy") or -1)) for m in members)
    h = HeadToHead(a=row_a["configuration"], b=row_b["configuration"], family_a=family_name(row_a["model"]),
                   family_b=family_name(row_b["model"]), model_a=row_a["model"], model_b=row_b["model"],
                   metric=metric, difference=row_a[metric] - row_b[metric])
    part = metric.split(".")[1]
    if a.data_key != b.data_key:
        h.notes.append("the two configurations use different data configs, so their test items differ: "
                       "compared by their scores only, not item by item")
    elif a.predictions is None or b.predictions is None:
        h.notes.append("test predictions are missing or unusable for one side: compared by scores only")
    elif not np.array_equal(a.predictions.index, b.predictions.index) or \
            not np.array_equal(a.predictions.label, b.predictions.label):
        h.notes.append(f"{a.dir}/test_predictions.csv and {b.dir}/test_predictions.csv list different test "
                       "items: compared by scores only")
    else:
        label = a.predictions.label
        h.difference, h.low, h.high, bootstrap_p = stats.paired_bootstrap(
            label, a.predictions.pred, b.predictions.pred, part, num_classes=len(a.classes))
        h.only_a, h.only_b, mcnemar_p = stats.mcnemar_exact(label, a.predictions.pred, b.predictions.pred)
        h.p_value = mcnemar_p if part == "accuracy" else bootstrap_p
        h.paired_items = True
        h.seeds_used = (a.seed, b.seed)
        if a.predictions.n_tokens is not None:
            h.by_length = accuracy_by_length(a.predictions.n_tokens, label, a.predictions.pred, b.predictions.pred)
    by_seed = [{r.seed: r.value(metric) for r in m if r.value(metric) is not None} for m in members]
    seeds = stats.seed_difference(*by_seed)
    if seeds:
        h.seeds = asdict(seeds)
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


def by_length_title(h: HeadToHead) -> str:
    return (f"Accuracy by length, the same two runs, in quarters of the test items by their length in "
            f"{h.family_a}'s tokens")


def by_length_markdown(h: HeadToHead) -> str:
    lines = [f"| {h.family_a} tokens per text | items | {h.family_a} accuracy | {h.family_b} accuracy |",
             "|---|---|---|---|"]
    lines += [f"| {r['tokens']} | {r['items']} | {r['a']:.4f} | {r['b']:.4f} |" for r in h.by_length]
    return "\n".join(lines)


def by_length_lines(h: HeadToHead) -> list[str]:
    return [f"{by_length_title(h)}:"] + [f"  {r['tokens']} tokens ({r['items']} items): {h.family_a} {r['a']:.4f}, "
                                         f"{h.family_b} {r['b']:.4f}" for r in h.by_length]


def conclusion(h: HeadToHead) -> str:
    """One plain sentence: who is better, by how much, and how sure we are.

    With two or more seeds per side the verdict rests on the interval over seeds, which counts training noise
    too; the item-level test of one pair of runs alone would flatter a lucky seed. "Better" needs the interval
    to exclude 0 and the p-value (Holm-adjusted when one family is compared with several) to be under 0.05."""
    unit = "points" if h.metric.endswith("accuracy") else f"points of {h.metric}"
    if h.seeds:
        difference, low, high = h.seeds["mean"], h.seeds["low"], h.seeds["high"]
        evidence = f"95 % CI {low * 100:.1f} to {high * 100:.1f} over seeds"
    elif h.paired_items:
        difference, low, high = h.difference, h.low, h.high
        evidence = f"95 % CI {low * 100:.1f} to {high * 100:.1f}"
        if h.metric.endswith("accuracy"):
            evidence += f", McNemar p = {h.p_value:.3g}"
    else:
        return (f"{h.family_a} minus {h.family_b}: {h.difference * 100:+.1f} {unit} on {h.metric}; these runs cannot "
                "say whether that is more than noise (no shared test items and fewer than two seeds per side).")
    if h.comparisons > 1:
        evidence += f", Holm-adjusted p = {h.adjusted_p:.3g} over {h.comparisons} comparisons"
    significant = (low > 0 or high < 0) and h.adjusted_p < 0.05
    if not significant or difference == 0:
        return (f"No significant difference between {h.family_a} and {h.family_b} ({difference * 100:+.1f} {unit}, "
                f"{evidence}).")
    winner, loser = (h.family_a, h.family_b) if difference > 0 else (h.family_b, h.family_a)
    return f"{winner} is better than {loser} by {abs(difference) * 100:.1f} {unit} ({evidence})."


def item_level_line(h: HeadToHead) -> str:
    line = (f"On the same test items, runs of seed {h.seeds_used[0]} ({h.family_a}) and {h.seeds_used[1]} "
            f"({h.family_b}): {h.difference * 100:+.1f} points (paired bootstrap 95 % CI {h.low * 100:.1f} to "
            f"{h.high * 100:.1f})")
    if h.metric.endswith("accuracy"):
        line += (f", McNemar p = {h.p_value:.3g} ({h.family_a} alone right on {h.only_a} items, {h.family_b} alone "
                 f"on {h.only_b})")
    return line + "."


def ranking_lines(ranking: Sequence[Standing], metric: str) -> list[str]:
    return [f"  {i}. {family_name(s.family)}: valid accuracy {s.valid_accuracy:.4f}, {metric} {s.metric:.4f} "
            f"({s.configuration})" for i, s in enumerate(ranking, 1)]


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
    not_completed += [f"{d}: {why}; run left out" for d, why in found.unreadable.items()]
    shared = shared_overrides(completed)
    rows = summarise(completed, metric, shared)
    ranking = rank_families(rows, metric)
    return Report(metric=metric, rows=rows, shared=shared, ranking=ranking,
                  head_to_heads=head_to_heads(completed, rows, ranking, metric),
                  not_completed=not_completed, problems=list(found.problems), runs=completed)


OUT_ADVICE = "free some space, or give --out a directory on another disk"


def write_files(report: Report, metric: str, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    runs = report.runs
    figures = {"learning_curves.png": lambda p: plots.learning_curves(runs, report.shared, p),
               "accuracy_vs_lr.png": lambda p: plots.metric_vs_lr(report.rows, metric, p),
               "accuracy_vs_throughput.png": lambda p: plots.metric_vs_throughput(runs, metric, p)}
    if any(h.by_length for h in report.head_to_heads):
        figures["accuracy_by_length.png"] = lambda p: plots.accuracy_by_length(report.head_to_heads, p)
    for name, draw in figures.items():
        with writing(out / name, OUT_ADVICE):
            try:
                draw(out / name)
            except BaseException:
                (out / name).unlink(missing_ok=True)  # no half-drawn figure
                raise
    comparison = {"metric": metric, "shared_overrides": report.shared, "rows": report.rows,
                  "ranking": [asdict(s) for s in report.ranking],
                  "head_to_heads": [asdict(h) for h in report.head_to_heads],
                  "not_completed": report.not_completed, "problems": report.problems}
    files = {"summary.csv": table_csv(report.rows), "summary.md": table_markdown(report.rows) + "\n",
             "comparison.json": json.dumps(comparison, indent=2, default=str) + "\n",
             "report.md": report_markdown(report, list(figures))}
    for name, text in files.items():
        write_text(out / name, text, OUT_ADVICE)
    return [out / name for name in [*files, *figures]]


NO_HEAD_TO_HEAD = "no head-to-head: it needs completed runs of at least two model families"


def report_markdown(report: Report, figures: list[str]) -> str:
    parts = ["# bertcmp comparison", ""]
    parts += [f"**{h.sentence}**" for h in report.head_to_heads] or [NO_HEAD_TO_HEAD.capitalize() + "."]
    if report.ranking:
        leader = family_name(report.ranking[0].family)
        parts += ["", f"Families by their best configuration on validation accuracy ({leader} leads; each other "
                      "family is compared with it):", "",
                  f"| rank | family | best configuration | runs | valid accuracy | {report.metric} |",
                  "|---|---|---|---|---|---|"]
        parts += [f"| {i} | {family_name(s.family)} | `{s.configuration}` | {s.runs} | {s.valid_accuracy:.4f} | "
                  f"{s.metric:.4f} |" for i, s in enumerate(report.ranking, 1)]
    for h in report.head_to_heads:
        parts += ["", f"## {h.family_a} against {h.family_b}", "", f"`{h.a}` against `{h.b}`."]
        if h.seeds:
            s = h.seeds
            parts += ["", f"Over seeds ({s['n_a']} {h.family_a}, {s['n_b']} {h.family_b} runs, "
                          f"{'paired by seed' if s['paired'] else 'unpaired'}): mean difference "
                          f"{s['mean'] * 100:+.1f} points (95 % CI {s['low'] * 100:.1f} to {s['high'] * 100:.1f})."]
        if h.paired_items:
            parts += ["", item_level_line(h) + " Each side is its configuration's best-validation run."]
        if h.by_length:
            parts += ["", f"{by_length_title(h)}:", "", by_length_markdown(h)]
        parts += [f"- {note}" for note in h.notes]
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
    if report.rows and not report.head_to_heads:
        print(f"\n{NO_HEAD_TO_HEAD}", file=stream)
    if len(report.ranking) > 2:
        print("\nfamilies by their best configuration on validation:", file=stream)
        for line in ranking_lines(report.ranking, report.metric):
            print(line, file=stream)
    for h in report.head_to_heads:
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
    parser.add_argument("--metric", default="test.accuracy", choices=COMPARABLE_METRICS,
                        help="the metric compared (test.f1: the positive class's, two-class tasks only)")
    args = parser.parse_args(argv)
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} is a file; give a directory (made if missing) for the report", file=sys.stderr)
        return 2
    found = load_runs(args.paths)
    many = [r for r in found.runs if r.status == "completed" and len(r.classes) > 2]
    if args.metric == "test.f1" and many:
        print(f"error: --metric test.f1 is the positive class's F1 of two-class tasks, but {many[0].dir} has "
              f"{len(many[0].classes)} classes; use --metric test.macro_f1", file=sys.stderr)
        return 2
    try:
        report = build_report(args.paths, args.out, args.metric, found)
    except NoSpaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_report(report)
    if not report.compared:
        print("error: no completed run to compare in " + " ".join(args.paths), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
