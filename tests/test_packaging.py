"""Packaging: a wheel built from this checkout installs every config file (slow: it builds a wheel)."""

import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def test_the_wheel_holds_every_config_file(tmp_path):
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    for name in ("bertcmp", "conf", "hydra_plugins"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"),
                            str(source)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = (tmp_path / "dist").glob("bertcmp-*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted(p.relative_to(REPO / "conf").as_posix() for p in (REPO / "conf").rglob("*.yaml"))
    assert "config.yaml" in configs and "model/bert.yaml" in configs
    assert [c for c in configs if f"bertcmp/conf/{c}" not in inside] == []
    assert "bertcmp/conf/__init__.py" in inside and "bertcmp/app.py" in inside
    assert "hydra_plugins/bertcmp_ray_launcher/ray_launcher.py" in inside  # hydra/launcher=ray; bertcmp.app imports it
    assert "bertcmp/compare/__main__.py" in inside and "bertcmp/compare/budget.py" in inside  # subpackages too
