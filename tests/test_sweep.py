"""Sweeps: parallel jobs, failures that stay one failure, skipping what is done, resuming what was cut off."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

from bertcmp.runs import load_runs
from bertcmp.sweep import cpu_cores, cpu_threads_per_job, default_n_jobs, launcher_parallelism, summarise_sweep
from conftest import compose_config, run_cli

TINY = ["experiment=smoke", "data.num_examples=600", "trainer.epochs=1"]


def run_dirs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


# ---------------------------------------------------------------------------------------------- unit


def test_cpu_share_per_job():
    cores = cpu_cores()
    assert cpu_threads_per_job(1) == cores
    assert cpu_threads_per_job(cores) == 1
    assert cpu_threads_per_job(4 * cores) == 1
    assert cpu_threads_per_job(-1) == 1  # joblib: one job per core


@pytest.mark.parametrize("gpus", [0, 3])
def test_default_n_jobs(monkeypatch, gpus):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)  # the same assertions on any machine
    assert default_n_jobs() == (gpus or min(4, cpu_cores()))
    assert default_n_jobs(jobs_per_gpu=2) == (2 * gpus or min(4, cpu_cores()))


def test_launcher_parallelism():
    assert launcher_parallelism({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}) == 1
    assert launcher_parallelism({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
                                 "n_jobs": 3}) == 3


def compose_with_hydra(*overrides: str):
    return compose_config(*overrides, hydra=True)


def test_joblib_preset_has_a_sensible_n_jobs():
    cfg = compose_with_hydra("hydra/launcher=joblib")
    assert cfg.hydra.launcher.n_jobs == default_n_jobs()
    shared = compose_with_hydra("hydra/launcher=joblib", "trainer.jobs_per_gpu=2")
    assert shared.hydra.launcher.n_jobs == default_n_jobs(2)  # GPUs x jobs_per_gpu
    assert compose_with_hydra("hydra/launcher=joblib", "hydra.launcher.n_jobs=3").hydra.launcher.n_jobs == 3


def test_slurm_preset_asks_one_gpu_per_task():
    launcher = compose_with_hydra("hydra/launcher=slurm", "hydra.launcher.partition=gpu").hydra.launcher
    assert launcher._target_ == "hydra_plugins.bertcmp_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.partition) == (1, 1, "gpu")
    assert launcher.timeout_min > 0 and launcher.array_parallelism > 0


def test_lr_sweep_preset_is_the_whole_grid():
    params = compose_with_hydra("experiment=lr_sweep").hydra.sweeper.params
    assert params["model"] == "bert,modernbert" and params["trainer.lr"] == "2e-5,3e-5,5e-5,8e-5"


def test_batch_sweep_preset_is_the_studys_effective_batch_sizes():
    cfg = compose_with_hydra("experiment=batch_sweep")
    params = cfg.hydra.sweeper.params
    assert params["model"] == "bert,modernbert" and params["trainer.grad_accum_steps"] == "1,4,16"
    assert [cfg.data.batch_size * int(k) for k in params["trainer.grad_accum_steps"].split(",")] == [64, 256, 1024]


def test_modern_recipe_preset_is_the_references_sst2_recipe():
    t = compose_with_hydra("experiment=modern_recipe").trainer
    assert (t.optimizer.value, list(t.betas), t.eps, t.scheduler.value, t.warmup_ratio) == \
        ("decoupled_adamw", [0.9, 0.98], 1e-6, "linear", 0.1)
    assert (t.lr, t.weight_decay) == (3e-5, 3e-6)


def test_summary_lists_what_did_not_complete(tmp_path):
    for name, record in (("0_a", {"status": "completed", "valid": {"accuracy": 0.9}, "test": {"accuracy": 0.8}}),
                         ("1_b", {"status": "failed", "error": "data.source='x' does not exist"}),
                         ("2_c", None)):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        if record:
            (tmp_path / name / "metrics.json").write_text(json.dumps(record))
    (tmp_path / ".submitit").mkdir()
    done, problems = summarise_sweep(load_runs([str(tmp_path)]))
    assert done == ["0_a: valid accuracy 0.9000, test accuracy 0.8000"]
    assert problems[0] == "1_b: failed: data.source='x' does not exist"
    assert problems[1].startswith("2_c: metrics.json")


def test_a_running_run_whose_process_is_gone_is_listed_as_interrupted(tmp_path):
    from bertcmp.outputs import holding

    for name in ("0_live", "1_gone", "2_old"):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / "metrics.json").write_text(json.dumps({"status": "running"}))
    with holding(tmp_path / "1_gone"):
        pass  # held once, by a process since gone
    with holding(tmp_path / "0_live"):
        done, problems = summarise_sweep(load_runs([str(tmp_path)]))
    assert problems == ["0_live: running: a live process is running it now",
                        "1_gone: interrupted: its process ended without recording how (killed, out of memory, or a "
                        "full disk); the same command resumes it",
                        "2_old: running: no error recorded"]  # bertcmp 0.2 took no lock: nothing to tell


def test_a_job_lost_by_its_scheduler_is_recorded_unless_the_run_said_how_it_ended(tmp_path):
    from bertcmp.outputs import holding
    from bertcmp.sweep import record_lost_job

    reason = "its job 7 ended without a result (scheduler state CANCELLED; log: 7_0_log.err)"
    never_started = tmp_path / "0_a"
    assert record_lost_job(never_started, ["model=bert"], reason) == \
        f"0_a: interrupted: {reason}; the same command resumes it (hydra.sweep.dir=<this sweep>)"
    assert metrics(never_started) == {"status": "interrupted", "overrides": ["model=bert"],
                                      "error": f"{reason}; the same command resumes it (hydra.sweep.dir=<this sweep>)"}

    killed = tmp_path / "1_b"
    killed.mkdir()
    (killed / "metrics.json").write_text(json.dumps({"status": "running", "computation_key": "k", "requeues": 2}))
    record_lost_job(killed, ["model=modernbert"], reason)
    assert {k: metrics(killed)[k] for k in ("status", "computation_key", "requeues")} == \
        {"status": "interrupted", "computation_key": "k", "requeues": 2}  # kept: the same command resumes it

    told = tmp_path / "2_c"
    told.mkdir()
    (told / "metrics.json").write_text(json.dumps({"status": "failed", "error": "data.source='x' does not exist"}))
    assert record_lost_job(told, [], reason) == "2_c: failed: data.source='x' does not exist"
    assert metrics(told)["status"] == "failed"

    live = tmp_path / "3_d"
    with holding(live):
        (live / "metrics.json").write_text(json.dumps({"status": "running"}))
        assert record_lost_job(live, [], reason).endswith("a live process still holds the run")
    assert metrics(live) == {"status": "running"}


def test_the_schedulers_reason_is_one_line_naming_the_jobs_log(tmp_path):
    from types import SimpleNamespace

    from hydra_plugins.bertcmp_submitit_launcher.submitit_launcher import scheduler_reason

    job = SimpleNamespace(job_id="41_3", paths=SimpleNamespace(stderr=tmp_path / "41_3_0_log.err"))
    gone = RuntimeError(f"Job 41_3 (task: 0) with path {tmp_path}/41_3_0_result.pkl\nhas not produced any output "
                        "(state: OUT_OF_MEMORY)\nError stream produced:\n----\nslurmstepd: error: Detected 1 oom")
    assert scheduler_reason(gone, job) == \
        f"its job 41_3 ended without a result (scheduler state OUT_OF_MEMORY; log: {tmp_path}/41_3_0_log.err)"
    raised = RuntimeError("Job (task=0) failed during processing with trace:\n----------------------\n"
                          "Traceback (most recent call last):\n  File \"x.py\", line 1\nSystemExit: 130\n")
    assert scheduler_reason(raised, job) == f"its job 41_3 failed: SystemExit: 130 (log: {tmp_path}/41_3_0_log.err)"


def test_summary_survives_damaged_run_files(tmp_path):
    """What the list is for: even a run whose files are damaged is listed, and the list is still made."""
    (tmp_path / "0_a" / ".hydra").mkdir(parents=True)
    (tmp_path / "0_a" / ".hydra" / "config.yaml").write_text("model: [unclosed\n")
    (tmp_path / "0_a" / "metrics.json").write_text(json.dumps({"status": "completed", "valid": {"accuracy": 0.9},
                                                               "test": {"accuracy": 0.8}}))
    (tmp_path / "1_b").mkdir()
    (tmp_path / "1_b" / "metrics.json").write_text(json.dumps({"status": "completed"}))  # no scores recorded
    found = load_runs([str(tmp_path)])
    assert summarise_sweep(found) == (["0_a: valid accuracy 0.9000, test accuracy 0.8000"], [
        "1_b: metrics.json says completed but has no valid.accuracy or test.accuracy (the job did not start, was "
        "killed, or its file is damaged)"])
    assert f"{tmp_path / '0_a' / '.hydra' / 'config.yaml'}: unreadable (ParserError); " \
           "the run is compared by its metrics.json alone" in found.problems


# ---------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_joblib_sweep_of_four_runs(tmp_path):
    result = run_cli("-m", *TINY, "model=bert,modernbert", "seed=0,1", "hydra/launcher=joblib",
                     "hydra.launcher.n_jobs=2", "logger.mode=offline", f"hydra.sweep.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = run_dirs(tmp_path)
    assert len(runs) == 4 and all(metrics(r)["status"] == "completed" for r in runs)
    assert [r.name.split("_", 1)[0] for r in runs] == ["0", "1", "2", "3"] and "seed=1" in runs[3].name
    for run in runs:  # one W&B run per job, although joblib's two workers ran two jobs each
        assert len(list((run / "wandb").glob("offline-run-*/run-*.wandb"))) == 1
    assert "sweep " in result.stdout and "4 completed, 0 not completed" in result.stdout


@pytest.fixture(scope="session")  # made once per pytest-xdist worker that needs it
def sweep_with_a_failure(tmp_path_factory):
    root = tmp_path_factory.mktemp("failing")
    args = ["-m", *TINY, "model.pretrained=null,/no/such/model", "logger.mode=disabled",
            f"hydra.sweep.dir={root / 'sweep'}"]
    return root, args, run_cli(*args, cwd=root)


@pytest.mark.slow
def test_one_failure_stays_one_failure(sweep_with_a_failure):
    root, _, result = sweep_with_a_failure
    assert result.returncode != 0
    good, bad = run_dirs(root / "sweep")
    assert metrics(good)["status"] == "completed"
    failed = metrics(bad)
    assert failed["status"] == "failed" and "model.pretrained='/no/such/model'" in failed["error"]
    assert "1 completed, 1 not completed" in result.stdout
    # named as the table names its configuration (the override that differs, and the seed), after its job number
    assert re.search(r"not ok  1 model.pretrained=/no/such/model,seed=\d+: failed: model.pretrained='/no/such/model'",
                     result.stdout), result.stdout
    assert "not completed: " not in result.stdout  # listed once, in the sweep's list, not again by the comparison
    assert "Traceback" not in result.stdout + result.stderr
    assert "neither a local directory" in (bad / "bertcmp.log").read_text()


@pytest.mark.slow
def test_rerun_skips_completed_runs(sweep_with_a_failure):
    root, args, _ = sweep_with_a_failure
    good, bad = run_dirs(root / "sweep")
    results = ["metrics.json", "history.jsonl", "test_predictions.csv", "checkpoint/model.safetensors"]
    before = {name: (good / name).stat().st_mtime_ns for name in results}
    result = run_cli(*args, cwd=root)
    assert f"skipping {good.name}: completed earlier" in result.stdout
    assert {name: (good / name).stat().st_mtime_ns for name in results} == before  # not trained again
    assert "skipping" in (good / "bertcmp.log").read_text()
    assert result.returncode != 0 and metrics(bad)["status"] == "failed"  # the failed one was tried again


def start_cli(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bertcmp", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stop_after_first_epoch(process: subprocess.Popen, run_dir: Path, sig: int) -> None:
    deadline = time.time() + 600
    while not (run_dir / "history.jsonl").exists():
        assert process.poll() is None and time.time() < deadline, "the run ended before its first epoch"
        time.sleep(0.05)
    process.send_signal(sig)
    process.communicate(timeout=60)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_numbers(tmp_path):
    args = ["experiment=smoke", "model=bert", "trainer.epochs=3", "logger.mode=offline"]
    whole = run_cli(*args, f"hydra.run.dir={tmp_path / 'whole'}", cwd=tmp_path)
    assert whole.returncode == 0, whole.stdout + whole.stderr

    cut = tmp_path / "cut"
    stop_after_first_epoch(start_cli(*args, f"hydra.run.dir={cut}", cwd=tmp_path), cut, signal.SIGKILL)
    assert metrics(cut)["status"] == "running" and (cut / "resume" / "state.pt").is_file()
    again = run_cli(*args, f"hydra.run.dir={cut}", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming after epoch" in again.stdout
    a, b = metrics(tmp_path / "whole"), metrics(cut)
    assert (a["valid"], a["test"], a["best_epoch"]) == (b["valid"], b["test"], b["best_epoch"])
    assert (tmp_path / "whole" / "test_predictions.csv").read_bytes() == (cut / "test_predictions.csv").read_bytes()
    history = [json.loads(line) for line in (cut / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert not (cut / "resume").exists()  # epoch states only live until the run completes


@pytest.mark.slow
def test_sigterm_marks_the_run_interrupted(tmp_path):
    run = tmp_path / "run"
    process = start_cli("experiment=smoke", "model=modernbert", "trainer.epochs=20", "logger.mode=disabled",
                        f"hydra.run.dir={run}", cwd=tmp_path)
    stop_after_first_epoch(process, run, signal.SIGTERM)
    assert process.returncode == 130
    assert metrics(run)["status"] == "interrupted"
    assert (run / "resume" / "state.pt").is_file()


# every option that changes how training runs, so that each keeps the guarantee
ORDER = ["experiment=smoke", "data.num_examples=600", "trainer.epochs=2", "data.padding=dynamic",
         "trainer.grad_accum_steps=2", "trainer.eval_every=3", "trainer.patience=4", "model.head=native",
         "data.truncation=head_tail", "data.head_tokens=16", "trainer.optimizer=decoupled_adamw",
         "trainer.weight_decay=1e-4", "logger.mode=disabled"]


def numbers(run: Path) -> tuple:
    """Everything a run computed: its scores, its per-epoch losses, its predictions file."""
    record = metrics(run)
    losses = [json.loads(line)["train_loss"] for line in (run / "history.jsonl").read_text().splitlines()]
    return record["valid"], record["test"], record["best_epoch"], losses, (run / "test_predictions.csv").read_bytes()


def numbers_per_model(sweep: Path) -> dict[str, list[tuple]]:
    found: dict[str, list[tuple]] = {}
    for run in run_dirs(sweep):
        found.setdefault(metrics(run)["model"], []).append(numbers(run))
    return found


@pytest.mark.slow
def test_run_order_does_not_change_the_numbers(tmp_path):
    """The basic launcher runs every job in one process: each model gives the same bits whichever ran first."""
    for name, models in (("a", "model=bert,modernbert"), ("b", "model=modernbert,bert")):
        result = run_cli("-m", *ORDER, models, f"hydra.sweep.dir={tmp_path / name}", cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
    a, b = numbers_per_model(tmp_path / "a"), numbers_per_model(tmp_path / "b")
    assert set(a) == {"bert", "modernbert"} and a == b


@pytest.mark.slow
def test_run_order_does_not_change_the_numbers_in_reused_joblib_workers(tmp_path):
    """Four jobs on two joblib workers: at least one worker runs a second job after another model's."""
    result = run_cli("-m", *ORDER, "model=bert,modernbert,modernbert,bert", "hydra/launcher=joblib",
                     "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    found = numbers_per_model(tmp_path)
    assert sorted(found) == ["bert", "modernbert"]
    for model, runs in found.items():
        assert len(runs) == 2 and runs[0] == runs[1], model


def holder_of(run: Path) -> Optional[int]:
    """The process that holds the run's directory (its .lock open), by /proc."""
    lock = str(run / ".lock")
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and any(os.readlink(fd) == lock for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:  # gone, or not ours to read
            continue
    return None


# hydra/launcher=slurm's launcher on submitit's local executor: SLURM's code path on this machine
SLURM_ON_THIS_MACHINE = ["hydra/launcher=submitit_local",
                         "hydra.launcher._target_=hydra_plugins.bertcmp_submitit_launcher.submitit_launcher.LocalLauncher"]


@pytest.mark.slow
def test_submitit_local_sweep_requeued_runs_resume_to_the_numbers_of_an_uninterrupted_run(tmp_path):
    """The code path of hydra/launcher=slurm, run by submitit on this machine. Each job gets submitit's preemption
    / time-limit signal (USR2) after its first validation: submitit requeues it, the run records that, and the
    requeued job resumes and ends with the numbers of a run never stopped."""
    args = [*TINY, "trainer.epochs=4", "logger.mode=disabled"]
    sweep = tmp_path / "sweep"
    process = start_cli("-m", *args, "model=bert,modernbert", *SLURM_ON_THIS_MACHINE, f"hydra.sweep.dir={sweep}",
                        cwd=tmp_path)
    signalled: set[Path] = set()
    deadline = time.time() + 600
    while len(signalled) < 2 and process.poll() is None and time.time() < deadline:
        for run in (p for p in sweep.glob("*_*") if p.is_dir() and p not in signalled):
            if (run / "resume" / "state.pt").is_file() and (pid := holder_of(run)):
                os.kill(pid, signal.SIGUSR2)  # what SLURM sends signal_delay_s before the time limit
                signalled.add(run)
        time.sleep(0.05)
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 0 and len(signalled) == 2, output
    runs = run_dirs(sweep)
    assert [(metrics(r)["status"], metrics(r)["requeues"]) for r in runs] == [("completed", 1)] * 2
    logs = "".join((r / "bertcmp.log").read_text() for r in runs)
    assert logs.count("requeued (1 time(s)): the requeued job resumes") == 2
    assert logs.count("the cluster requeued this run (1 time(s) so far): resuming it") == 2
    assert "stopped without recording why" not in logs

    whole = tmp_path / "whole"
    reference = run_cli(*args, "model=bert", f"hydra.run.dir={whole}", cwd=tmp_path)
    assert reference.returncode == 0, reference.stdout + reference.stderr
    bert = next(r for r in runs if "model=bert," in r.name or r.name.endswith("model=bert"))
    a, b = metrics(whole), metrics(bert)
    assert (a["valid"], a["test"], a["best_epoch"]) == (b["valid"], b["test"], b["best_epoch"])
    assert (whole / "test_predictions.csv").read_bytes() == (bert / "test_predictions.csv").read_bytes()


@pytest.mark.slow
def test_a_submitit_job_killed_outright_is_one_not_ok_run_and_the_rest_is_compared(tmp_path):
    """SIGKILL leaves no record of how the run ended and no result for submitit: the sweep still lists every run,
    the killed one as interrupted with the scheduler's reason, compares the rest and exits 1, without a traceback;
    the same command then resumes the killed run alone."""
    args = [*TINY, "trainer.epochs=3", "logger.mode=disabled", "model=bert,modernbert", *SLURM_ON_THIS_MACHINE,
            f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    process = start_cli("-m", *args, cwd=tmp_path)
    killed: Optional[Path] = None
    deadline = time.time() + 600
    while killed is None and process.poll() is None and time.time() < deadline:
        for run in (p for p in (tmp_path / "sweep").glob("*_*") if p.is_dir()):
            if (run / "resume" / "state.pt").is_file() and (pid := holder_of(run)):
                os.kill(pid, signal.SIGKILL)  # what SLURM's scancel -s KILL, or the out-of-memory killer, does
                killed = run
                break
        time.sleep(0.05)
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 1 and killed is not None, output
    assert "Traceback" not in output and "UncompletedJobError" not in output, output
    record = metrics(killed)
    assert record["status"] == "interrupted" and "ended without a result (scheduler state " in record["error"], record
    assert "the same command resumes it" in record["error"] and record["computation_key"]
    other = next(r for r in run_dirs(tmp_path / "sweep") if r != killed)
    assert metrics(other)["status"] == "completed"
    assert re.search(rf"{killed.name.split('_')[0]} .*: interrupted: its job \d+ ended without a result", output), output
    assert (tmp_path / "sweep" / "comparison").is_dir(), output

    again = run_cli("-m", *args, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert [metrics(r)["status"] for r in run_dirs(tmp_path / "sweep")] == ["completed"] * 2
    logs = (killed / "bertcmp.log").read_text()
    assert "resuming after epoch" in logs, logs


TURN_HOLDER = """
import sys, time
from pathlib import Path
from bertcmp.sweep import CpuTurns
with CpuTurns(Path(sys.argv[1])).turn():
    print("holding", flush=True)
    time.sleep(600)
"""


def test_jobs_that_want_every_core_take_turns(tmp_path):
    """While one job holds the machine, another waits; a killed holder lets go of it."""
    import fcntl
    import subprocess
    import sys

    from bertcmp.sweep import CpuTurns

    lock = tmp_path / "cpu.lock"
    holder = subprocess.Popen([sys.executable, "-c", TURN_HOLDER, str(lock)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    probe = open(lock, "a")
    with pytest.raises(BlockingIOError):  # taken
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    holder.kill()
    holder.wait()
    with CpuTurns(lock).turn():  # free again at once
        with pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # and now this process holds it
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # given back after the turn


def test_a_loader_taking_turns_holds_the_machine_while_its_batch_is_used(tmp_path):
    import fcntl

    import torch
    from torch.utils.data import DataLoader

    from bertcmp.sweep import CpuTurns, TakingTurns

    lock = tmp_path / "cpu.lock"
    plain = DataLoader(range(10), batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(0))
    wrapped = TakingTurns(plain, CpuTurns(lock))
    assert len(wrapped) == 4 and wrapped.generator is plain.generator
    probe = open(lock, "a")
    seen = []
    for batch in wrapped:
        with pytest.raises(BlockingIOError):  # held while the batch is trained on
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        seen.append(batch.tolist())
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # given back after the last batch
    fcntl.flock(probe, fcntl.LOCK_UN)
    plain.generator.manual_seed(0)
    assert seen == [batch.tolist() for batch in plain]  # the same batches, in the same order


def test_the_list_names_runs_as_the_table_does_with_their_seed(tmp_path):
    long = "data.source=/a/long/path/to/data/imdb,data.train_size=2000,data.valid_size=500,data.test_size=1000"
    for num, (model, seed) in enumerate((("/models/a/minilm", 0), ("/models/b/minilm", 1))):
        run = tmp_path / f"{num}_{long.replace('/', '-')}"[:60]
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "config.yaml").write_text(f"seed: {seed}\n")
        (run / "metrics.json").write_text(json.dumps({
            "status": "completed", "metric": "mcc", "valid": {"accuracy": 0.9, "mcc": 0.7},
            "test": {"accuracy": 0.8, "mcc": 0.6},
            "overrides": [*long.split(","), f"model.pretrained={model}", f"seed={seed}"]}))
    done, _ = summarise_sweep(load_runs([str(tmp_path)]))
    assert done == ["0 model.pretrained=/models/a/minilm,seed=0: valid mcc 0.7000, test mcc 0.6000",
                    "1 model.pretrained=/models/b/minilm,seed=1: valid mcc 0.7000, test mcc 0.6000"]


def test_a_sweep_whose_data_folder_is_missing_stops_before_any_run_naming_what_makes_it(tmp_path, monkeypatch,
                                                                                          capsys):
    """experiment=benchmark_smoke without its copies: one line before the first job, not 26 failed runs."""
    from bertcmp.sweep import SweepReport

    monkeypatch.setenv("BERTCMP_FIXTURES", str(tmp_path / "fixtures"))
    cfg = compose_with_hydra("experiment=benchmark_smoke")
    with pytest.raises(SystemExit) as stop:
        SweepReport().on_multirun_start(cfg)
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"error: data.source=${{oc.env:BERTCMP_FIXTURES,outputs/fixtures}}/${{data.name}}: {tmp_path / 'fixtures'} "
        "does not exist, and every run of this sweep reads its data there; experiment=benchmark_smoke's copies are "
        f"written by `python -m tests.hub_fixtures {tmp_path / 'fixtures'}`")
    (tmp_path / "fixtures").mkdir()
    SweepReport().on_multirun_start(cfg)  # there: each run reads its own task's copy
    SweepReport().on_multirun_start(compose_with_hydra("experiment=smoke"))  # generated data: nothing to check
