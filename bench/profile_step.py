"""Where a CPU training step's time goes: one batch of real IMDB reviews through the real MiniLM-L6 in training
mode, profiled op by op with torch.profiler, grouped into matmuls, dropout, attention, normalisation, the
optimizer and the rest; the same batch timed in eval mode (no dropout) and the machine's matmul measured in the
same run, so the useful-compute figure of bench/vs_hf_trainer.py can be read against them.

    python -m bench.profile_step [--max-length 128] [--batch 32] [--steps 5] [--compile]   (pip install -e ".[bench]")

--compile also times the same step with torch.compile (as trainer.compile=true does): its one-off compile time
and its steady-state step.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.profiler import ProfilerActivity, profile
from transformers import AutoTokenizer

from bench.common import imdb_dir, minilm_dir
from bench.vs_hf_trainer import matmul_flops
from bertcmp.config import DataConfig
from bertcmp.data import load_splits, make_loader, tokenize_splits
from bertcmp.model import SequenceClassifier, load_encoder

# aten op name -> what it is part of (first match wins); ops not listed count as "other"
CATEGORIES = [
    ("matmul (linear layers, fwd+bwd)", ("aten::addmm", "aten::mm")),
    ("attention: QK^T and PV (bmm)", ("aten::bmm", "aten::baddbmm")),
    ("dropout (masks + multiply)", ("aten::bernoulli_", "aten::native_dropout", "aten::native_dropout_backward",
                                    "aten::dropout", "aten::div_")),
    ("softmax", ("aten::_softmax", "aten::_softmax_backward_data")),
    ("layer norm", ("aten::native_layer_norm", "aten::native_layer_norm_backward")),
    ("GELU", ("aten::gelu", "aten::gelu_backward")),
    ("optimizer (Adam)", ("aten::_foreach", "aten::addcmul_", "aten::addcdiv_", "aten::lerp_", "aten::sqrt")),
    ("copies, adds, reshapes", ("aten::copy_", "aten::add", "aten::add_", "aten::mul", "aten::clone",
                                "aten::contiguous", "aten::cat", "aten::sum", "aten::fill_", "aten::zero_")),
]


def category(name: str) -> str:
    for label, prefixes in CATEGORIES:
        if any(name == p or name.startswith(p + "_") or name.startswith(p + ".") for p in prefixes):
            return label
    return "other"


def step(model: torch.nn.Module, batch: dict, optimizer: torch.optim.Optimizer) -> None:
    loss = F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def seconds_per_step(model, batch, optimizer, steps: int) -> float:
    step(model, batch, optimizer)  # warm-up
    started = time.perf_counter()
    for _ in range(steps):
        step(model, batch, optimizer)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time the step under torch.compile")
    args = parser.parse_args()
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    cfg = OmegaConf.merge(OmegaConf.structured(DataConfig),
                          {"source": imdb_dir(), "train_size": args.batch, "valid_size": 32, "test_size": 32})
    splits = load_splits(cfg)
    with tempfile.TemporaryDirectory() as cache:
        encoded = tokenize_splits(splits, tokenizer, args.max_length, cache)
    loader = make_loader(encoded["train"], args.batch, tokenizer.pad_token_id, args.max_length, "dynamic")
    batch = {k: v for k, v in next(iter(loader)).items() if k != "item"}
    real_tokens = int(batch["attention_mask"].sum())

    model = SequenceClassifier(load_encoder(minilm_dir()))
    params = sum(p.numel() for n, p in model.encoder.named_parameters()
                 if "embeddings" not in n and "pooler" not in n)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-5)
    matmul = matmul_flops()

    model.train()
    train_s = seconds_per_step(model, batch, optimizer, args.steps)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step(model, batch, optimizer)
    model.eval()  # dropout off: what the step would cost without it (never how to train)
    eval_s = seconds_per_step(model, batch, optimizer, args.steps)
    if args.compile:
        model.train()
        model.compile(dynamic=None)
        started = time.perf_counter()
        step(model, batch, optimizer)
        compile_s = time.perf_counter() - started
        compiled_s = seconds_per_step(model, batch, optimizer, args.steps)

    totals: dict[str, float] = defaultdict(float)
    ops: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        totals[category(event.key)] += event.self_cpu_time_total
        ops[event.key] += event.self_cpu_time_total
    everything = sum(totals.values())
    useful = 6 * params * real_tokens / train_s
    print(f"MiniLM-L6, batch {tuple(batch['input_ids'].shape)} ({real_tokens} real tokens), fp32, "
          f"{torch.get_num_threads()} threads; fp32 matmul measured now: {matmul / 1e9:.0f} GFLOP/s")
    print(f"training step (dropout on): {train_s:.3f} s -> useful compute {useful / 1e9:.0f} GFLOP/s "
          f"= {useful / matmul:.0%} of matmul")
    print(f"same step with dropout off: {eval_s:.3f} s ({train_s / eval_s:.2f}x faster); "
          f"useful compute would be {useful * train_s / eval_s / matmul:.0%} of matmul")
    if args.compile:
        print(f"same step under torch.compile: {compiled_s:.3f} s ({train_s / compiled_s:.2f}x the eager step), "
              f"after {compile_s:.0f} s spent compiling")
    print("\nself CPU time by category (profiled training steps):")
    for label, micros in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {label:34s} {micros / 1e6 / args.steps:7.3f} s/step  {micros / everything:5.1%}")
    print("\nten most expensive ops:")
    for name, micros in sorted(ops.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {name:40s} {micros / 1e6 / args.steps:7.3f} s/step  {micros / everything:5.1%}")
    linear_flops = 6 * params * batch["input_ids"].numel()
    mm = totals[CATEGORIES[0][0]] / 1e6 / args.steps
    print(f"\nlinear layers alone run at {linear_flops / mm / 1e9:.0f} GFLOP/s "
          f"({linear_flops / mm / matmul:.0%} of the large square matmul)")


if __name__ == "__main__":
    main()
