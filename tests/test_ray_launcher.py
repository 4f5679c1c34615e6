"""hydra/launcher=ray (hydra_plugins/bertcmp_ray_launcher): what each job asks Ray for, and how Ray starts."""

import json

import pytest

from conftest import compose_config, run_cli
from hydra_plugins.bertcmp_ray_launcher.ray_launcher import LOCAL_OBJECT_STORE, job_resources, ray_init_options


def test_a_local_ray_gets_a_small_object_store_and_a_cluster_none():
    """hydra-ray-launcher always passes object_store_memory, which Ray refuses when joining a cluster."""
    assert ray_init_options({"address": None}) == {"address": None, "object_store_memory": LOCAL_OBJECT_STORE}
    assert ray_init_options({"address": "auto", "object_store_memory": 10**9}) == {"address": "auto"}
    assert ray_init_options({"address": "ray://head:10001"}) == {"address": "ray://head:10001"}


@pytest.mark.parametrize("cluster, jobs_per_gpu, asked", [
    ({"CPU": 2}, 1, {"num_cpus": 1}),                           # this machine: 2 jobs at once
    ({"CPU": 16}, 1, {"num_cpus": 4}),                          # 4 jobs at once, as joblib
    ({"CPU": 32, "GPU": 8}, 1, {"num_gpus": 1, "num_cpus": 4}),  # a GPU each: jobs never share one by accident
    ({"CPU": 32, "GPU": 8}, 2, {"num_gpus": 0.5, "num_cpus": 2}),
])
def test_each_job_asks_for_its_share(cluster, jobs_per_gpu, asked):
    assert job_resources(cluster, jobs_per_gpu) == asked


def test_the_preset_names_the_launcher_and_a_local_ray():
    launcher = compose_config("hydra/launcher=ray", hydra=True).hydra.launcher
    assert launcher._target_ == "hydra_plugins.bertcmp_ray_launcher.ray_launcher.RayLauncher"
    assert launcher.ray.init.address is None


@pytest.mark.slow
def test_the_smoke_sweep_on_a_local_ray(tmp_path):
    """Two jobs at once on a local Ray with 2 CPUs; the end-of-sweep list and comparison as with joblib."""
    sweep = tmp_path / "sweep"
    result = run_cli("-m", "experiment=smoke", "model=bert,modernbert", "data.num_examples=600", "trainer.epochs=1",
                     "hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2", "logger.mode=disabled",
                     f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    printed = result.stdout + result.stderr
    assert "Ray: 2 jobs, each with num_cpus=1 (cluster: CPU 2)" in printed
    assert "sweep " in printed and "2 completed, 0 not completed" in printed and "=== " not in printed
    assert "BERT" in printed and "ModernBERT" in printed  # the comparison
    runs = sorted(p for p in sweep.iterdir() if (p / "metrics.json").is_file())
    assert [json.loads((r / "metrics.json").read_text())["status"] for r in runs] == ["completed"] * 2
