"""Reading finished runs back from their output directories, for the comparison. Only the files runs write
are read (metrics.json, history.jsonl, test_predictions.csv, .hydra/config.yaml): no torch, no model."""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import yaml
from omegaconf import OmegaConf

from bertcmp.outputs import HISTORY_FILE, METRICS_FILE, PREDICTIONS_FILE, is_held, read_class, read_json

# the keys of the data config that decide which items land in the test split
TEST_ITEMS_KEYS = ("name", "source", "config", "synthetic", "text_column", "text_pair_column", "label_column", "split",
                   "test_split", "split_seed", "valid_size", "test_size", "dedup", "num_examples")
_UNRECORDED = {"test_split": "test"}  # what runs of versions without a key computed with
NOT_COMPUTED = ("logger", "cache_dir")       # how a run is tracked and where it caches, not what it computes
NOT_CONFIGURATION = ("seed", *NOT_COMPUTED)  # runs that differ only in these are one configuration


def computation_key(config: dict) -> str:
    """Equal for two runs that compute the same thing (seed included): a run completed with the same key
    is skipped, and a resume state saved under another key is not used."""
    return _digest(config, NOT_COMPUTED)[:16]


def configuration_key(config: dict) -> str:
    """Equal for runs that differ only in seed (or in how they were tracked): one row of the comparison."""
    return _digest(config, NOT_CONFIGURATION)[:12]


def _digest(config: dict, leave_out: Sequence[str]) -> str:
    rest = {k: v for k, v in config.items() if k not in leave_out}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()


def is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


@dataclass
class Predictions:
    index: np.ndarray
    label: np.ndarray  # class ids
    pred: np.ndarray
    n_tokens: Optional[np.ndarray] = None  # each text's whole length (runs of bertcmp 0.1 did not write it)
    prob: Optional[np.ndarray] = None      # the probability the run gave its predicted class
    text: Optional[list[str]] = None       # the start of each text (runs of bertcmp 0.5 and older: None)


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
    def classes(self) -> list[str]:
        return recorded_classes(self.metrics)

    @property
    def hardware(self) -> Optional[dict]:
        """What its speeds were measured on (device_name, device_count, precision, shared_with; threads on a CPU);
        None for runs of bertcmp 0.5 and older."""
        value = self.metrics.get("hardware")
        return value if isinstance(value, dict) else None

    @property
    def max_length(self) -> Optional[int]:
        """The tokens the run's model read of each text (data.max_length, lowered to what the model reads)."""
        value = self.metrics.get("data", {}).get("max_length")
        return int(value) if isinstance(value, (int, float)) else None

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    @property
    def lr(self) -> Optional[float]:
        return self.config.get("trainer", {}).get("lr")

    @property
    def configuration_key(self) -> str:
        return configuration_key(self.config)

    @property
    def overrides(self) -> list[str]:
        """The run's command-line overrides, less seed, logger, cache and hydra ones: what sets its configuration."""
        return [o for o in self.metrics.get("overrides", [])
                if re.split(r"[./=]", o.lstrip("+~"))[0] not in (*NOT_CONFIGURATION, "hydra")]

    def label(self, shared: Sequence[str] = ()) -> str:
        """Readable name of the run's configuration: its overrides, less those in `shared`."""
        return ",".join(o for o in self.overrides if o not in shared) or self.model

    @property
    def data_key(self) -> str:
        """The run's task: equal for runs scored on the same test items."""
        return json.dumps(self.task, sort_keys=True, default=str)

    @property
    def task(self) -> dict:
        data = self.config.get("data", {})
        return {k: data.get(k, _UNRECORDED.get(k)) for k in TEST_ITEMS_KEYS}

    @property
    def pretrained(self) -> Optional[str]:
        """The checkpoint the run fine-tuned (a Hub id or a local directory); None for one built from scratch."""
        value = self.config.get("model", {}).get("pretrained")
        return None if value is None else str(value)

    @property
    def scratch(self) -> Optional[dict]:
        """The sizes of an encoder built from scratch (None for a pretrained one)."""
        return None if self.pretrained else self.config.get("model", {}).get("scratch")

    @property
    def encoder_key(self) -> str:
        """The encoder compared: the checkpoint, or the family and shape built from scratch."""
        what = {"family": self.model, "pretrained": self.pretrained, "scratch": self.scratch}
        return json.dumps(what, sort_keys=True, default=str)

    def value(self, dotted: str) -> Optional[float]:
        node: Any = self.metrics
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return float(node) if isinstance(node, (int, float)) else None


@dataclass
class Found:
    """What `load_runs` found under the paths it was given."""
    dirs: list[Path]             # every run dir, in the order found (a sweep's in job order)
    runs: list[Run]              # every run whose metrics.json could be read, whatever its status
    unreadable: dict[Path, str]  # run dir -> which file cannot be read and why (never started, killed, damaged)
    problems: list[str]          # one line per path or file that could not be used, naming it


def load_runs(paths: Sequence[str]) -> Found:
    """Read every run under the given sweep dirs, run dirs or globs, each once."""
    run_dirs, problems = find_run_dirs(paths)
    found = Found(dirs=run_dirs, runs=[], unreadable={}, problems=problems)
    for run_dir in run_dirs:
        metrics = read_json(run_dir / METRICS_FILE)
        if not isinstance(metrics, dict) or "status" not in metrics:
            found.unreadable[run_dir] = f"{METRICS_FILE} missing" if not (run_dir / METRICS_FILE).exists() \
                else f"{METRICS_FILE} is not valid JSON or has no status"
            continue
        try:
            run, problems = load_run(run_dir, metrics)
        except DamagedRun as err:
            found.unreadable[run_dir] = str(err)
            continue
        found.runs.append(run)
        found.problems += problems
    return found


