"""Where a job trains: the device the config names, or with trainer.device=auto a GPU leased for the job.

joblib hands a job to whichever worker frees up first, so choosing GPU "job number mod GPU count" can put two
jobs on one GPU while another sits idle. So each job leases a GPU instead: a lock file per GPU slot
(trainer.jobs_per_gpu slots per GPU) that the job holds while it runs. The lock is the operating system's
(flock), so it is released when the job ends however it ends, a SIGKILL included: a killed job's lease is
free again at once, though its file stays. A job that finds every slot taken waits for one.

What a run ran on, for the comparison of cost: the device's own name, and how many jobs trained on it at once
(Neighbours, counted the same way through lock files).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import platform
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

from filelock import FileLock, Timeout

from bertcmp.errors import ConfigError

if TYPE_CHECKING:  # imported where used: the leases themselves need no torch
    import torch

log = logging.getLogger(__name__)


def lease_dir() -> Path:
    """Where the locks this machine's jobs share live: GPU leases, CPU turns ($BERTCMP_LEASE_DIR, else a per-user
    folder in /tmp)."""
    default = Path(tempfile.gettempdir()) / f"bertcmp-{os.getuid()}" / "leases"
    return Path(os.environ.get("BERTCMP_LEASE_DIR", default))


@contextlib.contextmanager
def lease_gpu(gpus: Sequence[str], jobs_per_gpu: int = 1, first: int = 0, directory: Optional[Path] = None,
              poll_seconds: float = 0.5) -> Iterator[int]:
    """Hold one of `gpus` (their names: the same GPU has the same name in every process) for the with-block and
    give its index. The first slot of every GPU is tried before any second one, so jobs never share a GPU
    while one is free; each job starts looking at `first`, so jobs started together spread out."""
    directory = directory or lease_dir()
    directory.mkdir(parents=True, exist_ok=True)
    waiting = False
    while True:
        for slot in range(jobs_per_gpu):
            for offset in range(len(gpus)):
                index = (first + offset) % len(gpus)
                lock = FileLock(str(directory / f"{gpus[index]}.slot{slot}.lock"))
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    continue
                try:
                    yield index
                finally:
                    lock.release()
                return
        if not waiting:
            log.info("all %d GPU(s) are taken by other jobs (trainer.jobs_per_gpu=%d): waiting for one",
                     len(gpus), jobs_per_gpu)
            waiting = True
        time.sleep(poll_seconds)


def gpu_names() -> list[str]:
    """A name for each visible GPU that is the same in every process: its UUID (CUDA_VISIBLE_DEVICES may number
    the same GPU differently in two processes), else its index."""
    import torch

    names = []
    for i in range(torch.cuda.device_count()):
        uuid = getattr(torch.cuda.get_device_properties(i), "uuid", None)
        names.append(f"gpu-{uuid}" if uuid else f"gpu{i}")
    return names


@contextlib.contextmanager
def job_device(spec: str, jobs_per_gpu: int = 1, job_num: int = 0) -> Iterator[torch.device]:
    """The device for this job, for as long as the job runs: `auto` leases a GPU (the CPU if there is none);
    `cpu`, `cuda`, `cuda:N` are taken as given, without a lease."""
    import torch

    if spec != "auto":
        yield _current(resolve_device(spec))
        return
    count = torch.cuda.device_count()
    if not count:
        yield torch.device("cpu")
        return
    with lease_gpu(gpu_names(), jobs_per_gpu, first=job_num % count) as index:
        log.info("leased GPU %d of %d for this job", index, count)
        device = _current(torch.device(f"cuda:{index}"))
        cap_memory(device, jobs_per_gpu)
        yield device


def cap_memory(device: torch.device, jobs_per_gpu: int) -> None:
    """A job sharing its GPU keeps to its 1/jobs_per_gpu share: each process's caching allocator keeps what it
    freed (and dynamic padding makes that grow), so two uncapped jobs can run each other out of memory. Set for
    every job, 1.0 included: a reused worker keeps the fraction of its previous job."""
    import torch

    torch.cuda.set_per_process_memory_fraction(1 / jobs_per_gpu, device)
    if jobs_per_gpu > 1:
        log.info("this job may use %.0f %% of the GPU's memory (trainer.jobs_per_gpu=%d)", 100 / jobs_per_gpu,
                 jobs_per_gpu)


def _current(device: torch.device) -> torch.device:
    """Make a GPU the process's current one: what names no GPU (pinned memory and the loader's pinning thread, a
    plain "cuda") then uses the job's GPU, not GPU 0, where every job would otherwise open a context of its own."""
    import torch

    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    return device


def resolve_device(spec: str | torch.device | None, key: str = "trainer.device") -> torch.device:
    """`cpu`, `cuda` or `cuda:N`, checked against this machine (None: the first GPU, else the CPU); `key` names the
    setting in a message: trainer.device, or predict's device."""
    import torch

    if spec is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"{key}={spec} is not a device: use cpu, cuda or cuda:N")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise ConfigError(f"{key}={spec} but this machine has no CUDA GPU that torch can use; use cpu")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{key}={spec} but this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}")
    return device


# ---------------------------------------------------------------------------------------------- what a run ran on


def device_name(device: torch.device) -> str:
    """The device as its maker names it: `NVIDIA H200`, or the CPU's model name (`AMD EPYC`) where a run trains on
    the CPU: two runs compare on speed only where these are equal."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_tag(device: torch.device) -> str:
    """A name for the device that is the same in every process using it: a GPU's UUID, or this machine's CPU."""
    import torch

    if device.type == "cuda":
        return gpu_names()[device.index if device.index is not None else torch.cuda.current_device()]
    return f"cpu-{socket.gethostname()}"


class Neighbours:
    """How many jobs train on this job's device at the same time as it, this one included: each training job
    holds a lock on a file of its own in `lease_dir()/training/<device>` (the operating system's lock, let go
    however the job ends), and the files held there are the jobs training now. Counted when training starts and
    then at most once per `every` seconds; `most` is the largest count seen. It catches the jobs of one sweep
    (joblib, trainer.jobs_per_gpu), of other sweeps and of tests alike, whoever started them."""

    def __init__(self, device: torch.device, every: float = 1.0, directory: Optional[Path] = None):
        self.directory = directory or lease_dir() / "training" / device_tag(device)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"{socket.gethostname()}-{os.getpid()}-{id(self)}"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.every, self.checked, self.most = every, 0.0, 0
        self.count()

    def count(self) -> int:
        """The jobs training on this device now, and `most` updated."""
        now = 0
        for path in self.directory.iterdir():
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:  # gone meanwhile
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:  # held: a job is training
                now += 1
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
                if time.time() - os.fstat(fd).st_mtime > 60:  # a killed job's: not one just created, not yet held
                    with contextlib.suppress(OSError):
                        path.unlink()
            finally:
                os.close(fd)
        self.checked, self.most = time.monotonic(), max(self.most, now)
        return now

    def check(self, *_: object) -> None:
        """Count again unless counted within the last `every` seconds (a hook for every training step)."""
        if time.monotonic() - self.checked >= self.every:
            self.count()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self.fd)  # which lets go of the lock
