"""Wall time of one 4-run sweep of tiny models: one job after another (Hydra's basic launcher, the baseline)
against parallel jobs (hydra/launcher=joblib), measured in the same run of this script.

    python -m bench.sweep [--n-jobs 2] [--repeats 1]

Offline: experiment=smoke (scratch models, generated reviews), models x 2 seeds. The tokenization cache is
warmed first so both launchers do the same work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = ["-m", "experiment=smoke", "model=bert,modernbert", "seed=0,1", "logger.mode=disabled"]


def run_sweep(extra: list[str], sweep_dir: Path, env: dict) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "bertcmp", *SWEEP, *extra, f"hydra.sweep.dir={sweep_dir}"],
                            capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"sweep failed ({' '.join(extra) or 'basic launcher'}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    accuracies = [json.loads((d / "metrics.json").read_text())["test"]["accuracy"]
                  for d in sorted(sweep_dir.iterdir()) if (d / "metrics.json").is_file()]
    assert len(accuracies) == 4, f"expected 4 runs in {sweep_dir}"
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "BERTCMP_CACHE_DIR": f"{tmp}/cache", "WANDB_SILENT": "true"}
        run_sweep([], Path(tmp) / "warm", env)  # builds the tokenization cache for both tokenizers
        times: dict[str, list[float]] = {"sequential": [], "joblib": []}
        for i in range(args.repeats):
            times["sequential"].append(run_sweep([], Path(tmp) / f"seq{i}", env))
            times["joblib"].append(run_sweep(["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.n_jobs}"],
                                             Path(tmp) / f"par{i}", env))
    best = {k: min(v) for k, v in times.items()}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; 4 runs of experiment=smoke (best of {args.repeats})")
    print(f"sequential (basic launcher):        {best['sequential']:6.1f} s")
    print(f"joblib, n_jobs={args.n_jobs}:                   {best['joblib']:6.1f} s")
    print(f"speed-up of joblib over sequential: {best['sequential'] / best['joblib']:6.2f}x")


if __name__ == "__main__":
    main()
