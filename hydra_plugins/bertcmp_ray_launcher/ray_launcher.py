"""hydra/launcher=ray: a sweep's jobs as Ray tasks, on a local Ray or an existing cluster (cloud VMs, KubeRay).

hydra-ray-launcher's own launcher, with what a sweep of trainings needs around it:
- it always passes `object_store_memory` to ray.init, which Ray refuses when joining a cluster: only a local
  Ray gets it here;
- without resources in the remote options every task sees every GPU: each job asks for 1 / trainer.jobs_per_gpu
  of a GPU where the cluster has GPUs, else for its share of the CPUs (as the joblib preset: up to 4 jobs at
  once), so Ray places jobs where the GPU lease would; the lease still guards each GPU against processes
  outside Ray.
Options given in hydra.launcher.ray.remote win over these.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from typing import Optional

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

LOCAL_OBJECT_STORE = 78_643_200  # what hydra-ray-launcher gives a local Ray (75 MiB): enough for job returns


def ray_init_options(init: dict[str, Any]) -> dict[str, Any]:
    """ray.init's options: a local Ray (no address) gets a small object store; joining a cluster, none."""
    options = {k: v for k, v in init.items() if v is not None or k == "address"}
    if init.get("address"):
        options.pop("object_store_memory", None)
    else:
        options.setdefault("object_store_memory", LOCAL_OBJECT_STORE)
    return options


def job_resources(cluster: dict[str, float], jobs_per_gpu: int) -> dict[str, float]:
    """What each job asks Ray for: where the cluster has GPUs, a 1 / jobs_per_gpu share of one and as large a
    share of the CPUs; else an equal share of the CPUs among up to 4 jobs at once (as hydra/launcher=joblib on a
    CPU machine)."""
    cpus, gpus = int(cluster.get("CPU", 1)), int(cluster.get("GPU", 0))
    if gpus >= 1:
        return {"num_gpus": 1 / jobs_per_gpu, "num_cpus": max(1, cpus // (gpus * jobs_per_gpu))}
    return {"num_cpus": max(1, cpus // max(1, min(4, cpus)))}


class RayLauncher(Launcher):
    """Found by Hydra's plugin scan on every start: it imports Ray only when a sweep launches with it."""

    def __init__(self, ray: DictConfig) -> None:
        self.ray_cfg = ray
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None
        self.config: Optional[DictConfig] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        try:
            import ray
            from hydra_plugins.hydra_ray_launcher._launcher_util import launch_job_on_ray
        except ImportError as err:
            raise SystemExit(f"hydra/launcher=ray needs Ray and hydra-ray-launcher: pip install -e \".[ray]\" "
                             f"({err})") from None

        setup_globals()
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        if not ray.is_initialized():
            ray.init(**ray_init_options(OmegaConf.to_container(self.ray_cfg.init, resolve=True)))
        remote = {**job_resources(ray.cluster_resources(), int(self.config.trainer.jobs_per_gpu)),
                  **OmegaConf.to_container(self.ray_cfg.remote, resolve=True)}
        log.info("Ray: %d jobs, each with %s (cluster: %s)", len(job_overrides),
                 ", ".join(f"{k}={v:g}" for k, v in remote.items() if k.startswith("num_")),
                 ", ".join(f"{k} {v:g}" for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")))
        runs = []
        for idx, overrides in enumerate(job_overrides, initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = f"job_id_for_{idx}"  # the scheduler's id, where there is one
                sweep_config.hydra.job.num = idx
            runs.append(launch_job_on_ray(self.hydra_context, OmegaConf.create(remote), sweep_config,
                                          self.task_function, Singleton.get_state()))
        return [ray.get(run) for run in runs]
