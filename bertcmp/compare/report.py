"""The comparison of a set of runs: per task, its table, the ranking of its encoders, their head-to-heads and
budget curves; across tasks, a summary. Written as report.md, summary.csv / .md, comparison.json and PNG plots,
and printed."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from bertcmp.compare import budget, plots
from bertcmp.compare.across import AcrossTasks, TaskResult, across_tasks, test_clause
from bertcmp.compare.groups import by_task, encoder_names, task_names
from bertcmp.compare.table import (grid_markdown, grid_text, selection_of, shared_overrides, summarise, table_csv,
                                   table_markdown, table_text, valid_score)
from bertcmp.compare.verdict import (DEFAULT_MARGIN, HeadToHead, Standing, head_to_heads, item_level_line,
                                     rank_encoders)
from bertcmp.errors import writing
from bertcmp.outputs import write_text
from bertcmp.runs import Found, Run, is_glob, load_runs


@dataclass
class TaskReport:
    """The comparison on one task: only runs scored on the same test items meet."""
    name: str
    key: dict                   # what fixes the test items (runs.TEST_ITEMS_KEYS)
    metric: str                 # what is compared on it: --metric, or the task's data.metric (e.g. test.mcc)
    runs: list[Run] = field(repr=False)
    rows: list[dict]
    shared: list[str]           # overrides every configuration of the task has: said once, left out of row names
    ranking: list[Standing]     # the encoders, best first, each by its best configuration on validation
    head_to_heads: list[HeadToHead]  # the leading encoder against each other one
    budget: dict[str, list[budget.BudgetPoint]]  # per encoder: expected scores at 1..N trials, without replacement
    budget_with_replacement: dict[str, list[budget.BudgetPoint]]
    budget_sentences: list[str]
    notes: list[str]


@dataclass
class Report:
    metric: Optional[str]       # what every task compares, e.g. test.accuracy; None: each task its own
    margin: float               # equivalence margin, in points of the metric
    tasks: list[TaskReport]
    across: Optional[AcrossTasks]  # two or more tasks
    encoders: dict[str, str]    # Run.encoder_key -> the encoder's name
    not_completed: list[str]    # a line per run that did not complete or has no readable metrics.json
    problems: list[str]         # a line per path or file that could not be used
    files: list[Path] = field(default_factory=list)

    @property
    def compared(self) -> bool:
        return bool(self.tasks)

    @property
    def rows(self) -> list[dict]:
        return [row for task in self.tasks for row in task.rows]

    @property
    def runs(self) -> list[Run]:
        return [run for task in self.tasks for run in task.runs]

    @property
    def head_to_heads(self) -> list[HeadToHead]:
        return [h for task in self.tasks for h in task.head_to_heads]

    @property
    def sentences(self) -> list[str]:
        """The verdicts in a few sentences: across tasks first, then each head-to-head."""
        return ([self.across.sentence] if self.across else []) + [h.sentence for h in self.head_to_heads]


def build_report(paths: Sequence[str], out: Optional[Path] = None, metric: Optional[str] = None,
                 found: Optional[Found] = None, margin: float = DEFAULT_MARGIN) -> Report:
    """Compare every run under `paths` (or the runs already `found` there), write the comparison into `out`
    (default: `comparison/` in the first path), and return it. `metric` (default: each task's data.metric) is
    compared on every task."""
    found = found or load_runs(paths)
    report = compare_runs(found, metric, margin)
    if report.compared:
        first = paths[0] if not is_glob(paths[0]) else found.dirs[0].parent
        report.files = write_files(report, out or Path(first) / "comparison")
    return report


def compare_runs(found: Found, metric: Optional[str] = None, margin: float = DEFAULT_MARGIN) -> Report:
    """Each task's comparison of its completed runs and, with two or more tasks, the summary across them; the
    runs that did not complete listed with why."""
    completed = [r for r in found.runs if r.status == "completed"]
    not_completed = [f"{r.dir}: {r.status}: {r.metrics.get('error', 'no error recorded')}"
                     for r in found.runs if r.status != "completed"]
    not_completed += [f"{d}: {why}; run left out" for d, why in found.unreadable.items()]
    encoders = encoder_names(completed)
    groups = by_task(completed)
    names = task_names(list(groups))
    tasks = [compare_task(names[key], json.loads(key), runs, encoders, metric or task_metric(runs), margin / 100)
             for key, runs in groups.items()]
    across = across_tasks([TaskResult(t.name, t.ranking, t.head_to_heads) for t in tasks]) if len(tasks) > 1 else None
    shared = {t.metric for t in tasks}
    return Report(metric=metric or (shared.pop() if len(shared) == 1 else None), margin=margin, tasks=tasks,
                  across=across, encoders=encoders,
                  not_completed=not_completed, problems=list(found.problems))


def task_metric(runs: Sequence[Run]) -> str:
    """What a task's runs picked their best validation by (data.metric; accuracy before bertcmp 0.5), as the test
    metric to compare: the task's usual metric. Runs that disagree are compared on accuracy."""
    recorded = {run.metrics.get("metric", "accuracy") for run in runs}
    return f"test.{recorded.pop()}" if len(recorded) == 1 else "test.accuracy"


def healed_note(run: Run) -> str:
    """What healed a run, in words: it computed what it was asked to (out of memory: the same steps in smaller
    micro-batches), or says how it differs (fp32 from a step on)."""
    said = []
    for r in run.metrics["recovered"]:
        if r.get("what") == "out of memory":
            said.append(f"out of memory at step {r.get('step')}: micro-batch {r.get('micro_batch')} x "
                        f"{r.get('grad_accum_steps')} accumulation, the same effective batch")
        elif r.get("what") == "non-finite loss":
            said.append(f"a NaN loss at step {r.get('step')} under {r.get('was')}: {r.get('precision')} from "
                        f"step {r.get('from_step')} on")
    return f"healed run {run.dir.name}: " + "; ".join(said or ["(see its metrics.json, recovered)"])


def compare_task(name: str, key: dict, runs: list[Run], encoders: dict[str, str], metric: str,
                 margin: float) -> TaskReport:
    shared = shared_overrides(runs)
    rows = summarise(runs, metric, name, encoders, shared)
    ranking = rank_encoders(rows, metric)
    task = TaskReport(name=name, key=key, metric=metric, runs=runs, rows=rows, shared=shared, ranking=ranking,
                      head_to_heads=head_to_heads(runs, rows, ranking, metric, margin), budget={},
                      budget_with_replacement={}, budget_sentences=[], notes=[])
    task.notes += [healed_note(run) for run in runs if run.metrics.get("recovered")]
    if len(ranking) < 2:
        task.notes.append(f"no head-to-head on {name}: only {ranking[0].encoder} ran it; it needs completed runs of "
                          "at least two encoders")
    for standing in ranking:
        trials = [r for r in runs if encoders[r.encoder_key] == standing.encoder and r.value(metric) is not None]
        if not trials:
            task.notes.append(f"no budget curve for {standing.encoder} on {name}: none of its runs records {metric}")
            continue
        valid, test = [valid_score(r, metric) for r in trials], [r.value(metric) for r in trials]
        task.budget[standing.encoder] = budget.curve(valid, test)
        task.budget_with_replacement[standing.encoder] = budget.curve(valid, test, replacement=True)
    curves = list(task.budget.items())
    for i, (a, curve_a) in enumerate(curves):
        for b, curve_b in curves[i + 1:]:
            sentence = budget.lead_sentence(a, b, curve_a, curve_b, metric)
            task.budget_sentences += [sentence] if sentence else []
    return task


OUT_ADVICE = "free some space, or give --out a directory on another disk"


def write_files(report: Report, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    metric, runs, rows = report.metric or "each task's metric", report.runs, report.rows
    encoder = {run.dir: report.encoders[run.encoder_key] for run in runs}
    several = len(report.tasks) > 1
    figures = {"learning_curves.png": lambda p: plots.learning_curves(runs, encoder, shared_overrides(runs), p),
               "accuracy_vs_lr.png": lambda p: plots.metric_vs_lr(rows, metric, several, p),
               "accuracy_vs_throughput.png": lambda p: plots.metric_vs_throughput(
                   runs, encoder, report.metric or "test.accuracy", p),
               "budget.png": lambda p: plots.budget_curves({t.name: t.budget for t in report.tasks if t.budget},
                                                           metric, p)}
    by_length = {t.name: t.head_to_heads for t in report.tasks if any(h.by_length for h in t.head_to_heads)}
    if by_length:
        figures["accuracy_by_length.png"] = lambda p: plots.accuracy_by_length(by_length, p)
    for name, draw in figures.items():
        with writing(out / name, OUT_ADVICE):
            try:
                draw(out / name)
            except BaseException:
                (out / name).unlink(missing_ok=True)  # no half-drawn figure
                raise
    files = {"summary.csv": table_csv(rows), "summary.md": summary_markdown(report),
             "comparison.json": json.dumps(comparison_json(report), indent=2, default=str) + "\n",
             "report.md": report_markdown(report, list(figures))}
    for name, text in files.items():
        write_text(out / name, text, OUT_ADVICE)
    return [out / name for name in [*files, *figures]]


def task_json(task: TaskReport) -> dict:
    return {"name": task.name, "key": task.key, "metric": task.metric, "runs": [str(r.dir) for r in task.runs],
            "shared_overrides": task.shared, "rows": task.rows, "ranking": [asdict(s) for s in task.ranking],
            "head_to_heads": [asdict(h) for h in task.head_to_heads],
            "budget": {name: budget.records(points) for name, points in task.budget.items()},
            "budget_with_replacement": {name: budget.records(p) for name, p in task.budget_with_replacement.items()},
            "budget_sentences": task.budget_sentences, "notes": task.notes}


def comparison_json(report: Report) -> dict:
    """Everything, for scripts: a list of tasks; with one task also its parts at the top, as before 0.4."""
    tasks = [task_json(t) for t in report.tasks]
    summary = {"metric": report.metric, "margin": report.margin, "tasks": tasks,
               "across_tasks": asdict(report.across) if report.across else None,
               "not_completed": report.not_completed, "problems": report.problems}
    if len(tasks) == 1:
        summary |= {key: tasks[0][key] for key in ("shared_overrides", "rows", "ranking", "head_to_heads")}
    return summary


# ---------------------------------------------------------------------------------------------- report.md


def margin_line(report: Report) -> str:
    compared = report.metric or "each task's metric"
    return (f"Verdicts: better (95 % interval excludes 0, Holm-adjusted where the leader meets several encoders), "
            f"practically equivalent (90 % interval within ±{report.margin:g} points of {compared}: "
            f"`--margin {report.margin:g}`, two one-sided tests at 5 %), or inconclusive.")


def report_markdown(report: Report, figures: list[str]) -> str:
    several = len(report.tasks) > 1
    parts = ["# bertcmp comparison", ""]
    if report.across:
        parts += [f"**{report.across.sentence}**", ""]
    else:
        parts += [f"**{h.sentence}**" for h in report.head_to_heads] or ["No head-to-head."]
        parts += [""]
    parts += [margin_line(report)]
    if report.across:
        parts += ["", "## Across tasks", "", across_markdown(report.across)]
    for task in report.tasks:
        parts += task_markdown(task, "###" if several else "##", several)
    parts += ["", *(f"![{name}]({name})" for name in figures)]
    if report.not_completed or report.problems:
        parts += ["", "## Not compared", ""] + [f"- {line}" for line in report.not_completed + report.problems]
    return "\n".join(parts) + "\n"


def task_markdown(task: TaskReport, level: str, several: bool) -> list[str]:
    metric, selection = task.metric, selection_of(task.metric).replace(".", " ")
    parts = []
    if several:
        parts += ["", f"## Task: {task.name}", ""]
        parts += [f"**{h.sentence}**" for h in task.head_to_heads]
    parts += [f"- {note}" for note in task.notes]
    if len(task.ranking) > 1:
        leader = task.ranking[0].encoder
        parts += ["", f"Encoders by their best configuration on {selection} ({leader} leads; each other "
                      "encoder is compared with it):", "",
                  f"| rank | encoder | best configuration | runs | {selection} | {metric} |",
                  "|---|---|---|---|---|---|"]
        parts += [f"| {i} | {s.encoder} | `{s.configuration}` | {s.runs} | {s.valid_score:.4f} | "
                  f"{s.metric:.4f} |"
                  for i, s in enumerate(task.ranking, 1)]
    for h in task.head_to_heads:
        parts += ["", f"{level} {h.encoder_a} against {h.encoder_b}", "", f"`{h.a}` against `{h.b}`."]
        if h.seeds:
            s = h.seeds
            parts += ["", f"Over seeds ({s['n_a']} {h.encoder_a}, {s['n_b']} {h.encoder_b} runs, "
                          f"{'paired by seed' if s['paired'] else 'unpaired'}): mean difference "
                          f"{s['mean'] * 100:+.1f} points (95 % CI {s['low'] * 100:.1f} to {s['high'] * 100:.1f}; "
                          f"90 % CI {s['low90'] * 100:.1f} to {s['high90'] * 100:.1f})."]
        if h.items:
            parts += ["", item_level_line(h) + " Each side is its configuration's best-validation run."]
        if h.by_length:
            parts += ["", f"{by_length_title(h)}:", "", by_length_markdown(h)]
        parts += [f"- {note}" for note in h.notes]
    if task.budget:
        parts += ["", f"{level} Expected {metric} at each tuning budget", "", budget_intro(metric), "",
                  grid_markdown(*_budget_cells(task))]
        parts += [""] + [f"- {s}" for s in task.budget_sentences] if task.budget_sentences else []
    parts += ["", f"{level} Runs", "", "Mean ± standard deviation over seeds; one row per configuration, best "
              f"{selection} first."]
    if task.shared:
        parts += ["", f"Every configuration has `{','.join(task.shared)}`."]
    parts += ["", table_markdown(task.rows)]
    return parts


def budget_intro(metric: str) -> str:
    return (f"{budget.SEARCH_SPACE} After n trials, the {metric} of the run they would select on validation "
            "accuracy, expected over all n-subsets of the runs (without replacement, Tang et al. 2020's unbiased "
            "estimator; comparison.json also has Dodge et al. 2019's with-replacement one), ± the spread of that "
            "selection. * rests on a single run: its training noise is not counted.")


def _budget_cells(task: TaskReport) -> tuple[list[str], list[list[str]]]:
    names = list(task.budget)
    longest = max(len(points) for points in task.budget.values())
    lines = []
    for n in budget.budgets(longest):
        cells = [str(n)]
        for name in names:
            points = task.budget[name]
            p = points[n - 1] if n <= len(points) else None
            cells.append("" if p is None else f"{p.test:.4f} ± {p.test_sd:.4f}{' *' if p.one_run else ''}")
        lines.append(cells)
    return ["trials", *names], lines




def _across_cells(across: AcrossTasks) -> tuple[list[str], list[list[str]]]:
    cell = {(c["encoder"], c["task"]): c for c in across.cells}
    head = ["encoder", *across.tasks, "wins", "ties", "losses", "inconclusive", "mean rank"]
    lines = []
    for e in across.encoders:
        record = across.record[e]
        values = [e]
        for t in across.tasks:
            c = cell.get((e, t))
            values.append("" if c is None else f"{c['metric']:.4f} {c['mark']}{' †' if c['one_run'] else ''}")
        rank = record["mean_rank"]
        values += [str(record[k]) for k in ("wins", "ties", "losses", "inconclusive")]
        values.append("" if rank is None else f"{rank:.2f}")
        lines.append(values)
    return head, lines


ACROSS_LEGEND = ("Each cell: the test score of the encoder's validation-selected configuration (mean over its seeds) "
                 "and its verdict against the task's leader (the encoder best on validation). † from one run each: "
                 "training noise is not counted.")


def across_markdown(across: AcrossTasks) -> str:
    parts = [ACROSS_LEGEND, "", grid_markdown(*_across_cells(across)), "",
             _sentence_case(test_clause(across.test)) + "."]
    return "\n".join(parts + [f"- {note}" for note in across.notes])


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def summary_markdown(report: Report) -> str:
    if len(report.tasks) == 1:
        return table_markdown(report.tasks[0].rows) + "\n"
    return "\n".join(f"## {t.name}\n\n{table_markdown(t.rows)}\n" for t in report.tasks)


def by_length_title(h: HeadToHead) -> str:
    return (f"Accuracy by length, the same two runs, in quarters of the test items by their length in "
            f"{h.encoder_a}'s tokens")


def by_length_markdown(h: HeadToHead) -> str:
    lines = [f"| {h.encoder_a} tokens per text | items | {h.encoder_a} accuracy | {h.encoder_b} accuracy |",
             "|---|---|---|---|"]
    lines += [f"| {r['tokens']} | {r['items']} | {r['a']:.4f} | {r['b']:.4f} |" for r in h.by_length]
    return "\n".join(lines)


def by_length_lines(h: HeadToHead) -> list[str]:
    return [f"{by_length_title(h)}:"] + [f"  {r['tokens']} tokens ({r['items']} items): {h.encoder_a} {r['a']:.4f}, "
                                         f"{h.encoder_b} {r['b']:.4f}" for r in h.by_length]


# ---------------------------------------------------------------------------------------------- on screen


def print_report(report: Report, stream=None, list_not_completed: bool = True) -> None:
    """The comparison on screen; `list_not_completed=False` where a list of every run follows anyway."""
    stream = stream or sys.stdout
    say = lambda *lines: print(*lines, sep="\n", file=stream)  # noqa: E731
    several = len(report.tasks) > 1
    for task in report.tasks:
        if several:
            say("", f"=== task {task.name}: {len(task.runs)} runs ===")
        if task.shared:
            say(f"every configuration has: {','.join(task.shared)}")
        say(table_text(task.rows))
        for note in task.notes:
            say(f"  note: {note}")
        if len(task.ranking) > 2:
            say("", "encoders by their best configuration on validation:")
            shown = selection_of(task.metric).replace(".", " ")
            say(*(f"  {i}. {s.encoder}: {shown} {s.valid_score:.4f}, {task.metric} {s.metric:.4f} "
                  f"({s.configuration})" for i, s in enumerate(task.ranking, 1)))
        for h in task.head_to_heads:
            say("", h.sentence)
            if h.items:
                say(item_level_line(h))
            if h.by_length:
                say(*by_length_lines(h))
            for note in h.notes:
                say(f"  note: {note}")
        if task.budget:
            say("", f"expected {task.metric} of the run n trials select on validation (without replacement; "
                    "* one run):", grid_text(*_budget_cells(task)), *task.budget_sentences)
    if report.across:
        say("", "=== across tasks ===", grid_text(*_across_cells(report.across)), report.across.sentence)
        for note in report.across.notes:
            say(f"  note: {note}")
    if report.compared:
        say("", f"(equivalent: within ±{report.margin:g} points, --margin)")
    for line in report.not_completed if list_not_completed else ():
        say(f"not completed: {line}")
    for line in report.problems:
        say(f"problem: {line}")
    if report.files:
        say(f"report: {report.files[0].parent / 'report.md'}")
