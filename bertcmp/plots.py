"""The comparison's figures, as PNG files: learning curves, the metric against learning rate, and the
metric against training throughput."""

from __future__ import annotations

import zlib
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only: works on machines without a display
import matplotlib.pyplot as plt  # noqa: E402

from bertcmp.runs import Run  # noqa: E402

COLORS = {"bert": "tab:blue", "modernbert": "tab:orange"}
OTHER_COLORS = ["tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]


def _color(model: str) -> str:
    """The same colour for a family in every figure and every report."""
    return COLORS.get(model) or OTHER_COLORS[zlib.crc32(model.encode()) % len(OTHER_COLORS)]


def learning_curves(runs: Sequence[Run], shared: Sequence[str], path: Path) -> None:
    """Validation accuracy and training loss per epoch, a line per run, named without the `shared` overrides."""
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        epochs = [h["epoch"] for h in run.history]
        acc_ax.plot(epochs, [h["valid_accuracy"] for h in run.history], marker="o", color=_color(run.model),
                    alpha=0.8, label=run.label(shared))
        loss_ax.plot(epochs, [h["train_loss"] for h in run.history], marker="o", color=_color(run.model), alpha=0.8)
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    for ax in (acc_ax, loss_ax):
        ax.xaxis.get_major_locator().set_params(integer=True)
    _save(fig, path, legend_on=acc_ax if len(runs) <= 12 else None, fontsize=7)


def metric_vs_lr(rows: Sequence[dict], metric: str, path: Path) -> None:
    """One point per configuration at its learning rate, error bars over seeds; a line per model."""
    by_model: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if row["lr"] is not None:
            by_model[row["model"]].append(row)
    fig, ax = plt.subplots(figsize=(6, 4))
    for model, points in sorted(by_model.items()):
        points.sort(key=lambda r: r["lr"])
        ax.errorbar([p["lr"] for p in points], [p["metric_mean"] for p in points],
                    yerr=[p["metric_std"] for p in points], marker="o", capsize=4, color=_color(model), label=model)
    ax.set_xscale("log")
    ax.set(xlabel="learning rate", ylabel=metric, title=f"{metric} against learning rate (error bars: std over seeds)")
    _save(fig, path, legend_on=ax)


def metric_vs_throughput(runs: Sequence[Run], metric: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for model in sorted({r.model for r in runs}):
        mine = [r for r in runs if r.model == model and r.value("train.examples_per_s") and r.value(metric) is not None]
        ax.scatter([r.value("train.examples_per_s") for r in mine], [r.value(metric) for r in mine],
                   color=_color(model), label=model, s=40)
    ax.set(xlabel="training examples / s", ylabel=metric, title=f"{metric} against training speed")
    _save(fig, path, legend_on=ax)


def accuracy_by_length(head_to_heads: Sequence, path: Path) -> None:
    """The head-to-heads' runs: accuracy in each quarter of the test items by length (in the leader's tokens)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    pairs = [h for h in head_to_heads if h.by_length]
    rows = pairs[0].by_length
    quarters = range(len(rows))
    lines = [(pairs[0].model_a, pairs[0].family_a, [r["a"] for r in rows])]
    lines += [(h.model_b, h.family_b, [r["b"] for r in h.by_length]) for h in pairs]
    for model, family, accuracies in lines:
        ax.plot(quarters, accuracies, marker="o", color=_color(model), label=family)
    ax.set_xticks(list(quarters), [f"{r['tokens']}\n({r['items']} items)" for r in rows], fontsize=8)
    ax.set(xlabel=f"{pairs[0].family_a} tokens per text (quarters of the test items)", ylabel="test accuracy",
           title="Accuracy by text length")
    _save(fig, path, legend_on=ax)


def _save(fig, path: Path, legend_on=None, fontsize=None) -> None:
    """Grid every plot, put the legend on `legend_on` (none if None), write the PNG and free the figure."""
    for ax in fig.axes:
        ax.grid(alpha=0.3)
    if legend_on is not None:
        legend_on.legend(fontsize=fontsize)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
