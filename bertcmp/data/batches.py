"""Batches: padded to the longest text of a batch or to max_length, optionally grouped by length."""

from __future__ import annotations

from functools import partial
from typing import Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from bertcmp.data.tokenizing import Encoded


def collate(items: Iterable[int], data: Encoded, pad_id: int, pad_to: int | None) -> dict[str, torch.Tensor]:
    """Pad the chosen items to `pad_to` tokens, or to the longest item when `pad_to` is None. `item` holds
    the items' positions in the split, so results of reordered (length-sorted) batches can be put back."""
    items = np.fromiter(items, dtype=np.int64)
    lengths = data.lengths[items]
    width = pad_to or int(lengths.max())
    attention_mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    batch = {"input_ids": _pad(data.ids, data.offsets[items], lengths, width, pad_id),
             "attention_mask": torch.from_numpy(attention_mask)}
    if data.type_ids is not None:
        batch["token_type_ids"] = _pad(data.type_ids, data.offsets[items], lengths, width, 0)
    return {**batch, "labels": torch.from_numpy(data.labels[items]), "item": torch.from_numpy(items)}


def _pad(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray, width: int, fill: int) -> torch.Tensor:
    rows = np.full((len(starts), width), fill, dtype=np.int64)
    for row, (start, length) in enumerate(zip(starts, lengths)):
        rows[row, :length] = flat[start:start + length]
    return torch.from_numpy(rows)


class LengthGroupedBatches(Sampler[list[int]]):
    """Training batches of reviews of similar length, still shuffled: the items are shuffled, cut into pools
    of `pool_batches` batches, sorted by length within each pool and batched; then the batches are shuffled.
    Padding shrinks to almost nothing while every epoch sees a new order (reproducible from `generator`)."""

    def __init__(self, lengths: np.ndarray, batch_size: int, generator: torch.Generator, pool_batches: int = 50):
        self.lengths, self.batch_size, self.generator = lengths, batch_size, generator
        self.pool = batch_size * pool_batches

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(len(self.lengths), generator=self.generator).numpy()
        batches = []
        for start in range(0, len(order), self.pool):
            pool = order[start:start + self.pool]
            pool = pool[np.argsort(-self.lengths[pool], kind="stable")]
            batches += [pool[i:i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        for i in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[i].tolist()


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[list[int]]:
    """Evaluation batches, longest first: the least padding there can be."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]


def make_loader(data: Encoded, batch_size: int, pad_id: int, max_length: int, padding: str = "max_length",
                shuffle: bool = False, seed: int = 0, pool_batches: int = 50, num_workers: int = 0,
                pin_memory: bool = False) -> DataLoader:
    """Batches of padded tensors. padding="max_length": every batch is max_length wide and training order is
    a plain shuffle (the reference recipe). padding="dynamic": each batch is as wide as its longest item,
    training batches are grouped by length, evaluation batches sorted by it. Shuffles come from `seed`."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    pad = partial(collate, data=data, pad_id=pad_id, pad_to=max_length if padding == "max_length" else None)
    common = dict(collate_fn=pad, num_workers=num_workers, pin_memory=pin_memory, generator=generator)
    if padding == "max_length":
        return DataLoader(range(len(data)), batch_size=batch_size, shuffle=shuffle, **common)
    if shuffle:
        batches = LengthGroupedBatches(data.lengths, batch_size, generator, pool_batches)
    else:
        batches = sorted_batches(data.lengths, batch_size)
    return DataLoader(range(len(data)), batch_sampler=batches, **common)
