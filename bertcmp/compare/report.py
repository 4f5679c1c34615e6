"""The comparison of a set of runs: per task, its table, the ranking of its encoders, their head-to-heads and
budget curves; across tasks, a summary. Written as report.md, summary.csv / .md, comparison.json and PNG plots,
and printed."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from bertcmp.compare import budget, cost, plots
from bertcmp.compare.across import AcrossTasks, TaskResult, across_tasks, test_clause
from bertcmp.compare.differ import example_line
from bertcmp.compare.recommend import Advice, across_advice, task_advice
from bertcmp.compare.groups import by_task, encoder_names, task_names
from bertcmp.compare.table import (grid_markdown, grid_text, points, selection_of, shared_overrides, summarise,
                                   table_csv, table_markdown, table_text, valid_score)
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
    # each other encoder's cost against the leader's, by the other's name (cost.CostRatio, one per measure)
    cost: dict[str, list[cost.CostRatio]] = field(default_factory=dict)
    cost_sentences: dict[str, str] = field(default_factory=dict)  # the same, in a sentence, by the other's name
    budget_compute: dict[str, list[dict]] = field(default_factory=dict)  # per encoder: hours, test, test_sd
    hours_unit: str = "CPU-hours"   # of budget_compute: GPU-hours where every run trained on a GPU
    advice: Advice = field(default_factory=lambda: Advice(None, ""))  # the recommendation

    @property
    def recommendation(self) -> str:
        return self.advice.text


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
    recommendation: str = ""    # what to pick: across tasks, or with one task that task's paragraph

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

    @property
    def recommendations(self) -> list[str]:
        """What to pick: across tasks first, then each task's paragraph (with one task, its paragraph)."""
        if len(self.tasks) < 2:
            return [self.recommendation] if self.recommendation else []
        return [self.recommendation] + [f"{t.name}: {t.recommendation}" for t in self.tasks if t.recommendation]


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
    if len(tasks) > 1:
        recommendation = across_advice([(t.name, t.advice, [c for ratios in t.cost.values() for c in ratios])
                                        for t in tasks])
    else:
        recommendation = tasks[0].recommendation if tasks else ""
    return Report(metric=metric or (shared.pop() if len(shared) == 1 else None), margin=margin, tasks=tasks,
                  across=across, encoders=encoders, not_completed=not_completed, problems=list(found.problems),
                  recommendation=recommendation)


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
        compute = cost.compute_curve(task.budget[standing.encoder], trials)
        if compute:
            task.budget_compute[standing.encoder] = compute
    task.hours_unit = cost.hours_unit(runs)
    curves = list(task.budget.items())
    for i, (a, curve_a) in enumerate(curves):
        for b, curve_b in curves[i + 1:]:
            sentence = budget.lead_sentence(a, b, curve_a, curve_b, metric)
            task.budget_sentences += [sentence] if sentence else []
            trials = {e: [r for r in runs if encoders[r.encoder_key] == e] for e in (a, b)}
            if a in task.budget_compute and b in task.budget_compute and cost.comparable(trials[a], trials[b], a, b)[0]:
                task.budget_sentences.append(cost.compute_sentence(a, b, task.budget_compute[a], task.budget_compute[b],
                                                                   task.hours_unit, metric))
    compare_cost(task)
    task.advice = task_advice(task.head_to_heads, task.cost)
    return task


