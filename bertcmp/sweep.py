"""Sweep-level behaviour: how many jobs run at once, each job's share of the CPU, and the end-of-sweep
report that lists failed runs and makes the command exit non-zero when there are any."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from bertcmp import outputs
from bertcmp.devices import lease_dir
from bertcmp.runs import Found, Run, load_runs


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_n_jobs(jobs_per_gpu: int = 1) -> int:
    """Parallel jobs for hydra/launcher=joblib: GPUs x trainer.jobs_per_gpu; without GPUs, up to 4 sharing the
    cores."""
    import torch  # here, not at import: the resolver is only called when a joblib sweep is configured

    gpus = torch.cuda.device_count()
    return gpus * int(jobs_per_gpu) if gpus else max(1, min(4, cpu_cores()))


def cpu_threads_per_job(parallel_jobs: int) -> int:
    """Each of `parallel_jobs` jobs on this machine gets an equal share of the cores, at least one."""
    if parallel_jobs < 1:  # joblib's n_jobs=-1 means one job per core
        parallel_jobs = cpu_cores() + 1 + parallel_jobs
    return max(1, cpu_cores() // max(1, parallel_jobs))


class CpuTurns:
    """Jobs on this machine that each use all its cores take turns: one holds the machine (a lock file) for a
    training step or an evaluation batch, then lets the next one have it.

    Why: torch's OpenMP threads spin while they wait for each other, which is what makes a job alone fast. Two
    such jobs leave twice as many spinning threads as cores, and every parallel region of one job waits for a
    thread the other holds: measured 2.7x to over 4x slower each, where sharing should cost 2x. Fewer threads or
    a passive wait policy avoid that but slow a job that is alone (1.4x and 1.6x on the smoke sweep), and a
    thread count that followed the load would change the numbers (a sum over two threads is not bitwise the sum
    over one). Taking turns keeps a lone job's speed and its numbers, and two jobs each run at half speed."""

    @staticmethod
    def wanted() -> bool:
        """Unless BERTCMP_CPU_TURNS=0 (to measure without, or where every job has a machine of its own)."""
        return os.environ.get("BERTCMP_CPU_TURNS", "1") != "0"

    def __init__(self, path: Optional[Path] = None):
        self.fd = _lock_file(path or lease_dir() / "cpu.lock")

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        fcntl.flock(self.fd, fcntl.LOCK_EX)  # the operating system's lock: a killed job lets go of it
        try:
            yield
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)


