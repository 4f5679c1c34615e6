"""Experiment tracking with Weights & Biases: one W&B run per Hydra job.

The API key is never read or stored here: W&B takes it from the user's environment (WANDB_API_KEY) or
from `wandb login`. `mode: auto` only asks whether such a key exists, to choose online or offline.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any, Optional, Sequence
from urllib.parse import urlparse

from omegaconf import DictConfig

log = logging.getLogger(__name__)


def has_wandb_credentials() -> bool:
    """True when W&B could authenticate: a key in the environment, or a `wandb login` entry in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def sweep_group(sweep_dir: str | Path) -> str:
    """The W&B group of a sweep's runs and of its comparison: `<date>_<time>` of its directory."""
    return "_".join(Path(sweep_dir).parts[-2:])


def resolve_mode(mode: str) -> str:
    """`auto`: the user's WANDB_MODE if set, else online with credentials and offline without."""
    if mode != "auto":
        return mode
    return os.environ.get("WANDB_MODE") or ("online" if has_wandb_credentials() else "offline")


class Tracker:
    """What the task function logs: per-step train loss and learning rate, per-epoch validation metrics,
    test metrics in the run summary."""

    def __init__(self, run: Any):
        self.run = run

    @property
    def run_id(self) -> str:
        return self.run.id

    def log_step(self, step: int, loss: float, lr: float) -> None:
        self.run.log({"train/loss": loss, "train/lr": lr}, step=step)

    def log_epoch(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(metrics, step=step)

    def summarise(self, metrics: dict[str, Any]) -> None:
        for key, value in metrics.items():
            self.run.summary[key] = value

    def finish(self, exit_code: int = 0) -> None:
        self.run.finish(exit_code=exit_code)


def start_run(cfg: DictConfig, config: dict, name: str, group: Optional[str], directory: Path,
              run_id: Optional[str] = None) -> Tracker:
    """Start the job's W&B run, writing its files under `directory` (the job's output dir); with `run_id`,
    go on with that earlier W&B run (a resumed training)."""
    import wandb  # imported here: it is slow to import and the rest of the package does not need it

    mode = resolve_mode(str(cfg.mode))
    run = wandb.init(project=cfg.project, entity=cfg.entity, group=cfg.group or group, tags=list(cfg.tags),
                     name=name, config=config, dir=str(directory), mode=mode, job_type="train",
                     id=run_id, resume="allow" if run_id else None,
                     reinit="finish_previous")  # a worker process reused by joblib may still hold a run
    run.define_metric("epoch")
    for prefix in ("valid/*", "epoch_seconds"):
        run.define_metric(prefix, step_metric="epoch")
    log.info("W&B run %r in %s mode (group %s)", name, mode, cfg.group or group)
    return Tracker(run)


def log_comparison(cfg: DictConfig, group: str, table: tuple[list[str], list[list]], conclusion: Optional[str],
                   files: Sequence[Path]) -> None:
    """With W&B online, log a sweep's comparison as a run of the sweep's group: the table (column names and
    rows), the one-sentence conclusion and the PNGs among the report's `files`."""
    mode = resolve_mode(str(cfg.mode))
    if mode != "online":
        return
    import wandb

    columns, rows = table
    run = wandb.init(project=cfg.project, entity=cfg.entity, group=cfg.group or group, job_type="compare",
                     name="comparison", mode=mode, reinit="finish_previous")
    run.log({"comparison/summary": wandb.Table(columns=columns, data=rows),
             **{f"comparison/{p.stem}": wandb.Image(str(p)) for p in files if p.suffix == ".png"}})
    if conclusion:
        run.summary["conclusion"] = conclusion
    run.finish()