def compare_cost(task: TaskReport) -> None:
    """Each head-to-head's two configurations on cost: their seeds' speeds, memory, size and wall time."""
    members = {row["configuration"]: [r for r in task.runs if r.configuration_key == row["key"]] for row in task.rows}
    for h in task.head_to_heads:
        ratios, notes = cost.cost_ratios(h.encoder_a, members[h.a], h.encoder_b, members[h.b])
        task.cost[h.encoder_b] = ratios
        task.notes += notes
        task.cost_sentences[h.encoder_b] = cost.cost_sentence(ratios)


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
               "budget.png": lambda p: plots.budget_curves(
                   {t.name: (t.budget, t.budget_compute, t.hours_unit) for t in report.tasks if t.budget}, metric, p)}
    by_length = {t.name: t.head_to_heads for t in report.tasks if any(h.by_length for h in t.head_to_heads)}
    if by_length:
        figures["accuracy_by_length.png"] = lambda p: plots.accuracy_by_length(by_length, p)
    figures["pareto.png"] = lambda p: plots.pareto({t.name: t.rows for t in report.tasks}, p)
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
            "budget_compute": task.budget_compute, "budget_compute_unit": task.hours_unit,
            "budget_sentences": task.budget_sentences,
            "cost": [asdict(c) for ratios in task.cost.values() for c in ratios],
            "cost_sentences": list(task.cost_sentences.values()), "pick": task.advice.pick,
            "recommendation": task.recommendation,
            "notes": task.notes}


