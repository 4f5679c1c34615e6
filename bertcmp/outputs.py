"""The files a run writes into its output directory, each written atomically (a temp file, then a rename),
so an interrupted run leaves the previous complete version or nothing, never a truncated file.

    metrics.json          status, best epoch, valid / test metrics, speed, size (read by bertcmp.compare)
    history.jsonl         one line per epoch
    test_predictions.csv  index,label,pred,prob_pos,n_tokens for every test item (more than two classes:
                          label and pred as class names, and prob_<class> for each class)
    checkpoint/           the best weights (model.safetensors), the config, the tokenizer, and bertcmp.json
                          (the classes and how texts were tokenized: what bertcmp.predict needs)
    resume/state.pt       while training: the last finished epoch's full state; removed once the run completes
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.jsonl"
PREDICTIONS_FILE = "test_predictions.csv"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_SETTINGS = "bertcmp.json"
RESUME_DIR = "resume"


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=_plain) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(row, default=_plain) + "\n" for row in rows))


def probability_columns(classes: Sequence[str]) -> list[str]:
    """The names of the class-probability columns: prob_pos for two classes (the positive one's), else
    prob_<class> for each class."""
    return ["prob_pos"] if len(classes) == 2 else [f"prob_{name}" for name in classes]


def write_predictions(path: Path, index: np.ndarray, labels: np.ndarray, preds: np.ndarray, probs: np.ndarray,
                      classes: Sequence[str], n_tokens: Optional[np.ndarray] = None) -> None:
    """One row per test item, sorted by its row id so two runs' files line up line by line; `n_tokens` is each
    text's whole length in tokens, before truncation. Two classes: label and pred as the class ids 0 / 1 and the
    positive class's probability; more: label and pred as class names and every class's probability."""
    binary = len(classes) == 2
    shown = (lambda c: int(c)) if binary else (lambda c: classes[c])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["index", "label", "pred", *probability_columns(classes),
                     *(["n_tokens"] if n_tokens is not None else [])])
    for i in np.argsort(index, kind="stable"):
        p = probs[i, 1:] if binary else probs[i]
        extra = [int(n_tokens[i])] if n_tokens is not None else []
        writer.writerow([int(index[i]), shown(labels[i]), shown(preds[i]), *(f"{float(x):.6f}" for x in p), *extra])
    write_text(path, buffer.getvalue())


def write_checkpoint(directory: Path, fill: Callable[[Path], None]) -> None:
    """A directory that `fill` writes (weights, config, tokenizer), swapped in as a whole."""
    tmp = directory.with_name(f".{directory.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fill(tmp)
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(tmp, directory)


def write_resume_state(run_dir: Path, state: dict) -> None:
    directory = run_dir / RESUME_DIR
    directory.mkdir(exist_ok=True)
    import torch

    tmp = directory / f".state.pt.tmp{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, directory / "state.pt")


def read_resume_state(run_dir: Path) -> dict | None:
    import torch

    path = run_dir / RESUME_DIR / "state.pt"
    # our own file, holding random-generator states that weights_only loading refuses
    return torch.load(path, map_location="cpu", weights_only=False) if path.is_file() else None


def clear_resume_state(run_dir: Path) -> None:
    shutil.rmtree(run_dir / RESUME_DIR, ignore_errors=True)


def read_json(path: Path) -> dict | None:
    """The parsed file, or None when it is missing or not valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
