"""The comparison's figures, as PNG files: learning curves, the metric against learning rate and against training
throughput, accuracy by text length, and the budget curves."""

from __future__ import annotations

import textwrap
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only: works on machines without a display
import matplotlib.pyplot as plt  # noqa: E402

from bertcmp.runs import Run  # noqa: E402

COLORS = {"BERT": "tab:blue", "ModernBERT": "tab:orange"}
OTHER_COLORS = ["tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]


def _color(encoder: str) -> str:
    """The same colour for an encoder in every figure and every report."""
    return COLORS.get(encoder) or OTHER_COLORS[zlib.crc32(encoder.encode()) % len(OTHER_COLORS)]


def learning_curves(runs: Sequence[Run], encoder: dict[Path, str], shared: Sequence[str], path: Path) -> None:
    """Validation accuracy and training loss per epoch, a line per run, named without the `shared` overrides."""
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        epochs = [h["epoch"] for h in run.history]
        color = _color(encoder[run.dir])
        acc_ax.plot(epochs, [h["valid_accuracy"] for h in run.history], marker="o", color=color, alpha=0.8,
                    label=run.label(shared))
        loss_ax.plot(epochs, [h["train_loss"] for h in run.history], marker="o", color=color, alpha=0.8)
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    for ax in (acc_ax, loss_ax):
        ax.xaxis.get_major_locator().set_params(integer=True)
    _save(fig, path, legend_on=acc_ax if len(runs) <= 12 else None, fontsize=7)


def metric_vs_lr(rows: Sequence[dict], metric: str, several_tasks: bool, path: Path) -> None:
    """One point per configuration at its learning rate, error bars over seeds; a line per encoder (and task)."""
    lines: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        if row["lr"] is not None:
            lines[(row["encoder"], row["task"])].append(row)
    fig, ax = plt.subplots(figsize=(6, 4))
    for (encoder, task), points in sorted(lines.items()):
        points.sort(key=lambda r: r["lr"])
        ax.errorbar([p["lr"] for p in points], [p["metric_mean"] for p in points],
                    yerr=[p["metric_std"] for p in points], marker="o", capsize=4, color=_color(encoder),
                    label=f"{encoder} on {task}" if several_tasks else encoder)
    ax.set_xscale("log")
    ax.set(xlabel="learning rate", ylabel=metric, title=f"{metric} against learning rate (error bars: std over seeds)")
    _save(fig, path, legend_on=ax)


def metric_vs_throughput(runs: Sequence[Run], encoder: dict[Path, str], metric: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in sorted(set(encoder.values())):
        mine = [r for r in runs if encoder[r.dir] == name and r.value("train.examples_per_s") and
                r.value(metric) is not None]
        ax.scatter([r.value("train.examples_per_s") for r in mine], [r.value(metric) for r in mine],
                   color=_color(name), label=name, s=40)
    ax.set(xlabel="training examples / s", ylabel=metric, title=f"{metric} against training speed")
    _save(fig, path, legend_on=ax)


def accuracy_by_length(head_to_heads: dict[str, Sequence], path: Path) -> None:
    """A panel per head-to-head (per task): the two runs' accuracy in each of its length buckets
    (differ.length_buckets: what each model had to cut, or quarters by length)."""
    panels = [(task, h) for task, pairs in head_to_heads.items() for h in pairs if h.by_length]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (task, h) in zip(axes[0], panels):
        buckets = range(len(h.by_length))
        for name, side in ((h.encoder_a, "a"), (h.encoder_b, "b")):
            ax.plot(buckets, [r[side] for r in h.by_length], marker="o", color=_color(name), label=name)
        ax.set_xticks(list(buckets), [f"{_wrap(r['bucket'])}\n({r['items']} items)" for r in h.by_length],
                      fontsize=7)
        title = f"{h.encoder_a} against {h.encoder_b}" + (f" on {task}" if len(head_to_heads) > 1 else "")
        ax.set(xlabel="test texts by length", ylabel="test accuracy", title=f"Accuracy by text length: {title}")
        ax.legend()
    _save(fig, path)


def _wrap(text: str, width: int = 22) -> str:
    return textwrap.fill(text, width)


def budget_curves(curves: dict[str, tuple[dict[str, Sequence], dict[str, Sequence[dict]], str]], metric: str,
                  path: Path) -> None:
    """A column per task, a line per encoder: the expected test score of the run n trials would select on
    validation, with its spread as a band, against trials (top) and, where runs recorded their device, against
    the search's compute (bottom); hollow markers where the value rests on a single run."""
    with_hours = any(compute for _, compute, _ in curves.values())
    columns = max(1, len(curves))
    fig, axes = plt.subplots(2 if with_hours else 1, columns, figsize=(5.5 * columns, 8 if with_hours else 4),
                             squeeze=False)
    for column, (task, (encoders, compute, unit)) in enumerate(curves.items()):
        for name, points in encoders.items():
            axis_values = [("trials", [p.n for p in points], axes[0][column])]
            if name in compute:
                axis_values.append(("hours", [c["hours"] for c in compute[name]], axes[1][column]))
            test, spread = [p.test for p in points], [p.test_sd for p in points]
            color = _color(name)
            for _, x, ax in axis_values:
                ax.plot(x, test, color=color, label=name)
                ax.fill_between(x, [t - s for t, s in zip(test, spread)], [t + s for t, s in zip(test, spread)],
                                color=color, alpha=0.15)
                for xi, p in zip(x, points):
                    ax.plot(xi, p.test, marker="o", color=color, markerfacecolor="white" if p.one_run else color)
        axes[0][column].xaxis.get_major_locator().set_params(integer=True)
        axes[0][column].set(xlabel="trials (runs drawn from the grid)", ylabel=f"expected {metric} of the selected run",
                            title=task)
        if with_hours:
            axes[1][column].set(xlabel=f"compute spent on the search ({unit})",
                                ylabel=f"expected {metric} of the selected run", title=f"{task}, by compute")
        for ax in axes[:, column]:
            if ax.lines:
                ax.legend(fontsize=8)
    fig.suptitle("Expected performance at each tuning budget (hollow: rests on one run)", fontsize=10)
    _save(fig, path)


def pareto(rows: dict[str, Sequence[dict]], path: Path) -> None:
    """A row per task: each configuration's score (mean over its seeds) against its inference throughput (more is
    better) and against its training cost, a run's wall time (less is better), the frontier drawn: the
    configurations no other beats on both."""
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 4 * len(rows)), squeeze=False)
    for (task, task_rows), (speed_ax, cost_ax) in zip(rows.items(), axes):
        metric = task_rows[0]["metric"] if task_rows else "score"
        for ax, key, more_is_better, label in (
                (speed_ax, "inference.examples_per_s", True, "inference examples / s (more is better)"),
                (cost_ax, "wall_seconds", False, "seconds per run (less is better)")):
            points = [(r[key], r["metric_mean"], r) for r in task_rows
                      if r.get(key) is not None and r[key] == r[key] and r["metric_mean"] == r["metric_mean"]]
            for x, y, r in points:
                ax.scatter([x], [y], color=_color(r["encoder"]), s=40,
                           label=r["encoder"] if r["encoder"] not in ax.get_legend_handles_labels()[1] else None)
            front = frontier([(x, y) for x, y, _ in points], more_is_better)
            if front:  # the edge of what the configurations reach: a step at each frontier point
                ax.step([x for x, _ in front], [y for _, y in front], where="pre" if more_is_better else "post",
                        color="black", alpha=0.5, linewidth=1)
                ax.scatter([x for x, _ in front], [y for _, y in front], s=130, facecolors="none",
                           edgecolors="black", label="frontier")
            xs = [x for x, _, _ in points]
            if xs and max(xs) > 10 * min(xs):  # configurations of very different cost
                ax.set_xscale("log")
            ax.set(xlabel=label, ylabel=metric, title=f"{task}: {metric} against "
                                                      f"{'inference speed' if more_is_better else 'training cost'}")
            if points:
                ax.legend(fontsize=8)
    fig.suptitle("Each configuration: score against cost (runs on different hardware are not comparable on x)",
                 fontsize=10)
    _save(fig, path)


def frontier(points: Sequence[tuple[float, float]], more_is_better: bool) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (x: more or less is better; y: more is better), by x."""
    kept = [p for p in points if not any(_beats(q, p, more_is_better) for q in points)]
    return sorted(set(kept))


def _beats(q: tuple[float, float], p: tuple[float, float], more_is_better: bool) -> bool:
    x_at_least = q[0] >= p[0] if more_is_better else q[0] <= p[0]
    return x_at_least and q[1] >= p[1] and q != p


def _save(fig, path: Path, legend_on=None, fontsize=None) -> None:
    """Finish the figure (_finish), write the PNG and free the figure."""
    _finish(fig, legend_on, fontsize)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _finish(fig, legend_on=None, fontsize=None) -> None:
    """Grid every plot and put the legend on `legend_on` (none if None)."""
    for ax in fig.axes:
        ax.grid(alpha=0.3)
    if legend_on is not None:
        legend_on.legend(fontsize=fontsize)