class DamagedRun(Exception):
    """A completed run whose files cannot be compared: which file, and why."""


def find_run_dirs(paths: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Run directories under the given sweep dirs, run dirs or globs, and a message for each path without any."""
    found: list[Path] = []
    problems: list[str] = []
    for path in paths:
        matches = sorted(glob.glob(path)) if is_glob(path) else [path]
        dirs: list[Path] = []
        for match in map(Path, matches):
            if _is_run_dir(match):
                dirs.append(match)
            elif match.is_dir():
                dirs += sorted((p for p in match.iterdir() if _is_run_dir(p)), key=_job_order)
        if not dirs:
            problems.append(f"{path}: no runs here (a run dir holds .hydra/ and metrics.json; a sweep dir holds run dirs)")
        found += [d for d in dirs if d.resolve() not in {f.resolve() for f in found}]
    return found, problems


def _is_run_dir(path: Path) -> bool:
    return (path / ".hydra").is_dir() or (path / METRICS_FILE).is_file()


def _job_order(path: Path) -> tuple:
    head = path.name.split("_", 1)[0]
    return (int(head) if head.isdigit() else 1 << 30, path.name)


def load_run(run_dir: Path, metrics: dict) -> tuple[Run, list[str]]:
    """The run whose metrics.json holds `metrics`, and a message for each of its files that cannot be used."""
    config, problem = _read_config(run_dir / ".hydra" / "config.yaml")
    problems = [problem] if problem else []
    run = Run(dir=run_dir, status=str(metrics["status"]), metrics=metrics, config=config)
    if run.status == "running":
        held = is_held(run_dir)
        if held is False:  # its process is gone without a word
            run.status = "interrupted"
            run.metrics = {**metrics, "error": "its process ended without recording how (killed, out of memory, "
                                              "or a full disk); the same command resumes it"}
        elif held:
            run.metrics = {**metrics, "error": "a live process is running it now"}
    if run.status == "completed":
        missing = [key for key in ("valid.accuracy", "test.accuracy") if run.value(key) is None]
        if missing:
            raise DamagedRun(f"{METRICS_FILE} says completed but has no {' or '.join(missing)}")
        run.history = _read_history(run_dir / HISTORY_FILE)
        run.predictions, problem = _read_predictions(run_dir / PREDICTIONS_FILE, metrics)
        problems += [problem] if problem else []
    return run, problems


def _read_config(path: Path) -> tuple[dict, Optional[str]]:
    if not path.is_file():
        return {}, None
    try:
        config = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except (OSError, ValueError, yaml.YAMLError) as err:
        return {}, f"{path}: unreadable ({type(err).__name__}); the run is compared by its metrics.json alone"
    if not isinstance(config, dict):
        return {}, f"{path}: not a config; the run is compared by its metrics.json alone"
    return config, None


def _read_history(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise DamagedRun(f"{path.name} is not UTF-8 text ({err.reason}, byte {err.start})") from err
        for line in text.splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                break
    return rows


def recorded_classes(metrics: dict) -> list[str]:
    """A run's class names, from its metrics.json (runs of bertcmp 0.1 did not record them: those were binary)."""
    return list(metrics.get("classes") or ["0", "1"])


def _read_predictions(path: Path, metrics: dict) -> tuple[Optional[Predictions], Optional[str]]:
    """The predictions, if they are what the run's metrics say they are; else None and why."""
    if not path.is_file():
        return None, f"{path}: missing; this run is compared by its accuracies only"
    classes = recorded_classes(metrics)
    class_id = partial(read_class, classes=classes)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        index = np.array([int(r["index"]) for r in rows], dtype=np.int64)
        label = np.array([class_id(r["label"]) for r in rows], dtype=np.int64)
        pred = np.array([class_id(r["pred"]) for r in rows], dtype=np.int64)
    except (KeyError, ValueError, TypeError) as err:
        return None, (f"{path}: unreadable ({type(err).__name__}: {err}); expected columns index,label,pred with the "
                      f"classes of its metrics.json")
    expected = metrics.get("data", {}).get("test")
    accuracy = float((label == pred).mean()) if rows else float("nan")
    if expected is not None and len(rows) != expected:
        return None, f"{path}: {len(rows)} rows but the run's test split has {expected} items; not used"
    recorded = metrics.get("test", {}).get("accuracy")
    if recorded is not None and abs(accuracy - recorded) > 1e-9:
        return None, f"{path}: accuracy {accuracy:.4f} does not match metrics.json ({recorded:.4f}); not used"
    n_tokens = None
    if rows and "n_tokens" in rows[0]:
        try:
            n_tokens = np.array([int(r["n_tokens"]) for r in rows], dtype=np.int64)
        except (TypeError, ValueError) as err:
            return None, f"{path}: unreadable n_tokens ({type(err).__name__}: {err}); not used"
    text = [r["text"] for r in rows] if rows and "text" in rows[0] else None
    return Predictions(index=index, label=label, pred=pred, n_tokens=n_tokens,
                       prob=_predicted_prob(rows, pred, classes), text=text), None


def _predicted_prob(rows: list[dict], pred: np.ndarray, classes: Sequence[str]) -> Optional[np.ndarray]:
    """The probability each row gives its predicted class (prob_pos, or prob_<class>); None where unreadable."""
    try:
        if len(classes) == 2:
            positive = np.array([float(r["prob_pos"]) for r in rows])
            return np.where(pred == 1, positive, 1 - positive)
        return np.array([float(r[f"prob_{classes[p]}"]) for r, p in zip(rows, pred)])
    except (KeyError, TypeError, ValueError):
        return None
