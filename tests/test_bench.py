"""The GPU benchmark is run on machines these tests never see: its CPU mode keeps it from rotting."""

import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow
def test_gpu_benchmark_runs_through_the_real_path_on_a_cpu():
    result = subprocess.run([sys.executable, "-m", "bench.gpu", "--tiny", "--no-compile"], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines()
            if line.startswith(("bert ", "modernbert ")) and "sharing" not in line]
    assert [(r[0], r[1]) for r in rows] == [("bert", "128"), ("modernbert", "128"), ("bert", "512"),
                                            ("modernbert", "512")]
    # examples/s (printed to 0.1) and tokens/s (to 1): every batch is full, so tokens/s = examples/s x length
    assert all(float(r[4]) > 0 and abs(float(r[5]) - float(r[4]) * int(r[1])) <= 0.05 * int(r[1]) + 0.5
               for r in rows)
    shared = [line.split() for line in result.stdout.splitlines() if "2 jobs sharing" in line]
    assert [r[0] for r in shared] == ["bert", "modernbert"] and all(float(r[3]) > 0 and float(r[8]) > 0 for r in shared)
