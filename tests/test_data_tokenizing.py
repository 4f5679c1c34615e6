"""Tokenizing: the tokenizer's own ids however texts are cut, and the cache read by every later run."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from bertcmp.data import full_lengths, tokenize_splits
from bertcmp.model import train_tokenizer
from bertcmp.synthetic import make_reviews
from data_helpers import CountingTokenizer, damage_flipped_labels, damage_garbage, damage_missing, damage_truncated, pair_table


@pytest.mark.parametrize("family", ["bert", "modernbert"])
def test_pairs_are_encoded_as_the_tokenizer_does(family):
    from bertcmp.data import encode_pairs

    cols = pair_table(80, 5)
    premises = [p * (1 + 3 * (i % 2)) for i, p in enumerate(cols["premise"])]  # half longer than max_length
    tokenizer = train_tokenizer(family, premises, 300)
    got = encode_pairs(premises, cols["hypothesis"], tokenizer, 96)
    want = tokenizer(premises, cols["hypothesis"], truncation=True, max_length=96, return_token_type_ids=True)
    assert got.ids == want["input_ids"]
    assert got.truncated == [n > 96 for n in full_lengths(premises, tokenizer, cols["hypothesis"])]
    assert any(got.truncated) and not all(got.truncated)
    if family == "bert":  # BERT reads which text a token comes from; ModernBERT does not
        assert got.type_ids == want["token_type_ids"] and any(1 in t for t in got.type_ids)
    else:
        assert got.type_ids is None


def test_tokenized_once_then_read_from_cache(splits, tmp_path, monkeypatch):
    tokenizer = CountingTokenizer(train_tokenizer("bert", splits["train"]["text"], 300), monkeypatch)
    first = tokenize_splits(splits, tokenizer, 32, tmp_path)
    assert tokenizer.calls == 3  # one batch per split
    second = tokenize_splits(splits, tokenizer, 32, tmp_path)
    assert tokenizer.calls == 3
    for name in ("train", "valid", "test"):
        assert np.array_equal(first[name].ids, second[name].ids)
        assert np.array_equal(first[name].index, np.asarray(splits[name]["index"]))
    assert first["train"].lengths.max() <= 32
    tokenize_splits(splits, tokenizer, 16, tmp_path)  # another max_length is another entry
    assert tokenizer.calls == 6
    tokenize_splits(splits, tokenizer, 16, tmp_path, truncation="head_tail", head_tokens=5)  # and truncation
    tokenize_splits(splits, tokenizer, 16, tmp_path, truncation="head_tail", head_tokens=6)
    assert tokenizer.calls == 12
    entries = [p for p in (tmp_path / "tokenized").iterdir() if p.is_dir()]
    assert len(entries) == 4
    assert all(json.loads((p / "meta.json").read_text())["splits"]["train"] == 240 for p in entries)
    assert second["test"].n_tokens is not None and second["train"].n_tokens is None  # whole lengths: test items
    assert np.array_equal(second["train"].truncated, full_lengths(splits["train"]["text"], tokenizer) > 32)


@pytest.mark.parametrize("damage", [damage_truncated, damage_garbage, damage_missing, damage_flipped_labels])
def test_a_damaged_cache_entry_is_rebuilt_with_one_warning(splits, tmp_path, monkeypatch, caplog, damage):
    tokenizer = CountingTokenizer(train_tokenizer("bert", splits["train"]["text"], 300), monkeypatch)
    first = tokenize_splits(splits, tokenizer, 32, tmp_path)
    [entry] = [p for p in (tmp_path / "tokenized").iterdir() if p.is_dir()]
    damage(entry / "train.labels.npy")
    again = tokenize_splits(splits, tokenizer, 32, tmp_path)
    assert tokenizer.calls == 6  # tokenized again
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(f"tokenized data cache {entry} is damaged (")
    assert "train.labels.npy" in warnings[0] and warnings[0].endswith("): tokenizing again")
    for name in ("train", "valid", "test"):
        assert np.array_equal(again[name].labels, first[name].labels)
        assert np.array_equal(again[name].ids, first[name].ids)
    tokenize_splits(splits, tokenizer, 32, tmp_path)
    assert tokenizer.calls == 6  # the rebuilt entry is whole


def test_half_written_cache_entries_of_dead_processes_are_removed(splits, tmp_path):
    from filelock import FileLock

    tokenizer = train_tokenizer("bert", splits["train"]["text"], 300)
    root = tmp_path / "tokenized"
    root.mkdir()
    for name in (".aaaa.tmp123", "bbbb.tmp456", ".cccc.tmp789"):  # bertcmp 0.2 wrote them without the dot
        (root / name).mkdir()
        (root / name / "train.ids.npy").write_bytes(b"half")
    with FileLock(str(root / "cccc.lock")):  # being written now, by a live process
        tokenize_splits(splits, tokenizer, 32, tmp_path)
    assert sorted(p.name for p in root.glob("*.tmp*")) == [".cccc.tmp789"]


def test_a_full_disk_under_the_cache_is_one_line_and_leaves_nothing(splits, tmp_path, monkeypatch):
    import errno

    from bertcmp.errors import NoSpaceError

    tokenizer = train_tokenizer("bert", splits["train"]["text"], 300)

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(NoSpaceError, match=f"no space left on the disk holding {tmp_path / 'tokenized'} "):
        tokenize_splits(splits, tokenizer, 32, tmp_path)
    assert [p.name for p in (tmp_path / "tokenized").iterdir()] == [p.name for p in
                                                                    (tmp_path / "tokenized").glob("*.lock")]


def test_cache_key_changes_with_the_tokenizer(splits, tmp_path, monkeypatch):
    bert = CountingTokenizer(train_tokenizer("bert", splits["train"]["text"], 300), monkeypatch)
    bpe = CountingTokenizer(train_tokenizer("modernbert", splits["train"]["text"], 300), monkeypatch)
    tokenize_splits(splits, bert, 32, tmp_path)
    tokenize_splits(splits, bpe, 32, tmp_path)
    assert bert.calls == 3 and bpe.calls == 3


@pytest.mark.parametrize("family", ["bert", "modernbert"])
@pytest.mark.parametrize("max_length", [16, 64])
def test_fast_encoding_equals_the_tokenizer(family, max_length):
    from bertcmp.data import encode_texts

    reviews = make_reviews(300, 11)["text"]
    long_reviews = [" ".join(reviews[i:i + 8]) for i in range(0, 300, 8)]  # several hundred tokens each
    odd = ["word " * 400, "x" * 3000, "a  b   c " * 300, "!!!! " * 500 + "end", "short", "é" * 50 + " ok " * 300]
    texts = reviews + long_reviews + odd
    tokenizer = train_tokenizer(family, reviews, 300)
    state = tokenizer.backend_tokenizer.to_str()  # with its truncation and padding settings (none yet)
    ids, truncated, _ = encode_texts(texts, tokenizer, max_length)
    assert tokenizer.backend_tokenizer.to_str() == state  # the caller's tokenizer is left as it was
    assert ids == tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    assert truncated == [n > max_length for n in full_lengths(texts, tokenizer)]


@pytest.mark.parametrize("family", ["bert", "modernbert"])
def test_tail_and_head_tail_keep_the_tokenizers_own_ids(family):
    from bertcmp.data import encode_texts

    reviews = make_reviews(300, 12)["text"]
    texts = [" ".join(reviews[i:i + 8]) for i in range(0, 300, 8)] + reviews[:20] + ["a great film.", "dull."]
    tokenizer = train_tokenizer(family, reviews, 300)
    whole = tokenizer(texts, add_special_tokens=False)["input_ids"]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    tail = encode_texts(texts, tokenizer, 40, "tail")
    head_tail = encode_texts(texts, tokenizer, 40, "head_tail", head_tokens=10)
    for i, ids in enumerate(whole):
        if len(ids) <= 38:  # fits: kept whole either way
            assert tail.ids[i] == head_tail.ids[i] == [cls, *ids, sep] and not tail.truncated[i]
        else:
            assert tail.ids[i] == [cls, *ids[-38:], sep] and tail.truncated[i]
            assert head_tail.ids[i] == [cls, *ids[:10], *ids[-28:], sep] and head_tail.truncated[i]
    assert any(tail.truncated) and not all(tail.truncated)
    tokenizer.truncation_side = "left"  # the tokenizer's own tail truncation agrees
    assert tail.ids == tokenizer(texts, truncation=True, max_length=40)["input_ids"]
    assert list(full_lengths(texts, tokenizer)) == [len(ids) + 2 for ids in whole]
