"""Wall time of one 4-run sweep of tiny models: one job after another (Hydra's basic launcher, the baseline)
against parallel jobs (hydra/launcher=joblib); and two such sweeps started at once, as a user starting a second
sweep does, with bertcmp's CPU turns (the default) and without (BERTCMP_CPU_TURNS=0). All measured in the same
run of this script; keep the machine otherwise quiet.

    python -m bench.sweep [--n-jobs 2] [--repeats 1]

Offline: experiment=smoke (scratch models, generated reviews), models x 2 seeds. The tokenization cache is
warmed first so every sweep does the same work.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = ["-m", "experiment=smoke", "model=bert,modernbert", "seed=0,1", "logger.mode=disabled"]


def run_sweep(extra: list[str], sweep_dir: Path, env: dict) -> float:
    return run_together([extra], [sweep_dir], env)[0]


def run_together(extras: list[list[str]], sweep_dirs: list[Path], env: dict) -> list[float]:
    """Start one sweep per entry at the same moment; each one's wall time."""
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "bertcmp", *SWEEP, *extra, f"hydra.sweep.dir={sweep_dir}"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for extra, sweep_dir in zip(extras, sweep_dirs)]
    seconds = []
    for proc, extra, sweep_dir in zip(procs, extras, sweep_dirs):
        output = proc.communicate()[0]
        seconds.append(time.perf_counter() - started)
        if proc.returncode != 0:
            sys.exit(f"sweep failed ({' '.join(extra) or 'basic launcher'}):\n{output[-3000:]}")
        runs = [d for d in sorted(sweep_dir.iterdir()) if (d / "metrics.json").is_file()]
        assert len(runs) == 4, f"expected 4 runs in {sweep_dir}"
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "BERTCMP_CACHE_DIR": f"{tmp}/cache", "WANDB_SILENT": "true"}
        run_sweep([], Path(tmp) / "warm", env)  # builds the tokenization cache for both tokenizers
        times: dict[str, list[float]] = {"sequential": [], "joblib": [], "two, taking turns": [],
                                         "two, without turns": []}
        untaken = {**env, "BERTCMP_CPU_TURNS": "0"}
        for i in range(args.repeats):
            times["sequential"].append(run_sweep([], Path(tmp) / f"seq{i}", env))
            times["joblib"].append(run_sweep(["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.n_jobs}"],
                                             Path(tmp) / f"par{i}", env))
            for name, environment in (("two, taking turns", env), ("two, without turns", untaken)):
                both = run_together([[], []], [Path(tmp) / f"{name[5:9]}{i}a", Path(tmp) / f"{name[5:9]}{i}b"],
                                    environment)
                times[name].append(max(both))  # the slower of the pair
    best = {k: min(v) for k, v in times.items()}
    lone = best["sequential"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; 4 runs of experiment=smoke (best of {args.repeats})")
    print(f"sequential (basic launcher):        {lone:6.1f} s")
    print(f"joblib, n_jobs={args.n_jobs}:                   {best['joblib']:6.1f} s")
    print(f"speed-up of joblib over sequential: {lone / best['joblib']:6.2f}x")
    for name in ("two, taking turns", "two, without turns"):
        print(f"two sweeps at once, {name[5:]:<15} {best[name]:6.1f} s each at most: {best[name] / lone:4.2f}x a lone "
              "sweep (2x is a fair share)")


if __name__ == "__main__":
    main()
