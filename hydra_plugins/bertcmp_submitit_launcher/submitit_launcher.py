"""hydra/launcher=slurm (and submitit_local's code path): hydra-submitit-launcher's launchers, with a job that ends
without a result taken as one not-ok run of the sweep instead of the end of it.

Upstream, `launch` ends with `[j.results()[0] for j in jobs]`: one job killed, cancelled, out of memory or past its
requeues raises submitit's error there, and Hydra ends the whole sweep with its traceback, before the sweep's list
of runs and its comparison. Here each job's error is caught: the run is recorded as interrupted with the
scheduler's reason (bertcmp.sweep.record_lost_job), unless it recorded how it ended itself, and the sweep goes on
to its report, which lists it, compares the rest and exits 1. `launch` is upstream's (hydra-submitit-launcher 1.2),
less its last line, which no hook reaches.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, List, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher import submitit_launcher as upstream
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf, open_dict

log = logging.getLogger(__name__)


def scheduler_reason(err: Exception, job: Any) -> str:
    """One line for why a job gave no result: submitit's state for a job that ended without one (killed, cancelled,
    timed out), else the last line of the job's traceback; with the job's log to read."""
    text = str(err)
    if state := re.search(r"\(state: ([A-Z_]+)", text):
        return f"its job {job.job_id} ended without a result (scheduler state {state.group(1)}; " \
               f"log: {job.paths.stderr})"
    lines = [line.strip() for line in text.splitlines() if line.strip() and not set(line.strip()) <= {"-"}]
    return f"its job {job.job_id} failed: {lines[-1] if lines else type(err).__name__} (log: {job.paths.stderr})"


class BaseSubmititLauncher(upstream.BaseSubmititLauncher):

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None and self.hydra_context is not None
        assert len(job_overrides) > 0
        params = self.params
        init_params = {"folder": self.params["submitit_folder"]}
        specific_init_keys = {"max_num_timeout"}
        init_params.update(**{f"{self._EXECUTOR}_{x}": y for x, y in params.items() if x in specific_init_keys})
        init_keys = specific_init_keys | {"submitit_folder"}
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init_params)
        baseparams = set(OmegaConf.structured(BaseQueueConf).keys())
        params = {x if x in baseparams else f"{self._EXECUTOR}_{x}": y for x, y in params.items()
                  if x not in init_keys}
        executor.update_parameters(**params)

        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {self.config.hydra.sweep.dir}")
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))

        job_params: List[Any] = []
        for idx, overrides in enumerate(job_overrides, initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))

        jobs = executor.map_array(self, *zip(*job_params))
        return [self._result(job, list(overrides), idx)
                for idx, (job, overrides) in enumerate(zip(jobs, job_overrides), initial_job_idx)]

    def _result(self, job: Any, overrides: list[str], idx: int) -> JobReturn:
        """The job's own return; for a job without one, a NaN return (as a run that failed inside a sweep gives)
        after its run is recorded as not ok."""
        try:
            return job.results()[0]
        except Exception as err:  # submitit's UncompletedJobError, FailedJobError: whatever ended the job
            from bertcmp.sweep import record_lost_job

            line = record_lost_job(self._run_dir(overrides, idx), overrides, scheduler_reason(err, job))
            log.error("#%d %s", idx, line)
            return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=float("nan"))

    def _run_dir(self, overrides: list[str], idx: int) -> Path:
        """The job's run directory, composed as the job composes it (hydra.sweep.dir / hydra.sweep.subdir)."""
        assert self.config is not None and self.hydra_context is not None
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(sweep_config):
            sweep_config.hydra.job.num = idx
        return Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)


class LocalLauncher(BaseSubmititLauncher):
    _EXECUTOR = "local"


class SlurmLauncher(BaseSubmititLauncher):
    _EXECUTOR = "slurm"