@functools.lru_cache(maxsize=None)
def _lock_file(path: Path) -> int:
    """One open file per lock and process, however many jobs the process runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


class TakingTurns:
    """A DataLoader whose every batch is processed while this job holds the machine (CpuTurns): the lock is taken
    when the batch is handed over and given back when the next one is asked for, so the next batch is built
    while another job may compute."""

    def __init__(self, loader: Any, turns: CpuTurns):
        self.loader, self.turns = loader, turns

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:  # generator, batch_size, ...: the loader's own
        return getattr(self.loader, name)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            with self.turns.turn():
                yield batch


def launcher_parallelism(launcher: Any) -> int:
    """How many jobs the configured launcher runs at once on this machine (1 for the basic launcher)."""
    target = str(launcher.get("_target_", ""))
    if "joblib" in target:
        return int(launcher.get("n_jobs", 1))
    if "ray_launcher" in target:
        return ray_jobs_here()
    return 1


def ray_jobs_here() -> int:
    """Jobs Ray may run at once on this machine: its cores over the CPUs Ray gave this job (a Ray task's own)."""
    try:
        import ray

        given = ray.get_runtime_context().get_assigned_resources().get("CPU", 0)
    except Exception:  # not in a Ray task, or a Ray without that call: as the basic launcher
        return 1
    return max(1, int(cpu_cores() // given)) if given else 1


# the experiments whose data a command writes first, and that command
DATA_MADE_BY = {"benchmark_smoke": "python -m tests.hub_fixtures"}


def missing_data_folder(config: DictConfig) -> Optional[str]:
    """When every run reads data.source from one folder by its task's name (data.source: <folder>/${data.name}, as
    experiment=benchmark_smoke does) and that folder is not there: what to say, naming what would make it."""
    template = OmegaConf.to_container(config.data, resolve=False).get("source")
    if not isinstance(template, str) or not template.endswith("/${data.name}"):
        return None
    folder = Path(str(config.data.source)).parent
    if folder.expanduser().exists():
        return None
    problem = f"data.source={template}: {folder} does not exist, and every run of this sweep reads its data there"
    experiment = OmegaConf.select(config, "hydra.runtime.choices.experiment", default=None)
    if experiment in DATA_MADE_BY:
        problem += f"; experiment={experiment}'s copies are written by `{DATA_MADE_BY[experiment]} {folder}`"
    return problem


def record_lost_job(run_dir: Path, overrides: Sequence[str], reason: str) -> str:
    """A job its scheduler reports as over without a result (killed, cancelled, out of memory, past its requeues):
    unless the run recorded how it ended, record it as interrupted with the scheduler's reason, so that the sweep
    lists it, compares the rest and exits 1, and the same command resumes it. Gives the line to log."""
    record = outputs.read_json(run_dir / outputs.METRICS_FILE)
    if isinstance(record, dict) and record.get("status") not in (None, "running", "requeued"):
        return f"{run_dir.name}: {record['status']}: {record.get('error', 'no error recorded')}"
    if outputs.is_held(run_dir):  # a live process still runs it: its own record will tell
        return f"{run_dir.name}: {reason}; a live process still holds the run"
    error = f"{reason}; the same command resumes it (hydra.sweep.dir=<this sweep>)"
    run_dir.mkdir(parents=True, exist_ok=True)
    outputs.write_json(run_dir / outputs.METRICS_FILE, {**(record if isinstance(record, dict) else {}),
                                                         "status": "interrupted", "error": error,
                                                         "overrides": list(overrides)})
    return f"{run_dir.name}: interrupted: {error}"


def summarise_sweep(found: Found) -> tuple[list[str], list[str]]:
    """A line for each completed run and for each other one (failed, interrupted, never finished), in job order."""
    runs = {run.dir: run for run in found.runs}
    shared = [o for o in found.runs[0].overrides if all(o in r.overrides for r in found.runs[1:])] \
        if len(found.runs) > 1 else []
    done, problems = [], []
    for run_dir in found.dirs:
        run = runs.get(run_dir)
        if run is None:
            problems.append(f"{run_dir.name}: {found.unreadable[run_dir]} ("
                            "the job did not start, was killed, or its file is damaged)")
        elif run.status == "completed":
            metric = run.metrics.get("metric", "accuracy")
            done.append(f"{run_name(run, shared)}: valid {metric} {_score(run, f'valid.{metric}')}, "
                        f"test {metric} {_score(run, f'test.{metric}')}")
        else:
            problems.append(f"{run_name(run, shared)}: {run.status}: {run.metrics.get('error', 'no error recorded')}")
    return done, problems


def run_name(run: Run, shared: Sequence[str] = ()) -> str:
    """A run as the comparison names its configuration (its overrides, less those every run of the sweep has), with
    its seed, after its job number; its directory's name when it recorded no overrides. Hydra's directory names
    are cut at a length that can drop the model and the seed."""
    if not run.metrics.get("overrides"):
        return run.dir.name
    number = run.dir.name.split("_", 1)[0]
    name = ",".join([*(o for o in run.overrides if o not in shared), f"seed={run.seed}"])
    return f"{number} {name}" if number.isdigit() else name


def _score(run: Run, name: str) -> str:
    value = run.value(name)
    return "missing" if value is None else f"{value:.4f}"


class SweepReport(Callback):
    """Before a multirun's first job: a data folder that none of its runs could read stops it, in one line. At the
    end: the comparison report (bertcmp.compare) in <sweep>/comparison/, one line per run with the failures and
    their errors, and exit 1 if any run did not complete."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if problem := missing_data_folder(config):
            print(f"error: {problem}", file=sys.stderr, flush=True)
            sys.exit(2)  # SystemExit passes through Hydra's callback guard; no job has started

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        found = load_runs([str(sweep_dir)])  # read once: for the comparison and for the list of runs
        try:
            from bertcmp import compare  # here: matplotlib and scipy are needed only once, at the end
            from bertcmp.tracking import log_comparison, sweep_group

            report = compare.build_report([str(sweep_dir)], found=found)
            compare.print_report(report, list_not_completed=False)  # the list below names them
            if report.compared:
                log_comparison(config.logger, sweep_group(sweep_dir), compare.table_records(report.rows),
                               " ".join(report.sentences) or None, report.files, " ".join(report.recommendations))
        except Exception as err:  # the report is a bonus; the sweep's own result must still be told
            print(f"warning: the comparison report failed: {type(err).__name__}: {err}", flush=True)
        done, problems = summarise_sweep(found)
        lines = [f"sweep {sweep_dir}: {len(done)} completed, {len(problems)} not completed"]
        lines += [f"  ok      {line}" for line in done] + [f"  not ok  {line}" for line in problems]
        # print, not log: after the jobs, the logging setup is the last job's, whose file is not the place
        print("\n".join(lines), flush=True)
        if problems:
            sys.exit(1)  # SystemExit passes through Hydra's callback guard, which only swallows Exceptions
