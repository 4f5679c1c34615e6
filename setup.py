"""What pyproject.toml cannot say: conf/ stays at the top of the repository (where Hydra users look for it)
and installs as the package bertcmp.conf, with every config group in it found here, so a new group can
never be missing from a wheel. Everything else is in pyproject.toml."""

from setuptools import find_namespace_packages, find_packages, setup

CONFIG_GROUPS = find_namespace_packages(where="conf", exclude=["__pycache__", "*.__pycache__"])

# hydra_plugins.bertcmp_*_launcher: Hydra takes launchers (hydra/launcher=ray, slurm) only from that namespace
setup(packages=[*find_packages(include=["bertcmp", "bertcmp.*"]), "hydra_plugins.bertcmp_ray_launcher",
                "hydra_plugins.bertcmp_submitit_launcher", "bertcmp.conf",
                *(f"bertcmp.conf.{group}" for group in CONFIG_GROUPS)],
      package_dir={"bertcmp.conf": "conf"})
