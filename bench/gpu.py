"""GPU throughput of bertcmp's training loop: BERT-base and ModernBERT-base shapes (random weights: nothing to
download), max_length 128 and 512, bf16 autocast, torch.compile off and on. Prints examples/s, tokens/s, MFU and
peak memory; then one job alone against two sharing the GPU (trainer.jobs_per_gpu=2).

The models are built the way a run builds them, from the composed config `model=<family> model.pretrained=null
model/scratch=base` (`tiny` with --tiny) and bertcmp.model.build_classifier; fit() is the real training loop.

    python -m bench.gpu                 # on a GPU machine; meant to take under 8 minutes on an H100 (not yet run)
    python -m bench.gpu --tiny          # a 2-layer check of the script itself, runs on a CPU

MFU = 6 x non-embedding parameters x real tokens per second / the GPU's peak dense bf16 FLOP/s. Batches are
full (no padding), so every token is real; the timed epoch is the second one, after any compilation.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import torch
from omegaconf import OmegaConf
from transformers import set_seed

from bertcmp.config import TrainerConfig
from bertcmp.data import Encoded, make_loader
from bertcmp.model import SequenceClassifier, build_classifier, make_tokenizer
from bertcmp.synthetic import make_reviews
from bertcmp.train import fit

# dense bf16 peaks from NVIDIA's data sheets; the first name contained in the device's name wins
PEAK_BF16 = {"H100 PCIe": 756e12, "H100 NVL": 835e12, "H100": 989e12, "H200": 989e12, "A100": 312e12,
             "L4": 121e12, "A10": 125e12}


def peak_flops(override: float | None) -> float:
    if override:
        return override * 1e12
    if not torch.cuda.is_available():
        return float("nan")
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16.items() if k in name), float("nan"))


def classifier(family: str, tiny: bool, device: torch.device) -> SequenceClassifier:
    """The model a run of `model=<family> model.pretrained=null model/scratch=base|tiny` trains."""
    from hydra import compose, initialize_config_dir

    from bertcmp.app import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"model={family}", "model.pretrained=null",
                                                       f"model/scratch={'tiny' if tiny else 'base'}"])
    tokenizer = make_tokenizer(cfg.model, make_reviews(2000, 0)["text"])
    return build_classifier(cfg.model, tokenizer, ["0", "1"], device)


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
    model = classifier(family, args.tiny, device)
    attention = model.encoder.config._attn_implementation
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    batch = args.tokens_per_step // length
    train = synthetic(model.encoder.config.vocab_size, batch * args.steps, length, 0)
    valid = synthetic(model.encoder.config.vocab_size, batch, length, 1)
    loader = make_loader(train, batch, 0, length, "dynamic", shuffle=True, seed=0,
                         pin_memory=device.type == "cuda")
    cfg = OmegaConf.merge(OmegaConf.structured(TrainerConfig), {"epochs": 2, "compile": compile_model})
    dtype = torch.bfloat16 if device.type == "cuda" or args.tiny else None
    history = fit(model, loader, make_loader(valid, batch, 0, length, "dynamic"), cfg, device, dtype).history
    timed = history[-1]
    tokens_per_s = timed.tokens / timed.train_seconds
    flops = 6 * non_embedding_params(model.encoder) * tokens_per_s
    return {"model": family, "max_length": length, "batch": batch, "compile": compile_model,
            "examples_per_s": timed.examples / timed.train_seconds, "tokens_per_s": tokens_per_s,
            "mfu": flops / peak_flops(args.peak_tflops),
            "first_epoch_s": history[0].train_seconds, "attention": attention,
            "peak_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")}


def _percent(value: float) -> str:
    return "n/a" if value != value else f"{value:.1%}"  # no known peak (a CPU, an unlisted GPU): --peak-tflops


def sharing(family: str, args) -> tuple[float, float]:
    """Tokens/s at 128 tokens of one job alone on the GPU, and of two jobs sharing it (trainer.jobs_per_gpu=2):
    each job a process of its own, as joblib runs them; two started together, their tokens/s added."""
    command = [sys.executable, "-m", "bench.gpu", "--worker", family, "--steps", str(args.steps),
               "--tokens-per-step", str(args.tokens_per_step), *(["--tiny"] if args.tiny else [])]

    def together(n: int) -> float:
        procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(n)]
        outputs = [proc.communicate()[0] for proc in procs]
        if any(proc.returncode for proc in procs):
            sys.exit(f"a worker failed:\n{outputs}")
        return sum(json.loads(out.strip().splitlines()[-1])["tokens_per_s"] for out in outputs)

    return together(1), together(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["bert", "modernbert"], help=argparse.SUPPRESS)  # one sharing job
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
        print(json.dumps({k: v for k, v in measure(args.worker, 128, False, args, device).items()
                          if isinstance(v, (int, float, str))}))
        return
    print(f"device: {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}, torch {torch.__version__}, "
          f"peak bf16 {peak_flops(args.peak_tflops) / 1e12:.0f} TFLOP/s")
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

    print("\njobs per GPU (128 tokens, no compile; each job a process of its own):")
    for family in ("bert", "modernbert"):
        one, two = sharing(family, args)
        print(f"{family:11s} 1 job: {one:10.0f} tokens/s   2 jobs sharing: {two:10.0f} tokens/s together "
              f"({two / one:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
