"""The GPU benchmark is run on machines these tests never see: its CPU mode keeps it from rotting."""

import math
import subprocess
import sys
import time

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


def test_peak_flops_match_the_gpus_exact_name():
    from bench.gpu import PEAK_BF16, peak_flops

    assert peak_flops(None, "NVIDIA L4") == 121e12
    assert peak_flops(None, "NVIDIA L40S") == 362e12 and peak_flops(None, "NVIDIA L40") == 181e12  # not the L4's
    assert peak_flops(None, "NVIDIA H200 NVL") == 835e12 and peak_flops(None, "NVIDIA H200") == 989e12
    assert peak_flops(None, "NVIDIA A10G") != peak_flops(None, "NVIDIA A10")
    assert math.isnan(peak_flops(None, "NVIDIA RTX 6000 Ada Generation"))  # unlisted: --peak-tflops
    assert peak_flops(400, "NVIDIA L4") == 400e12  # --peak-tflops wins
    for name in ("H100 80GB HBM3", "H100 PCIe", "H100 NVL", "A100-SXM4-40GB", "A100-SXM4-80GB", "A10"):
        assert f"NVIDIA {name}" in PEAK_BF16


def test_training_flops_count_attention():
    from bench.gpu import train_flops_per_token

    # BERT-base at 128 tokens: 85M non-embedding parameters, and attention's 12 x 12 layers x 128 x 768 per token
    assert train_flops_per_token(85_000_000, 12, 128, 768) == 6 * 85_000_000 + 14_155_776
    assert 0.02 < 14_155_776 / (6 * 85_000_000) < 0.04  # about 3 % at 128 tokens
    assert 0.10 < train_flops_per_token(0, 12, 512, 768) / (6 * 85_000_000) < 0.12  # about 11 % at 512


@pytest.mark.slow  # two processes importing the benchmark (torch) meet at a barrier
def test_sharing_jobs_start_their_timed_part_together(tmp_path):
    """The first job waits at the barrier until the second one gets there."""
    from bench.gpu import shared_tokens_per_s

    wait = "import sys, json; from bench.gpu import wait_for_all; print(wait_for_all(sys.argv[1], 2))"
    first = subprocess.Popen([sys.executable, "-c", wait, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    while not list(tmp_path.glob("ready.*")):
        assert first.poll() is None
        time.sleep(0.01)  # a core left to the job starting up
    second = subprocess.run([sys.executable, "-c", wait, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    released = float(first.communicate(timeout=120)[0])
    arrived = max(p.stat().st_mtime for p in tmp_path.glob("ready.*"))
    assert second.returncode == 0 and released >= arrived
    jobs = [{"tokens": 100, "timed_start": 10.0, "timed_end": 12.0}, {"tokens": 100, "timed_start": 10.5,
                                                                      "timed_end": 14.0}]
    assert shared_tokens_per_s(jobs) == 200 / 4.0  # all tokens over the first start to the last end
