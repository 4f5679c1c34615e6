"""Experiment tracking with Weights & Biases: one W&B run per Hydra job.

The API key is never read or stored here: W&B takes it from the user's environment (WANDB_API_KEY) or
from `wandb login`. `mode: auto` only asks whether such a key exists, and whether the W&B server answers, to choose
online or offline.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional, Sequence
from urllib.parse import urlparse

from omegaconf import DictConfig

from bertcmp.errors import TrackingError, summary
from bertcmp.network import answers

log = logging.getLogger(__name__)

SERVER_WAIT_SECONDS = 5.0  # how long logger.mode=auto waits for the W&B server before it goes offline


def has_wandb_credentials() -> bool:
    """True when W&B could authenticate: a key in the environment, or a `wandb login` entry in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(server_url()).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def sweep_group(sweep_dir: str | Path) -> str:
    """The W&B group of a sweep's runs and of its comparison: `<date>_<time>` of its directory."""
    return "_".join(Path(sweep_dir).parts[-2:])


class Choice(NamedTuple):
    mode: str               # online, offline or disabled
    fallback: bool = False  # online only because logger.mode=auto found credentials: offline if W&B fails


def choose_mode(mode: str, directory: Optional[Path] = None) -> Choice:
    """`auto`: the user's WANDB_MODE if set, else online with credentials and a server that answers, else offline
    (the run's files go to `directory`/wandb, for `wandb sync`). `online` (logger.mode or WANDB_MODE) with a
    server that does not answer is an error now, before any data is loaded, not after W&B's own 90 s."""
    asked = mode if mode != "auto" else os.environ.get("WANDB_MODE")
    if asked == "online" and not server_answers():
        raise TrackingError(f"logger.mode=online but the W&B server {server_url()} did not answer within "
                            f"{SERVER_WAIT_SECONDS:g} s; use logger.mode=offline (and `wandb sync` later) or "
                            "logger.mode=auto, which goes offline by itself")
    if asked:
        return Choice(asked)
    if not has_wandb_credentials():
        return Choice("offline")
    if server_answers():
        return Choice("online", fallback=True)
    later = f"upload it later with `wandb sync {directory}/wandb`" if directory else "the comparison stays local"
    log.warning("the W&B server %s did not answer within %g s: logging offline; %s", server_url(),
                SERVER_WAIT_SECONDS, later)
    return Choice("offline")


def import_wandb() -> Any:
    """wandb, imported where it is needed (it is slow to import and the rest of the package does not need it),
    with the WANDB_* variables set empty (`export WANDB_SILENT=`) taken as unset, as a shell user means them:
    wandb's settings reject an empty value (WANDB_SILENT='' fails every wandb.init, disabled mode included)."""
    for name in [n for n, value in os.environ.items() if n.startswith("WANDB_") and not value.strip()]:
        del os.environ[name]
    import wandb

    return wandb


def server_url() -> str:
    """The W&B server that wandb.init talks to: WANDB_BASE_URL, else the one `wandb login --host` saved, else
    W&B's default (which wandb 0.31 moved from api.wandb.ai to api.forge.coreweave.com)."""
    wandb = import_wandb()

    settings = wandb.Settings(settings_system=os.path.expanduser(
        os.path.join(os.environ.get("WANDB_CONFIG_DIR", "~/.config/wandb"), "settings")))
    settings.update_from_system_settings()
    settings.update_from_env_vars(dict(os.environ))
    return settings.base_url


def server_answers(url: Optional[str] = None, seconds: float = SERVER_WAIT_SECONDS) -> bool:
    """Whether the W&B server answers within `seconds`."""
    return answers(url or server_url(), seconds)


