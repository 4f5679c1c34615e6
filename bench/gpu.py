"""GPU throughput of bertcmp's training loop: BERT-base and ModernBERT-base shapes (random weights: nothing to
download), max_length 128 and 512, bf16 autocast, torch.compile off and on. Prints examples/s, tokens/s, MFU and
peak memory; then one job alone against two sharing the GPU (trainer.jobs_per_gpu=2).

The models are built the way a run builds them, from the composed config `model=<family> model.pretrained=null
model/scratch=base` (`tiny` with --tiny) and bertcmp.model.build_classifier; fit() is the real training loop.

    python -m bench.gpu                 # on a GPU machine; meant to take under 8 minutes on an H100 (not yet run)
    python -m bench.gpu --tiny          # a 2-layer check of the script itself, runs on a CPU

MFU = training FLOPs per token x real tokens per second / the GPU's peak dense bf16 FLOP/s, with FLOPs per
token = 6 x non-embedding parameters + 12 x layers x length x hidden (attention's QK^T and PV, forward and
backward: PaLM's formula, Chowdhery et al. 2022, appendix B). Batches are full (no padding), so every token is
real; the timed epoch is the second one, after any compilation. In the sharing part the jobs wait for each other
after their first epoch, so their timed epochs start together; together they did all their tokens between the
first start and the last end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from transformers import set_seed

from bertcmp.recipe import release_memory
from bertcmp.config import TrainerConfig
from bertcmp.data import Encoded, make_loader
from bertcmp.devices import cap_memory
from bertcmp.model import SequenceClassifier, build_classifier, make_tokenizer
from bertcmp.synthetic import make_reviews
from bertcmp.train import fit

# dense (not sparse) bf16 tensor peaks from NVIDIA's data sheets, by the exact name torch.cuda.get_device_name gives
# (a name that only contains one of these is another GPU: "L4" is in "L40S", "H200" in "H200 NVL")
PEAK_BF16 = {
    "NVIDIA H100 80GB HBM3": 989e12,  # H100 SXM
    "NVIDIA H100 PCIe": 756e12,
    "NVIDIA H100 NVL": 835e12,
    "NVIDIA H200": 989e12,
    "NVIDIA H200 NVL": 835e12,
    "NVIDIA A100-SXM4-40GB": 312e12,
    "NVIDIA A100-SXM4-80GB": 312e12,
    "NVIDIA A100-PCIE-40GB": 312e12,
    "NVIDIA A100 80GB PCIe": 312e12,
    "NVIDIA L4": 121e12,
    "NVIDIA L40": 181e12,
    "NVIDIA L40S": 362e12,
    "NVIDIA A10": 125e12,
    "NVIDIA A10G": 70e12,  # AWS's; NVIDIA publishes no data sheet for it: check, or pass --peak-tflops
}


def peak_flops(override: float | None, name: str | None = None) -> float:
    """The device's peak dense bf16 FLOP/s: --peak-tflops, else the table's entry for its exact name (NaN if
    unlisted, or on a CPU)."""
    if override:
        return override * 1e12
    if name is None:
        if not torch.cuda.is_available():
            return float("nan")
        name = torch.cuda.get_device_name()
    return PEAK_BF16.get(name.strip(), float("nan"))


def train_flops_per_token(non_embedding: int, layers: int, length: int, hidden: int) -> float:
    """Forward and backward FLOPs per token: the weights' matmuls (6 per parameter) and attention's scores and
    weighted sum over `length` tokens (12 x layers x length x hidden)."""
    return 6 * non_embedding + 12 * layers * length * hidden


def classifier(family: str, tiny: bool, device: torch.device, dtype: torch.dtype | None) -> SequenceClassifier:
    """The model a run of `model=<family> model.pretrained=null model/scratch=base|tiny` trains."""
    from hydra import compose, initialize_config_dir

    from bertcmp.app import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"model={family}", "model.pretrained=null",
                                                       f"model/scratch={'tiny' if tiny else 'base'}"])
    tokenizer = make_tokenizer(cfg.model, make_reviews(2000, 0)["text"])
    return build_classifier(cfg.model, tokenizer, ["0", "1"], device, dtype)


def non_embedding_params(model: torch.nn.Module) -> int:
    # BERT's pooler only ever sees the [CLS] vector: not a per-token cost
    return sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n and "pooler" not in n)


def synthetic(vocab: int, n: int, length: int, seed: int) -> Encoded:
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, size=n * length).astype(np.int32)
    return Encoded(ids=ids, offsets=np.arange(0, n * length + 1, length), labels=rng.integers(0, 2, n),
                   index=np.arange(n), truncated=np.zeros(n, dtype=bool))


def measure(family: str, length: int, compile_model: bool, args, device: torch.device) -> dict:
    set_seed(0)
    torch._dynamo.reset()  # as each run's set-up does: no graph of the previous model, no shape marked dynamic
    release_memory(device)  # the previous row's model and its compiled graph: not counted in this row's peak
    dtype = torch.bfloat16 if device.type == "cuda" or args.tiny else None
    model = classifier(family, args.tiny, device, dtype)
    attention = model.encoder.config._attn_implementation
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    batch = args.tokens_per_step // length
    train = synthetic(model.encoder.config.vocab_size, batch * args.steps, length, 0)
    valid = synthetic(model.encoder.config.vocab_size, batch, length, 1)
    loader = make_loader(train, batch, 0, length, "dynamic", shuffle=True, seed=0,
                         pin_memory=device.type == "cuda")
    cfg = OmegaConf.merge(OmegaConf.structured(TrainerConfig), {"epochs": 2, "compile": compile_model})
    started = {}

    def after_validation(history: list) -> None:  # the sharing part's jobs start their timed epoch together
        if len(history) == 1:
            started["at"] = wait_for_all(args.barrier, args.jobs) if args.barrier else time.time()

    history = fit(model, loader, make_loader(valid, batch, 0, length, "dynamic"), cfg, device, dtype,
                  on_validation=after_validation).history
    timed = history[-1]
    tokens_per_s = timed.tokens / timed.train_seconds
    config = model.encoder.config
    flops = train_flops_per_token(non_embedding_params(model.encoder), config.num_hidden_layers, length,
                                  config.hidden_size) * tokens_per_s
    return {"model": family, "max_length": length, "batch": batch, "compile": compile_model,
            "examples_per_s": timed.examples / timed.train_seconds, "tokens_per_s": tokens_per_s,
            "mfu": flops / peak_flops(args.peak_tflops),
            "first_epoch_s": history[0].train_seconds, "attention": attention, "tokens": timed.tokens,
            "timed_start": started["at"], "timed_end": started["at"] + timed.train_seconds,
            "peak_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")}


def _percent(value: float) -> str:
    return "n/a" if value != value else f"{value:.1%}"  # no known peak (a CPU, an unlisted GPU): --peak-tflops


def wait_for_all(barrier: str, jobs: int, timeout: float = 600.0) -> float:
    """Say this job is ready, wait until all `jobs` are, and give the time they were released (the wall clock,
    which every process on the machine shares)."""
    folder = Path(barrier)
    (folder / f"ready.{os.getpid()}").touch()
    deadline = time.time() + timeout
    while len(list(folder.glob("ready.*"))) < jobs:
        if time.time() > deadline:
            sys.exit(f"waited {timeout:.0f} s for {jobs} jobs at {barrier}: one did not get there")
        time.sleep(0.005)
    return time.time()


def sharing(family: str, args) -> tuple[float, float]:
    """Tokens/s at 128 tokens of one job alone on the GPU, and of two jobs sharing it (trainer.jobs_per_gpu=2):
    each job a process of its own, as joblib runs them, timed from the first job's start to the last one's end."""
    def together(n: int) -> float:
        with tempfile.TemporaryDirectory() as barrier:
            command = [sys.executable, "-m", "bench.gpu", "--worker", family, "--steps", str(args.steps),
                       "--tokens-per-step", str(args.tokens_per_step), "--barrier", barrier, "--jobs", str(n),
                       *(["--tiny"] if args.tiny else [])]
            procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(n)]
            outputs = [proc.communicate()[0] for proc in procs]
        if any(proc.returncode for proc in procs):
            sys.exit(f"a worker failed:\n{outputs}")
        jobs = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
        return shared_tokens_per_s(jobs)

    return together(1), together(2)


def shared_tokens_per_s(jobs: list[dict]) -> float:
    """All the jobs' timed tokens over the time from the first start to the last end."""
    return sum(j["tokens"] for j in jobs) / (max(j["timed_end"] for j in jobs) - min(j["timed_start"] for j in jobs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["bert", "modernbert"], help=argparse.SUPPRESS)  # one sharing job
    parser.add_argument("--barrier", help=argparse.SUPPRESS)  # the folder where sharing jobs wait for each other
    parser.add_argument("--jobs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--tiny", action="store_true", help="2-layer models: check the script on a CPU")
    parser.add_argument("--tokens-per-step", type=int, default=32768, help="batch = this / max_length")
    parser.add_argument("--steps", type=int, default=30, help="steps per epoch; the second epoch is timed")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, if not known")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.tiny:
        args.tokens_per_step, args.steps = min(args.tokens_per_step, 2048), min(args.steps, 3)
    if args.worker:
        if device.type == "cuda":  # as a run with trainer.jobs_per_gpu=<jobs> does
            cap_memory(device, args.jobs)
        print(json.dumps({k: v for k, v in measure(args.worker, 128, False, args, device).items()
                          if isinstance(v, (int, float, str))}))
        return
    print(f"device: {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}, torch {torch.__version__}, "
          f"peak bf16 {peak_flops(args.peak_tflops) / 1e12:.0f} TFLOP/s")
    print("MFU: (6 x non-embedding parameters + 12 x layers x length x hidden) x tokens/s / peak")
    print(f"{'model':11s} {'len':>4s} {'batch':>5s} {'compile':>7s} {'examples/s':>10s} {'tokens/s':>10s} {'MFU':>6s} "
          f"{'peak GB':>7s} {'1st epoch s':>11s} attention")
    for length in (128, 512):  # the target's row (BERT, 128 tokens) first
        for family in ("bert", "modernbert"):
            for compile_model in (False,) if args.no_compile else (False, True):
                started = time.perf_counter()
                r = measure(family, length, compile_model, args, device)
                print(f"{r['model']:11s} {r['max_length']:4d} {r['batch']:5d} {str(r['compile']):>7s} "
                      f"{r['examples_per_s']:10.1f} {r['tokens_per_s']:10.0f} {_percent(r['mfu']):>6s} "
                      f"{r['peak_gb']:7.1f} {r['first_epoch_s']:11.1f} {r['attention']} "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)

    release_memory(device)  # the last row's: the sharing jobs get the whole GPU
    print("\njobs per GPU (128 tokens, no compile; each job a process of its own):")
    for family in ("bert", "modernbert"):
        one, two = sharing(family, args)
        print(f"{family:11s} 1 job: {one:10.0f} tokens/s   2 jobs sharing: {two:10.0f} tokens/s together "
              f"({two / one:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
