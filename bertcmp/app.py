"""The task function: one fine-tuning run, the unit that a Hydra sweep repeats.

    python -m bertcmp -m experiment=smoke model=bert,modernbert

`main` is Hydra's entry point. `run_job` holds the failure policy: skip a run completed earlier, record
why a run failed, let a sweep's other runs go on. The recipe itself (bertcmp.recipe) is imported only once a
run starts: `--help`, `--cfg job` and a bad override answer without torch, transformers or datasets.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import bertcmp
from bertcmp import outputs
from bertcmp.config import register_configs
from bertcmp.errors import BertcmpError
from bertcmp.runs import computation_key
from bertcmp.sweep import launcher_parallelism
from bertcmp.tracking import sweep_group
from hydra_plugins.bertcmp_ray_launcher.ray_launcher import RayLauncher

log = logging.getLogger("bertcmp")

register_configs()
# Hydra finds launchers by scanning the hydra_plugins namespace, which an editable install (pip install -e) hides
# from that scan: hydra/launcher=ray's and slurm's launchers are registered here
Plugins.instance().register(RayLauncher)
try:  # hydra/launcher=slurm's, where the slurm extra is installed
    from hydra_plugins.bertcmp_submitit_launcher import submitit_launcher

    Plugins.instance().register(submitit_launcher.SlurmLauncher)
    Plugins.instance().register(submitit_launcher.LocalLauncher)
except ImportError:
    pass
# conf/hydra/launcher/ray.yaml is named as Ray users expect; hydra-ray-launcher's own node has that name too, which
# Hydra only warns about (the file wins, and matches that node's schema)
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/ray' is validated against ConfigStore schema")
# an absolute path: found the same from a source checkout, an editable install or a wheel, whatever the cwd
CONFIG_DIR = str(resources.files("bertcmp.conf"))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> Optional[float]:
    """Run one job; return its best validation score on data.metric (what a Hydra sweeper would optimise)."""
    return run_job(cfg, Job.from_hydra(cfg))


# ---------------------------------------------------------------------------------------------- the job


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain containers (enums as their strings), as W&B and the run's key see it."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


@dataclass
class Job:
    """This Hydra job: where it writes, what it is called, and its metrics.json, rewritten whole at every
    status change."""
    dir: Path
    name: str                  # the W&B run's name: the job's overrides, or the model family
    group: Optional[str]       # the W&B group: the sweep; None for a single run
    num: int                   # the job's number in its sweep (0 for a single run)
    overrides: list[str]
    model: str
    computation_key: str       # what the run computes (bertcmp.runs.computation_key)
    multirun: bool = False
    parallel_jobs: int = 1     # jobs the launcher runs at once on this machine
    requeues: int = 0          # times the cluster stopped and requeued this run (time limit, preemption)
    started: float = field(default_factory=time.time)

    @classmethod
    def create(cls, cfg: DictConfig, directory: str | Path, overrides: Sequence[str] = (), name: Optional[str] = None,
               group: Optional[str] = None, num: int = 0, multirun: bool = False, parallel_jobs: int = 1) -> "Job":
        """A job writing into `directory`; a single run unless the sweep's facts are given."""
        model = str(cfg.model.name)
        return cls(dir=Path(directory), name=name or model, group=group, num=num, overrides=list(overrides),
                   model=model, computation_key=computation_key(plain_config(cfg)), multirun=multirun,
                   parallel_jobs=parallel_jobs)

    @classmethod
    def from_hydra(cls, cfg: DictConfig) -> "Job":
        hc = HydraConfig.get()
        if hc.mode != RunMode.MULTIRUN:
            return cls.create(cfg, hc.runtime.output_dir, hc.overrides.task, hc.job.override_dirname)
        return cls.create(cfg, hc.runtime.output_dir, hc.overrides.task, hc.job.override_dirname,
                          group=sweep_group(hc.sweep.dir), num=hc.job.num, multirun=True,
                          parallel_jobs=launcher_parallelism(hc.launcher))

    def named_by(self, family: str) -> None:
        """Name the run by its encoder's family once it is known (model=auto reads it from the model's config)."""
        if self.name == self.model:
            self.name = family
        self.model = family

    def tracked_config(self, cfg: DictConfig) -> dict[str, Any]:
        config = plain_config(cfg)
        # the family too: model=auto runs are told apart by it in W&B's tables and filters
        config["run"] = {"dir": str(self.dir), "overrides": self.overrides, "job_num": self.num, "model": self.model}
        return config

    def record_end(self, status: str, error: str) -> None:
        """Record how the run ended, where the disk still allows it (the run's own error says why if not)."""
        try:
            self.write_status(status, error=error)
        except BertcmpError as err:
            log.warning("%s could not be recorded: %s", status, err)

    def write_status(self, status: str, **fields: Any) -> None:
        now = time.time()
        outputs.write_json(self.dir / outputs.METRICS_FILE, {
            "status": status, "model": self.model, **fields, "overrides": self.overrides,
            "computation_key": self.computation_key, "requeues": self.requeues,
            "wall_seconds": now - self.started,
            "started_at": datetime.fromtimestamp(self.started, timezone.utc).isoformat(timespec="seconds"),
            "updated_at": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds"),
            "versions": {"bertcmp": bertcmp.__version__, "torch": version("torch"),
                         "transformers": version("transformers"), "python": sys.version.split()[0]},
        })


