"""The comparison's figures, as PNG files: learning curves, the metric against learning rate and against training
throughput, accuracy by text length, and the budget curves."""

from __future__ import annotations

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
    """Per task, the head-to-heads' runs: accuracy in each quarter of the test items by length (leader's tokens)."""
    fig, axes = plt.subplots(1, len(head_to_heads), figsize=(6 * len(head_to_heads), 4), squeeze=False)
    for ax, (task, pairs) in zip(axes[0], head_to_heads.items()):
        pairs = [h for h in pairs if h.by_length]
        rows = pairs[0].by_length
        quarters = range(len(rows))
        lines = [(pairs[0].encoder_a, [r["a"] for r in rows])] + [(h.encoder_b, [r["b"] for r in h.by_length])
                                                                  for h in pairs]
        for name, accuracies in lines:
            ax.plot(quarters, accuracies, marker="o", color=_color(name), label=name)
        ax.set_xticks(list(quarters), [f"{r['tokens']}\n({r['items']} items)" for r in rows], fontsize=8)
        ax.set(xlabel=f"{pairs[0].encoder_a} tokens per text (quarters of the test items)", ylabel="test accuracy",
               title=f"Accuracy by text length: {task}" if len(head_to_heads) > 1 else "Accuracy by text length")
        ax.legend()
    _save(fig, path)


def budget_curves(curves: dict[str, dict[str, Sequence]], metric: str, path: Path) -> None:
    """A panel per task, a line per encoder: the expected test score of the run n trials would select on
    validation, with its spread as a band; hollow markers where the value rests on a single run."""
    fig, axes = plt.subplots(1, max(1, len(curves)), figsize=(5.5 * max(1, len(curves)), 4), squeeze=False)
    for ax, (task, encoders) in zip(axes[0], curves.items()):
        for name, points in encoders.items():
            n = [p.n for p in points]
            test, spread = [p.test for p in points], [p.test_sd for p in points]
            color = _color(name)
            ax.plot(n, test, color=color, label=name)
            ax.fill_between(n, [t - s for t, s in zip(test, spread)], [t + s for t, s in zip(test, spread)],
                            color=color, alpha=0.15)
            for p in points:
                ax.plot(p.n, p.test, marker="o", color=color, markerfacecolor="white" if p.one_run else color)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set(xlabel="trials (runs drawn from the grid)", ylabel=f"expected {metric} of the selected run",
               title=task)
        ax.legend(fontsize=8)
    fig.suptitle("Expected performance at each tuning budget (hollow: rests on one run)", fontsize=10)
    _save(fig, path)


def _save(fig, path: Path, legend_on=None, fontsize=None) -> None:
    """Grid every plot, put the legend on `legend_on` (none if None), write the PNG and free the figure."""
    for ax in fig.axes:
        ax.grid(alpha=0.3)
    if legend_on is not None:
        legend_on.legend(fontsize=fontsize)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