def comparison_json(report: Report) -> dict:
    """Everything, for scripts: a list of tasks; with one task also its parts at the top, as before 0.4."""
    tasks = [task_json(t) for t in report.tasks]
    summary = {"metric": report.metric, "margin": report.margin, "recommendation": report.recommendation,
               "tasks": tasks,
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
    parts += [f"**Recommendation.** {report.recommendation}", ""] if report.recommendation else []
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
        parts += [f"**Recommendation.** {task.recommendation}", ""] if task.recommendation else []
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
        ratios = task.cost.get(h.encoder_b, [])
        if any(r.compared for r in ratios):
            parts += ["", f"Cost, {h.encoder_b} over {h.encoder_a} (the two configurations' runs; 95 % interval "
                          "over seeds, on log ratios):", "", grid_markdown(*_cost_cells(ratios))]
        parts += ["", task.cost_sentences[h.encoder_b]] if ratios else []
        if h.by_length:
            parts += ["", f"{by_length_title(h)}:", "", by_length_markdown(h), "", h.length_sentence]
        if h.by_class:
            parts += ["", "Per-class F1 of the same two runs:", "", grid_markdown(*_class_cells(h)), "",
                      h.class_sentence]
        if h.examples:
            parts += ["", "Test items one encoder alone got right, the most confident first:", ""]
            parts += [f"- {e['encoder']} alone: {example_line(e)}" for e in h.examples]
        parts += [f"- {note}" for note in h.notes]
    if task.budget:
        parts += ["", f"{level} Expected {metric} at each tuning budget", "", budget_intro(metric, task), "",
                  grid_markdown(*_budget_cells(task))]
        parts += [""] + [f"- {s}" for s in task.budget_sentences] if task.budget_sentences else []
    parts += ["", f"{level} Runs", "", "Mean ± standard deviation over seeds; one row per configuration, best "
              f"{selection} first."]
    if task.shared:
        parts += ["", f"Every configuration has `{','.join(task.shared)}`."]
    parts += ["", table_markdown(task.rows)]
    return parts


def budget_intro(metric: str, task: TaskReport) -> str:
    hours = (f" In brackets, the search's compute: n times the encoder's mean run cost, in {task.hours_unit} (its "
             "wall time times its GPUs, or on a CPU its threads).") if task.budget_compute else ""
    return (f"{budget.SEARCH_SPACE} After n trials, the {metric} of the run they would select on validation "
            "accuracy, expected over all n-subsets of the runs (without replacement, Tang et al. 2020's unbiased "
            "estimator; comparison.json also has Dodge et al. 2019's with-replacement one), ± the spread of that "
            f"selection. * rests on a single run: its training noise is not counted.{hours}")


def _budget_cells(task: TaskReport) -> tuple[list[str], list[list[str]]]:
    names = list(task.budget)
    longest = max(len(points) for points in task.budget.values())
    lines = []
    for n in budget.budgets(longest):
        cells = [str(n)]
        for name in names:
            points = task.budget[name]
            p = points[n - 1] if n <= len(points) else None
            hours = task.budget_compute.get(name)
            spent = f" ({hours[n - 1]['hours']:.3g} h)" if hours and p is not None else ""
            cells.append("" if p is None else f"{p.test:.4f} ± {p.test_sd:.4f}{' *' if p.one_run else ''}{spent}")
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
    how = (f"in quarters by length in {h.encoder_a}'s tokens" if h.by_length[0]["quarters"]
           else "by what each model had to cut to its max_length")
    return f"Accuracy by length, the same two runs, the test items {how}"


def _by_length_cells(h: HeadToHead) -> tuple[list[str], list[list[str]]]:
    head = ["texts", "items", f"{h.encoder_a} accuracy", f"{h.encoder_b} accuracy", "difference (95 % CI)"]
    return head, [[r["bucket"], str(r["items"]), f"{r['a']:.4f}", f"{r['b']:.4f}", _difference(r)]
                  for r in h.by_length]


def _difference(row: dict) -> str:
    return f"{row['difference'] * 100:+.1f} ({points(row['low'])} to {points(row['high'])})"


def _class_cells(h: HeadToHead) -> tuple[list[str], list[list[str]]]:
    head = ["class", "items", f"{h.encoder_a} F1", f"{h.encoder_b} F1", "difference (95 % CI)"]
    return head, [[str(r["class"]), str(r["items"]), f"{r['f1_a']:.4f}", f"{r['f1_b']:.4f}", _difference(r)]
                  for r in h.by_class]


def _cost_cells(ratios: Sequence[cost.CostRatio]) -> tuple[list[str], list[list[str]]]:
    lines = []
    for r in ratios:
        if not r.compared:
            lines.append([cost.VERBS[r.measure][2], "", "", r.why or ""])
            continue
        spread = f"{r.low:.2f} to {r.high:.2f}" if r.low is not None else "one run on a side: no interval"
        lines.append([cost.VERBS[r.measure][2], f"{r.ratio:.3f}x", spread, f"{r.runs[0]} / {r.runs[1]}"])
    return ["measure", "ratio", "95 % CI", "runs"], lines


def by_length_markdown(h: HeadToHead) -> str:
    return grid_markdown(*_by_length_cells(h))


def by_length_lines(h: HeadToHead) -> list[str]:
    return [f"{by_length_title(h)}:", grid_text(*_by_length_cells(h))]


# ---------------------------------------------------------------------------------------------- on screen

SCREEN_EXAMPLES = 2  # per encoder; report.md and comparison.json have differ.EXAMPLES


def print_report(report: Report, stream=None, list_not_completed: bool = True) -> None:
    """The comparison on screen; `list_not_completed=False` where a list of every run follows anyway."""
    stream = stream or sys.stdout
    say = lambda *lines: print(*lines, sep="\n", file=stream)  # noqa: E731
    several = len(report.tasks) > 1
    for task in report.tasks:
        if several:
            say("", f"=== task {task.name}: {len(task.runs)} runs ===")
        if task.recommendation:
            say(f"recommendation: {task.recommendation}", "")
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
            ratios = task.cost.get(h.encoder_b, [])
            if any(r.compared for r in ratios):
                say(f"cost, {h.encoder_b} over {h.encoder_a}:", grid_text(*_cost_cells(ratios)))
            say(*[task.cost_sentences[h.encoder_b]] if ratios else [])
            if h.by_length:
                say(*by_length_lines(h), h.length_sentence)
            if h.by_class:
                say("per-class F1:", grid_text(*_class_cells(h)), h.class_sentence)
            if h.examples:
                shown = [e for name in (h.encoder_a, h.encoder_b)
                         for e in [e for e in h.examples if e["encoder"] == name][:SCREEN_EXAMPLES]]
                say("right where the other is wrong (most confident first):",
                    *(f"  {e['encoder']}: {example_line(e)}" for e in shown))
            for note in h.notes:
                say(f"  note: {note}")
        if task.budget:
            hours = f" ({task.hours_unit} spent in brackets)" if task.budget_compute else ""
            say("", f"expected {task.metric} of the run n trials select on validation (without replacement; "
                    f"* one run){hours}:", grid_text(*_budget_cells(task)), *task.budget_sentences)
    if report.across:
        say("", "=== across tasks ===", f"recommendation: {report.recommendation}", "",
            grid_text(*_across_cells(report.across)), report.across.sentence)
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