def run_job(cfg: DictConfig, job: Job) -> Optional[float]:
    """The failure policy around the recipe. The run's directory belongs to one live process: a run that another
    process is running is left to it. A run completed earlier with the same computation is skipped. In a sweep, a
    failing job records why in its metrics.json and returns NaN, so its siblings go on; the end-of-sweep report
    (bertcmp.sweep.SweepReport) lists the failures and exits non-zero."""
    with outputs.holding(job.dir) as holder:
        if holder is not None:
            log.log(logging.WARNING if job.multirun else logging.ERROR, "skipping %s: %s is running it (another "
                    "sweep in the same directory); this one leaves it be", job.dir, holder)
            if job.multirun:
                return float("nan")  # the sweep's other runs go on
            raise SystemExit(1)
        if leftovers := outputs.remove_leftovers(job.dir):
            log.info("removed what an interrupted run left in %s: %s", job.dir, ", ".join(sorted(leftovers)))
        return _run_held(cfg, job)


def _run_held(cfg: DictConfig, job: Job) -> Optional[float]:
    previous = outputs.read_json(job.dir / outputs.METRICS_FILE) or {}
    if previous.get("status") == "completed" and previous.get("computation_key") == job.computation_key:
        outputs.clear_resume_state(job.dir)  # left when the process died between recording completion and this
        metric = previous.get("metric", "accuracy")  # runs of bertcmp 0.4 and older selected by accuracy
        log.info("skipping %s: completed earlier with this config (valid %s %.4f)", job.dir.name, metric,
                 previous["valid"][metric])
        return previous["valid"][metric]
    if previous.get("computation_key") == job.computation_key:
        job.requeues = previous.get("requeues", 0)
    if previous.get("status") == "running":  # yet nobody holds the directory: its process is gone
        log.warning("the earlier run in %s stopped without recording why (killed, or its disk filled up): "
                    "taken as interrupted", job.dir)
    elif previous.get("status") == "requeued":
        log.info("the cluster requeued this run (%d time(s) so far): resuming it", job.requeues)
    job.write_status("running")
    from bertcmp.recipe import train_and_test  # torch and transformers: only for a run that trains

    try:
        with sigterm_as_interrupt():
            return train_and_test(cfg, job)
    except SystemExit as stop:
        if _requeued_by_submitit(stop):  # its handler of the time-limit / preemption signal, once it requeued us
            job.requeues += 1
            job.record_end("requeued", error="stopped by the cluster (time limit or preemption) and requeued; "
                                             "the requeued job resumes from the last validation")
            log.warning("stopped by the cluster (time limit or preemption) and requeued (%d time(s)): the requeued "
                        "job resumes from the last validation", job.requeues)
        raise
    except KeyboardInterrupt:
        job.record_end("interrupted", error="interrupted (Ctrl-C or SIGTERM); run again to resume")
        log.warning("interrupted; the same command resumes from the last finished epoch")
        raise SystemExit(130) from None  # the shell's code for Ctrl-C; the sweep stops too
    except BertcmpError as err:  # the user's input or a full disk: one line that says what is wrong, no traceback
        job.record_end("failed", error=str(err))
        log.error("%s", err)
        failure: BaseException = SystemExit(1)
    except Exception as err:  # a bug or the machine (out of memory, ...): the traceback goes to the job log
        if _not_requeued_by_submitit(err):  # the signal came, but the run may not be requeued again
            job.record_end("interrupted", error=f"{err} The same command resumes it (hydra.sweep.dir=<this sweep>).")
            log.error("interrupted: %s Raise hydra.launcher.max_num_timeout, or run the same command again to "
                      "resume.", err)
            raise  # submitit records the job as over
        job.record_end("failed", error=f"{type(err).__name__}: {err}")
        log.exception("run failed")
        failure = err
    if job.multirun:
        return float("nan")
    raise failure


def _requeued_by_submitit(stop: SystemExit) -> bool:
    """Whether submitit's signal handler raised this exit after requeueing the job (SLURM's time limit or a
    preemption; submitit's local executor too)."""
    frames = traceback.extract_tb(stop.__traceback__)
    return bool(frames) and "submitit" in Path(frames[-1].filename).parts


def _not_requeued_by_submitit(err: Exception) -> bool:
    """submitit's "Job not requeued because: timed-out too many times." (hydra.launcher.max_num_timeout)."""
    return type(err).__name__ == "UncompletedJobError" and type(err).__module__.startswith("submitit")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (kill, SLURM's time limit) like Ctrl-C, so the run is recorded as interrupted."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    main()
