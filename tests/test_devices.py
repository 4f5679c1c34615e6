"""GPU leases: concurrent jobs never share a GPU while one is free, a killed job's lease is free again, and
trainer.device=auto leases one. GPUs are simulated: leases are lock files named after them."""

import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from bertcmp.devices import job_device, lease_gpu, resolve_device
from bertcmp.errors import ConfigError

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from bertcmp.devices import lease_gpu
    directory, hold, log = Path(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
    with lease_gpu(["g0", "g1", "g2"], jobs_per_gpu=int(sys.argv[4]), directory=directory, poll_seconds=0.05) as gpu:
        start = time.time()
        print("held", gpu, flush=True)
        time.sleep(hold)
        with open(log, "a") as f:
            f.write(f"{gpu} {start} {time.time()}\\n")
""")


def holders(tmp_path, count: int, hold: float, jobs_per_gpu: int = 1) -> list[tuple[int, float, float]]:
    """`count` processes started together, each leasing one of three GPUs for `hold` seconds."""
    log = tmp_path / "leases.txt"
    procs = [subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "leases"), str(hold), str(log),
                               str(jobs_per_gpu)], stdout=subprocess.PIPE, text=True) for _ in range(count)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    return [(int(g), float(s), float(e)) for g, s, e in (line.split() for line in log.read_text().splitlines())]


def overlap(a: tuple, b: tuple) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def most_at_once(leases: list[tuple]) -> int:
    return max(sum(s <= start < e for _, s, e in leases) for _, start, _ in leases)


@pytest.mark.slow  # processes that wait on each other
def test_concurrent_jobs_never_share_a_gpu(tmp_path):
    leases = holders(tmp_path, count=5, hold=1.5)
    assert len(leases) == 5
    for i, a in enumerate(leases):
        for b in leases[i + 1:]:
            assert not (a[0] == b[0] and overlap(a, b)), f"two jobs on GPU {a[0]} at once"
    # three ran at once, one on each GPU; the other two waited for one to be free
    assert most_at_once(leases) == 3


@pytest.mark.slow  # processes that wait on each other
def test_jobs_per_gpu_fills_every_gpu_before_sharing(tmp_path):
    leases = holders(tmp_path, count=6, hold=2.0, jobs_per_gpu=2)
    assert sorted(g for g, _, _ in leases) == [0, 0, 1, 1, 2, 2]
    assert most_at_once(leases) == 6  # all six at once, two per GPU


def test_a_killed_jobs_lease_is_free_again(tmp_path):
    from filelock import FileLock, Timeout

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "leases"), "600",
                               str(tmp_path / "log"), "1"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().split() == ["held", "0"]
    with pytest.raises(Timeout):  # held by a live job
        FileLock(str(tmp_path / "leases" / "g0.slot0.lock")).acquire(timeout=0)
    holder.kill()  # SIGKILL: no finally, no clean-up
    holder.wait()
    started = time.monotonic()
    with lease_gpu(["g0"], directory=tmp_path / "leases", poll_seconds=0.05) as gpu:
        assert gpu == 0 and time.monotonic() - started < 1
    assert (tmp_path / "leases" / "g0.slot0.lock").exists()  # the file stays; its lock went with the process


def test_auto_leases_a_gpu_and_explicit_devices_are_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("BERTCMP_LEASE_DIR", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)  # the same assertions on any machine
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr("bertcmp.devices.gpu_names", lambda: ["g0", "g1", "g2"])
    current = []  # the job's GPU becomes the process's current one
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: current.append(torch.device(device).index))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda fraction, device=None: None)
    with job_device("auto", job_num=4) as first:
        assert first == torch.device("cuda:1") and current == [1]  # job 4 looks first at GPU 4 mod 3
        with job_device("auto", job_num=4) as second:  # another job while the first runs: not GPU 1
            assert second == torch.device("cuda:2") and current == [1, 2]
    with job_device("auto", job_num=4) as again:
        assert again == torch.device("cuda:1")  # released when the job ended
    with job_device("cuda:0") as explicit:
        assert explicit == torch.device("cuda:0") and current[-1] == 0
    with job_device("cuda") as unnumbered:  # the current GPU, whichever it is
        assert unnumbered == torch.device("cuda") and len(current) == 4
    with pytest.raises(ConfigError, match="trainer.device=cuda:5 but this machine has 3 GPU"):
        resolve_device("cuda:5")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with job_device("auto", job_num=3) as cpu:
        assert cpu == torch.device("cpu")
    with pytest.raises(ConfigError, match="trainer.device=cuda but this machine has no CUDA GPU"):
        resolve_device("cuda")


def test_a_job_sharing_a_gpu_keeps_to_its_share_of_memory(monkeypatch, tmp_path):
    monkeypatch.setenv("BERTCMP_LEASE_DIR", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr("bertcmp.devices.gpu_names", lambda: ["g0"])
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    caps = []
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction",
                        lambda fraction, device=None: caps.append((fraction, torch.device(device))))
    with job_device("auto", jobs_per_gpu=2):
        with job_device("auto", jobs_per_gpu=2):
            pass
    with job_device("auto", jobs_per_gpu=1):  # a reused worker: its next job has the whole GPU again
        pass
    assert caps == [(0.5, torch.device("cuda:0"))] * 2 + [(1.0, torch.device("cuda:0"))]


# ---------------------------------------------------------------------------------------------- what a run ran on


@pytest.mark.slow  # processes that wait on each other
def test_neighbours_counts_the_jobs_training_on_the_device_now_and_the_most_seen(tmp_path):
    from bertcmp.devices import Neighbours

    cpu = torch.device("cpu")
    stale = tmp_path / "a-killed-job"
    stale.touch()
    os.utime(stale, (time.time() - 120, time.time() - 120))  # a job killed two minutes ago left its file
    mine = Neighbours(cpu, directory=tmp_path)
    assert mine.most == 1 and not stale.exists()
    other = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time, torch
        from pathlib import Path
        from bertcmp.devices import Neighbours
        n = Neighbours(torch.device("cpu"), directory=Path({str(tmp_path)!r}))
        print(n.most, flush=True)
        sys.stdin.readline()
        n.close()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert other.stdout.readline().strip() == "2"  # itself and this one
    assert mine.count() == 2
    mine.check()  # counted within the last second: not again
    other.communicate("\n", timeout=60)
    assert mine.count() == 1 and mine.most == 2
    mine.close()
    assert not list(tmp_path.iterdir())


def test_a_cpu_is_named_by_its_model():
    from bertcmp.devices import device_name

    name = device_name(torch.device("cpu"))
    assert name and name != "unknown CPU" and "\n" not in name


def test_one_device_check_for_training_and_for_predictions(monkeypatch):
    """trainer.device and predict's device are checked by one function: what names no CPU or CUDA device is one
    line naming the setting, and no device at all is the first GPU, else the CPU."""
    from bertcmp import predict

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert predict.resolve_device is resolve_device
    for key in ("trainer.device", "device"):
        for spec in ("meta", "bogus"):
            with pytest.raises(ConfigError, match=f"^{key}={spec} is not a device: use cpu, cuda or cuda:N$"):
                resolve_device(spec, key)
        with pytest.raises(ConfigError, match=f"^{key}=cuda:1 but this machine has no CUDA GPU"):
            resolve_device("cuda:1", key)
    assert resolve_device(None) == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")
