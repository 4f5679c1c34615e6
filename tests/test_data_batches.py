"""Batches: padding, masks, token type ids, length grouping, and a reproducible order."""


import numpy as np

from bertcmp.data import collate, load_splits, make_loader, tokenize_splits
from bertcmp.model import train_tokenizer
from data_helpers import data_cfg, padded_fraction, pair_table, write_table


def test_pair_batches_carry_token_type_ids(tmp_path):
    cols = pair_table(100, 6)
    source = write_table(tmp_path / "train.csv", cols)
    splits = load_splits(data_cfg(source=source, text_column="premise", text_pair_column="hypothesis"))
    tokenizer = train_tokenizer("bert", cols["premise"], 300)
    encoded = tokenize_splits(splits, tokenizer, 64, tmp_path / "cache")
    batch = collate(range(4), encoded["test"], tokenizer.pad_token_id, None)
    first = tokenizer(splits["test"][0]["text"], splits["test"][0]["text_pair"], truncation=True, max_length=64)
    width = len(first["input_ids"])
    assert batch["input_ids"][0, :width].tolist() == first["input_ids"]
    assert batch["token_type_ids"][0, :width].tolist() == first["token_type_ids"]
    assert batch["token_type_ids"][0, width:].sum() == 0


def test_collate_pads_and_masks(splits, tmp_path):
    tokenizer = train_tokenizer("bert", splits["train"]["text"], 300)
    enc = tokenize_splits(splits, tokenizer, 32, tmp_path)["valid"]
    items = [0, 1, 2]
    fixed = collate(items, enc, tokenizer.pad_token_id, pad_to=32)
    dynamic = collate(items, enc, tokenizer.pad_token_id, pad_to=None)
    lengths = enc.lengths[items]
    assert fixed["input_ids"].shape == (3, 32) and dynamic["input_ids"].shape == (3, lengths.max())
    assert fixed["attention_mask"].sum(1).tolist() == lengths.tolist()
    assert (fixed["input_ids"][fixed["attention_mask"] == 0] == tokenizer.pad_token_id).all()
    assert fixed["input_ids"][:, 0].tolist() == [tokenizer.cls_token_id] * 3
    assert fixed["labels"].tolist() == enc.labels[items].tolist()
    text = splits["valid"][0]["text"]
    assert fixed["input_ids"][0, : lengths[0]].tolist() == tokenizer(text, truncation=True, max_length=32)["input_ids"]


def test_loader_order_is_reproducible(splits, tmp_path):
    tokenizer = train_tokenizer("bert", splits["train"]["text"], 300)
    enc = tokenize_splits(splits, tokenizer, 32, tmp_path)["train"]
    def order(seed: int) -> list:
        return [b["labels"].tolist() for b in make_loader(enc, 16, 0, 32, shuffle=True, seed=seed)]

    assert order(1) == order(1) and order(1) != order(2)
    plain = make_loader(enc, 16, 0, 32, shuffle=False)
    assert [x for b in plain for x in b["labels"].tolist()] == enc.labels.tolist()


def test_length_grouped_batches_cover_every_item_once_and_cut_padding():
    import torch
    from bertcmp.data import LengthGroupedBatches

    lengths = np.random.default_rng(0).integers(10, 512, 5000)
    sampler = LengthGroupedBatches(lengths, 32, torch.Generator().manual_seed(1), pool_batches=50)
    epoch1, epoch2 = list(sampler), list(sampler)
    assert len(epoch1) == len(sampler) == 157
    assert sorted(i for b in epoch1 for i in b) == list(range(5000))
    assert epoch1 != epoch2  # a new order every epoch
    again = LengthGroupedBatches(lengths, 32, torch.Generator().manual_seed(1), pool_batches=50)
    assert list(again) == epoch1  # ... reproducible from the seed
    random_batches = [list(range(i, min(i + 32, 5000))) for i in range(0, 5000, 32)]
    assert padded_fraction(random_batches, lengths) > 0.4
    assert padded_fraction(epoch1, lengths) < 0.05
    # shuffled, not one global sort: long and short batches are interleaved
    widths = [int(lengths[b].max()) for b in epoch1]
    assert widths != sorted(widths) and widths != sorted(widths, reverse=True)


def test_dynamic_loaders(splits, tmp_path):
    tokenizer = train_tokenizer("bert", splits["train"]["text"], 300)
    enc = tokenize_splits(splits, tokenizer, 64, tmp_path)
    train = list(make_loader(enc["train"], 16, tokenizer.pad_token_id, 64, padding="dynamic", shuffle=True, seed=3))
    assert sorted(int(i) for b in train for i in b["item"]) == list(range(len(enc["train"])))
    assert all(b["input_ids"].shape[1] == int(b["attention_mask"].sum(1).max()) for b in train)
    evaluation = list(make_loader(enc["valid"], 8, tokenizer.pad_token_id, 64, padding="dynamic"))
    widths = [b["input_ids"].shape[1] for b in evaluation]
    assert widths == sorted(widths, reverse=True)
