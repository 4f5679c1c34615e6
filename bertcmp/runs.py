"""Reading finished runs back from their output directories, for the comparison. Only the files runs write
are read (metrics.json, history.jsonl, test_predictions.csv, .hydra/config.yaml): no torch, no model."""

from __future__ import annotations

import csv
import glob
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from omegaconf import OmegaConf

from bertcmp.outputs import HISTORY, METRICS, PREDICTIONS, read_json

# the keys of the data config that decide which items land in the test split
TEST_ITEMS_KEYS = ("name", "source", "text_column", "label_column", "split", "split_seed", "valid_size",
                   "test_size", "dedup", "num_examples")
IGNORED_FOR_CONFIG = ("seed", "logger", "cache_dir")  # runs differing only in these are one configuration


@dataclass
class Predictions:
    index: np.ndarray
    label: np.ndarray
    pred: np.ndarray
    prob_pos: np.ndarray


@dataclass
class Run:
    dir: Path
    status: str
    metrics: dict
    config: dict
    history: list[dict] = field(default_factory=list)
    predictions: Optional[Predictions] = None

    @property
    def model(self) -> str:
        return str(self.metrics.get("model") or self.config.get("model", {}).get("name", "?"))

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    @property
    def lr(self) -> Optional[float]:
        return self.config.get("trainer", {}).get("lr")

    @property
    def config_key(self) -> str:
        """Same for runs that differ only in seed (or in how they were logged)."""
        rest = {k: v for k, v in self.config.items() if k not in IGNORED_FOR_CONFIG}
        return hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()[:12]

    @property
    def overrides(self) -> list[str]:
        """The run's command-line overrides, minus seed, logger and hydra ones: what sets its configuration."""
        return [o for o in self.metrics.get("overrides", [])
                if not o.split("=")[0].lstrip("+~").startswith(("seed", "logger", "hydra"))]

    def label(self, shared: Sequence[str] = ()) -> str:
        """Readable name of the run's configuration: its overrides, less those in `shared`."""
        return ",".join(o for o in self.overrides if o not in shared) or self.model

    @property
    def data_key(self) -> str:
        data = self.config.get("data", {})
        return json.dumps({k: data.get(k) for k in TEST_ITEMS_KEYS}, sort_keys=True, default=str)

    def value(self, dotted: str) -> Optional[float]:
        node: Any = self.metrics
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return float(node) if isinstance(node, (int, float)) else None


def find_run_dirs(paths: list[str]) -> tuple[list[Path], list[str]]:
    """Run directories under the given sweep dirs, run dirs or globs, and a message for each path without any."""
    found: list[Path] = []
    problems: list[str] = []
    for path in paths:
        matches = sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]
        dirs: list[Path] = []
        for match in map(Path, matches):
            if (match / ".hydra").is_dir() or (match / METRICS).is_file():
                dirs.append(match)
            elif match.is_dir():
                dirs += sorted((p for p in match.iterdir() if (p / ".hydra").is_dir() or (p / METRICS).is_file()),
                               key=_job_order)
        if not dirs:
            problems.append(f"{path}: no runs here (a run dir holds .hydra/ and metrics.json; a sweep dir holds run dirs)")
        found += [d for d in dirs if d.resolve() not in {f.resolve() for f in found}]
    return found, problems


def _job_order(path: Path) -> tuple:
    head = path.name.split("_", 1)[0]
    return (int(head) if head.isdigit() else 1 << 30, path.name)


def load_run(run_dir: Path) -> tuple[Optional[Run], list[str]]:
    """The run, or None when its metrics.json is missing or corrupt; with a message per problem found."""
    metrics = read_json(run_dir / METRICS)
    if not isinstance(metrics, dict) or "status" not in metrics:
        what = "missing" if not (run_dir / METRICS).exists() else "not valid JSON or has no status"
        return None, [f"{run_dir / METRICS}: {what}; run skipped"]
    config_file = run_dir / ".hydra" / "config.yaml"
    config = OmegaConf.to_container(OmegaConf.load(config_file), resolve=False) if config_file.is_file() else {}
    run = Run(dir=run_dir, status=str(metrics["status"]), metrics=metrics, config=config)
    problems: list[str] = []
    if run.status == "completed":
        run.history = _read_history(run_dir / HISTORY)
        run.predictions, problem = _read_predictions(run_dir / PREDICTIONS, metrics)
        if problem:
            problems.append(problem)
    return run, problems


def _read_history(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                break
    return rows


def _read_predictions(path: Path, metrics: dict) -> tuple[Optional[Predictions], Optional[str]]:
    """The predictions, if they are what the run's metrics say they are; else None and why."""
    if not path.is_file():
        return None, f"{path}: missing; this run is compared by its accuracies only"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        columns = {k: np.array([float(r[k]) for r in rows]) for k in ("index", "label", "pred", "prob_pos")}
    except (KeyError, ValueError, TypeError) as err:
        return None, f"{path}: unreadable ({type(err).__name__}: {err}); expected columns index,label,pred,prob_pos"
    expected = metrics.get("data", {}).get("test")
    accuracy = float((columns["label"] == columns["pred"]).mean()) if rows else float("nan")
    if expected is not None and len(rows) != expected:
        return None, f"{path}: {len(rows)} rows but the run's test split has {expected} items; not used"
    recorded = metrics.get("test", {}).get("accuracy")
    if recorded is not None and abs(accuracy - recorded) > 1e-9:
        return None, f"{path}: accuracy {accuracy:.4f} does not match metrics.json ({recorded:.4f}); not used"
    return Predictions(index=columns["index"].astype(np.int64), label=columns["label"].astype(np.int64),
                       pred=columns["pred"].astype(np.int64), prob_pos=columns["prob_pos"]), None