class Tracker:
    """What the task function logs: per-step train loss and learning rate, per-epoch validation metrics,
    test metrics in the run summary. Tracking never fails the training: after its first error (the server went
    away, the disk is full) the run goes on untracked, with one warning."""

    def __init__(self, run: Any):
        self.run = run
        self.run_id: str = run.id

    def log_step(self, step: int, loss: float, lr: float) -> None:
        self._call(lambda run: run.log({"train/loss": loss, "train/lr": lr}, step=step))

    def log_epoch(self, step: int, metrics: dict[str, float]) -> None:
        self._call(lambda run: run.log(metrics, step=step))

    def summarise(self, metrics: dict[str, Any]) -> None:
        self._call(lambda run: run.summary.update(metrics))

    def finish(self, exit_code: int = 0) -> None:
        run = self.run
        self._call(lambda run: run.finish(exit_code=exit_code))
        if run is not None and self.run is not None:
            if run.settings._offline:
                log.info("W&B run saved offline; upload it with `wandb sync %s`", run.settings.sync_dir)
            elif run.url:  # logger.mode=disabled: wandb's stand-in run has none
                log.info("W&B run: %s", run.url)
        self.run = None

    def _call(self, send: Callable[[Any], Any]) -> None:
        if self.run is None:
            return
        try:
            send(self.run)
        except Exception as err:
            log.warning("W&B stopped working (%s); training goes on without tracking", summary(err))
            self.run = None


def start_run(cfg: DictConfig, choice: Choice, config: dict, name: str, group: Optional[str], directory: Path,
              run_id: Optional[str] = None) -> Tracker:
    """Start the job's W&B run, writing its files under `directory` (the job's output dir); with `run_id`,
    go on with that earlier W&B run (a resumed training)."""
    wandb = import_wandb()

    def init(mode: str) -> Any:
        return wandb.init(project=cfg.project, entity=cfg.entity, group=cfg.group or group, tags=list(cfg.tags),
                          name=name, config=config, dir=str(directory), mode=mode, job_type="train",
                          id=run_id, resume="allow" if run_id else None,
                          reinit="finish_previous",  # a worker process reused by joblib may still hold a run
                          # W&B's own console lines (about 34 a run: its history and summary) stay out of a sweep's
                          # screen; Tracker.finish says the one that matters, where the run is
                          settings=wandb.Settings(silent=True))

    mode = choice.mode
    try:
        run = init(mode)
    except Exception as err:
        why = summary(err)
        if not choice.fallback:
            raise TrackingError(f"W&B could not start a run in {mode} mode ({why}); logger.mode=disabled trains "
                                "without it") from None
        log.warning("W&B could not start a run online (%s): logging offline; upload it later with "
                    "`wandb sync %s/wandb`", why, directory)
        mode = "offline"
        run = init(mode)
    run.define_metric("epoch")
    for prefix in ("valid/*", "epoch_seconds"):
        run.define_metric(prefix, step_metric="epoch")
    log.info("W&B run %r in %s mode (group %s)", name, mode, cfg.group or group)
    return Tracker(run)


def log_comparison(cfg: DictConfig, group: str, table: tuple[list[str], list[list]], conclusion: Optional[str],
                   files: Sequence[Path], recommendation: Optional[str] = None) -> None:
    """With W&B online, log a sweep's comparison as a run of the sweep's group: the table (column names and
    rows), the verdicts' conclusion, the recommendation (what to pick) and the PNGs among the report's `files`."""
    mode = choose_mode(str(cfg.mode)).mode
    if mode != "online":
        return
    wandb = import_wandb()

    columns, rows = table
    run = wandb.init(project=cfg.project, entity=cfg.entity, group=cfg.group or group, job_type="compare",
                     name="comparison", mode=mode, reinit="finish_previous")
    run.log({"comparison/summary": wandb.Table(columns=columns, data=rows),
             **{f"comparison/{p.stem}": wandb.Image(str(p)) for p in files if p.suffix == ".png"}})
    if conclusion:
        run.summary["conclusion"] = conclusion
    if recommendation:
        run.summary["recommendation"] = recommendation
    run.finish()
