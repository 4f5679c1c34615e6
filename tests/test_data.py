"""Data sources, the reference split, dedup, label handling, bad input, the tokenization cache and batching."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, concatenate_datasets
from omegaconf import OmegaConf

from bertcmp.config import DataConfig
from bertcmp.data import classes, collate, full_lengths, load_splits, make_loader, read_source, tokenize_splits
from bertcmp.errors import DataError
from bertcmp.model import train_tokenizer
from bertcmp.synthetic import make_reviews


def data_cfg(**overrides):
    cfg = OmegaConf.structured(DataConfig)
    return OmegaConf.merge(cfg, overrides)


def columns(n: int, seed: int) -> dict:
    reviews = make_reviews(n, seed)
    # make every text unique so splits can be compared by text
    return {"text": [f"{t} review {seed}-{i}." for i, t in enumerate(reviews["text"])], "label": reviews["label"]}


@pytest.fixture(scope="module")
def imdb_like(tmp_path_factory) -> Path:
    """The Hub's layout, as in ../shared/data/imdb: plain_text/{train,test}-00000-of-00001.parquet."""
    root = tmp_path_factory.mktemp("imdb")
    (root / "plain_text").mkdir()
    for split, seed in (("train", 1), ("test", 2)):
        Dataset.from_dict(columns(500, seed)).to_parquet(str(root / "plain_text" / f"{split}-00000-of-00001.parquet"))
    return root


def write_aclimdb(root: Path, splits: dict) -> Path:
    for split, cols in splits.items():
        for i, (text, label) in enumerate(zip(cols["text"], cols["label"])):
            folder = root / "aclImdb" / split / ("pos" if label else "neg")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}_{8 if label else 2}.txt").write_text(text, encoding="utf-8")
    (root / "aclImdb" / "train" / "unsup").mkdir(exist_ok=True)
    (root / "aclImdb" / "train" / "unsup" / "0_0.txt").write_text("no label here")
    return root / "aclImdb"


def test_pooled_split_is_the_reference_recipe(imdb_like):
    splits = load_splits(data_cfg(source=str(imdb_like)))
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [900, 50, 50]
    # the reference recipe (README: The reference experiment), written out by hand
    raw = read_source(str(imdb_like), "text", "label")
    pooled = concatenate_datasets([raw["train"], raw["test"]])
    first = pooled.train_test_split(test_size=0.1, seed=42)
    second = first["test"].train_test_split(test_size=0.5, seed=42)
    assert splits["train"]["text"] == first["train"]["text"]
    assert splits["valid"]["text"] == second["train"]["text"]
    assert splits["test"]["text"] == second["test"]["text"]
    # index is the row id in the pooled data, and the splits are disjoint and cover everything
    ids = [set(splits[s]["index"]) for s in ("train", "valid", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set.union(*ids) == set(range(1000))
    for row in splits["test"].select(range(5)):
        assert pooled[row["index"]]["text"] == row["text"]


def test_split_sizes_as_counts(imdb_like):
    splits = load_splits(data_cfg(source=str(imdb_like), valid_size=30, test_size=20))
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [950, 30, 20]


def test_official_split_keeps_the_test_set(imdb_like):
    splits = load_splits(data_cfg(source=str(imdb_like), split="official", valid_size=0.1))
    assert len(splits["test"]) == 500 and splits["test"]["index"] == list(range(500))
    assert len(splits["valid"]) == 50 and len(splits["train"]) == 450
    assert not set(splits["train"]["text"]) & set(splits["test"]["text"])


def test_official_split_with_a_count_for_validation(imdb_like):
    splits = load_splits(data_cfg(source=str(imdb_like), split="official", valid_size=30))  # test_size unread
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [470, 30, 500]


def test_split_does_not_depend_on_the_training_seed(imdb_like):
    a = load_splits(data_cfg(source=str(imdb_like)))
    b = load_splits(data_cfg(source=str(imdb_like), split_seed=7))
    assert a["test"]["index"] != b["test"]["index"]  # split_seed moves the split; `seed` is not read here


def test_train_size_caps_training_only(imdb_like):
    splits = load_splits(data_cfg(source=str(imdb_like), train_size=100))
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [100, 50, 50]


def test_aclimdb_folder_reads_like_the_hub_copy(tmp_path, imdb_like):
    raw = read_source(str(imdb_like), "text", "label")
    # Stanford's folders hold positives and negatives apart; the Hub's copy lists positives first
    ordered = {}
    for s in ("train", "test"):
        labels = raw[s]["label"]
        rows = [i for i, y in enumerate(labels) if y == 1] + [i for i, y in enumerate(labels) if y == 0]
        ordered[s] = raw[s].select(rows).to_dict()
    acl = write_aclimdb(tmp_path, ordered)
    for root in (acl, acl.parent):
        got = read_source(str(root), "text", "label")
        assert set(got) == {"train", "test"}
        assert got["train"]["text"] == ordered["train"]["text"]
        assert got["test"]["label"] == ordered["test"]["label"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_files_with_string_labels_and_own_columns(tmp_path, suffix):
    cols = columns(200, 3)
    names = ["negative", "positive"] if suffix != ".jsonl" else ["neg", "pos"]
    ds = Dataset.from_dict({"review": cols["text"], "sentiment": [names[y] for y in cols["label"]]})
    for split, part in (("train", ds.select(range(150))), ("test", ds.select(range(150, 200)))):
        path = tmp_path / f"{split}{suffix}"
        {".csv": part.to_csv, ".jsonl": part.to_json, ".parquet": part.to_parquet}[suffix](str(path))
    raw = read_source([str(tmp_path / f"train{suffix}"), str(tmp_path / f"test{suffix}")], "review", "sentiment")
    assert len(raw["train"]) == 150 and len(raw["test"]) == 50
    assert raw["train"]["label"] == cols["label"][:150]
    splits = load_splits(data_cfg(source=str(tmp_path / f"*{suffix}"), text_column="review",
                                  label_column="sentiment", split="official", valid_size=0.2))
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [120, 30, 50]


def test_one_file_is_pooled(tmp_path):
    path = tmp_path / "reviews.csv"
    Dataset.from_dict(columns(100, 4)).to_csv(str(path))
    splits = load_splits(data_cfg(source=str(path), valid_size=0.1, test_size=0.1))
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [80, 10, 10]
    with pytest.raises(DataError, match="data.split=official needs a train and a test split"):
        load_splits(data_cfg(source=str(path), split="official"))


def test_dedup_keeps_every_text_in_one_split(tmp_path):
    cols = columns(300, 5)
    cols["text"][100:200] = cols["text"][0:100]  # a third of the texts appear twice
    cols["label"][100:200] = cols["label"][0:100]
    path = tmp_path / "dupes.parquet"
    Dataset.from_dict(cols).to_parquet(str(path))
    kept = load_splits(data_cfg(source=str(path), valid_size=0.1, test_size=0.1))
    assert sum(len(kept[s]) for s in kept) == 300
    deduped = load_splits(data_cfg(source=str(path), valid_size=0.1, test_size=0.1, dedup=True))
    assert sum(len(deduped[s]) for s in deduped) == 200
    texts = [set(deduped[s]["text"]) for s in ("train", "valid", "test")]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])


def test_synthetic_is_deterministic_and_balanced():
    a, b = make_reviews(500, 1), make_reviews(500, 1)
    assert a == b and make_reviews(500, 2) != a
    assert sum(a["label"]) == 250
    splits = load_splits(data_cfg(synthetic="reviews", num_examples=500, valid_size=0.1, test_size=0.1))
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [400, 50, 50]


def write_table(path: Path, cols: dict) -> str:
    """The columns as a csv, jsonl or parquet file, by the path's suffix."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(dict(zip(cols, row))) + "\n" for row in zip(*cols.values())))
    elif path.suffix == ".parquet":
        Dataset.from_dict(cols).to_parquet(str(path))
    else:
        Dataset.from_dict(cols).to_csv(str(path))
    return str(path)


@pytest.mark.parametrize("change, message", [
    (dict(text_column="review"), "data.text_column='review' is not a column"),
    (dict(label_column="stars"), "data.label_column='stars' is not a column"),
    (dict(source="/nonexistent/reviews.csv"), "does not exist"),
    (dict(source="./no/such/dir"), "does not exist"),
    (dict(source="/nonexistent/*.csv"), "matches no file"),
    (dict(valid_size=60, test_size=60), "leaves no room for training"),
])
def test_bad_input_names_the_problem(tmp_path, change, message):
    source = write_table(tmp_path / "train.csv", columns(100, 6))
    with pytest.raises(DataError, match=message):
        load_splits(data_cfg(**{"source": source, **change}))


TOPICS = ["world", "sports", "business", "science"]


def topic_table(n: int, seed: int) -> dict:
    cols = columns(n, seed)
    cols["label"] = [TOPICS[(i * 7 + seed) % 4] for i in range(n)]
    return cols


def test_string_labels_are_classes_in_one_sorted_order(tmp_path):
    train = write_table(tmp_path / "train.csv", topic_table(200, 1))
    test_cols = topic_table(40, 2)
    test_cols["label"] = ["world"] * 40  # one class only: the order must still come from every split together
    test = write_table(tmp_path / "test.csv", test_cols)
    splits = load_splits(data_cfg(source=[train, test], split="official", valid_size=40))
    assert classes(splits) == sorted(TOPICS)
    for name in ("train", "valid", "test"):
        assert splits[name].features["label"].names == sorted(TOPICS)
    by_text = dict(zip(topic_table(200, 1)["text"], topic_table(200, 1)["label"]))
    assert all(sorted(TOPICS)[y] == by_text[t] for t, y in zip(splits["train"]["text"], splits["train"]["label"]))
    assert set(splits["test"]["label"]) == {sorted(TOPICS).index("world")}


@pytest.mark.parametrize("values, names, ids", [
    ([3, 1, 5, 1], ["1", "3", "5"], [1, 0, 2, 0]),           # whole numbers: numeric order
    (["10", "9", "10", "9"], ["9", "10"], [1, 0, 1, 0]),     # written as text: still numbers
    ([1.0, 0.0, 1.0, 0.0], ["0", "1"], [1, 0, 1, 0]),        # as pandas writes ints next to a gap
    (["pos", "neg", "Pos", "neg"], ["Pos", "neg"], None),     # the conventions, any case: negative first
    ([True, False, True, False], ["false", "true"], [1, 0, 1, 0]),
    (["b", "a", "c", "a"], ["a", "b", "c"], [1, 0, 2, 0]),
])
def test_label_values_become_class_ids(values, names, ids):
    from bertcmp.data import _label_value, label_classes

    clean = [_label_value(v, "label", "train", i) for i, v in enumerate(values)]
    found, class_of = label_classes({"train": clean}, "label")
    if ids is None:  # neg / pos: the negative spelling gets 0 whatever its case
        assert [class_of[v] for v in clean] == [1, 0, 1, 0] and len(found) == 2
    else:
        assert found == names and [class_of[v] for v in clean] == ids


@pytest.mark.parametrize("names", [["neg", "pos"], ["World", "Sports", "Business", "Sci/Tech"]])
def test_hub_class_names_are_kept_in_their_order(tmp_path, names):
    from datasets import ClassLabel, Features, Value

    cols = columns(100, 3)
    cols["label"] = [i % len(names) for i in range(100)]
    features = Features({"text": Value("string"), "label": ClassLabel(names=names)})
    Dataset.from_dict(cols, features=features).to_parquet(str(tmp_path / "train.parquet"))
    splits = load_splits(data_cfg(source=str(tmp_path / "train.parquet")))
    assert classes(splits) == names  # AG News' order, not sorted
    assert splits["train"]["label"] == [cols["label"][i] for i in splits["train"]["index"]]


@pytest.mark.parametrize("labels, message", [
    ([1] * 90, r"training split \(81 examples\) holds only class '1'; a classifier needs two classes or more"),
    ([f"id{i}" for i in range(1500)], "has 1500 distinct values .* probably not a label column"),
    ([0.5] * 90, "label 0.5 at row 0 of the train split; labels must be class names or whole numbers"),
    ([None] + [1] * 89, "no label at row 0 of the train split"),
])
def test_bad_labels_are_named(tmp_path, labels, message):
    cols = columns(len(labels), 7)
    cols["label"] = labels
    with pytest.raises(DataError, match=message):
        load_splits(data_cfg(source=write_table(tmp_path / "train.jsonl", cols)))


def test_one_training_example_says_one_class(tmp_path):
    with pytest.raises(DataError, match=r"training split \(1 examples\) holds only class"):
        load_splits(data_cfg(synthetic="reviews", num_examples=100, train_size=1))


def test_a_split_without_a_class_warns(tmp_path, caplog):
    train_cols, test_cols = topic_table(200, 1), topic_table(40, 2)
    test_cols["label"] = ["world", "sports"] * 20
    sources = [write_table(tmp_path / "train.csv", train_cols), write_table(tmp_path / "test.csv", test_cols)]
    load_splits(data_cfg(source=sources, split="official", valid_size=40))
    assert "the test split has no example of class 'business', 'science'" in caplog.text


def pair_table(n: int, seed: int) -> dict:
    """An NLI-like pair task: the hypothesis repeats a word of the premise (entailment) or not."""
    cols = columns(n, seed)
    words = [t.split()[1] for t in cols["text"]]
    hypotheses = [f"it says {w}." if i % 2 else f"it never says zebra{i}." for i, w in enumerate(words)]
    return {"premise": cols["text"], "hypothesis": hypotheses,
            "label": ["entailment" if i % 2 else "neutral" for i in range(n)]}


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_pairs_are_read_from_every_file_format(tmp_path, suffix):
    cols = pair_table(120, 4)
    source = write_table(tmp_path / f"train{suffix}", cols)
    splits = load_splits(data_cfg(source=source, text_column="premise", text_pair_column="hypothesis"))
    row = splits["train"][0]
    assert row["text"] == cols["premise"][row["index"]] and row["text_pair"] == cols["hypothesis"][row["index"]]
    assert classes(splits) == ["entailment", "neutral"]


def test_a_missing_pair_column_is_named(tmp_path):
    source = write_table(tmp_path / "train.csv", pair_table(60, 4))
    with pytest.raises(DataError, match="data.text_pair_column='claim' is not a column"):
        load_splits(data_cfg(source=source, text_column="premise", text_pair_column="claim"))


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


def test_empty_texts_are_rejected(tmp_path):
    cols = columns(90, 8)
    cols["text"][17] = "   "
    with pytest.raises(DataError, match="empty text.*first at row 17"):
        load_splits(data_cfg(source=str(Path(write_table(tmp_path / "train.csv", cols)))))


def test_unreachable_hub_id_says_what_to_do():
    with pytest.raises(DataError, match="not a local path and could not be loaded from the Hugging Face Hub"):
        load_splits(data_cfg(source="nobody/no-such-dataset"))


# ---------------------------------------------------------------------------------------------- tokenizing


class CountingTokenizer:
    """Wraps a tokenizer; `calls` counts how often bertcmp.data encodes with it."""

    def __init__(self, tokenizer, monkeypatch):
        import bertcmp.data

        self.tokenizer, self.calls = tokenizer, 0
        self.backend_tokenizer = tokenizer.backend_tokenizer
        self.model_input_names = tokenizer.model_input_names
        real = bertcmp.data.encode_texts

        def counting(texts, tok, max_length, *args):
            if tok is self:
                self.calls += 1
            return real(texts, tok, max_length, *args)

        monkeypatch.setattr(bertcmp.data, "encode_texts", counting)


@pytest.fixture(scope="module")
def splits():
    return load_splits(data_cfg(synthetic="reviews", num_examples=300, valid_size=0.1, test_size=0.1))


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


def damage_truncated(path):
    path.write_bytes(path.read_bytes()[:-7])


def damage_garbage(path):
    path.write_bytes(b"\x00garbage" * 10)


def damage_missing(path):
    path.unlink()


def damage_flipped_labels(path):  # well-formed, but not what was written
    np.save(path, 1 - np.load(path))


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


def padded_fraction(batches, lengths) -> float:
    real = sum(int(lengths[b].sum()) for b in batches)
    return 1 - real / sum(len(b) * int(lengths[b].max()) for b in batches)


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


def test_a_malformed_jsonl_line_is_named(tmp_path):
    path = tmp_path / "train.jsonl"
    lines = [json.dumps({"text": f"review {i}", "label": i % 2}) for i in range(40)]
    lines[2] = '{"text": "cut short", "label": '
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"{path}, line 3 is not valid JSON; each line of a .jsonl file must be one"):
        load_splits(data_cfg(source=str(path)))


def test_a_directory_without_data_files_says_so(tmp_path):
    (tmp_path / "README.md").write_text("# my data\nlabel: 0 or 1\n")
    with pytest.raises(DataError, match=f"data.source='{tmp_path}': no data files in this directory"):
        load_splits(data_cfg(source=str(tmp_path)))


# ---------------------------------------------------------------------------------------------- values as the file holds them


def test_a_jsonl_column_of_mixed_types_is_read_as_written(tmp_path):
    cols = columns(80, 8)
    cols["label"] = [[1, "pos", 0, "neg"][i % 4] for i in range(80)]
    cols["text"][5] = 12345  # one numeric text: it is the text "12345", and the others keep no quotes
    raw = read_source(write_table(tmp_path / "train.jsonl", cols), "text", "label")
    # the usual two-class spellings, mixed: 0 and neg are one class, 1 and pos the other (no JSON quotes)
    assert raw["train"].features["label"].names == ["0", "1"] and raw["train"]["label"][:4] == [1, 1, 0, 0]
    cols["label"] = [[1, "sports", 2, "world"][i % 4] for i in range(80)]
    raw = read_source(write_table(tmp_path / "train.jsonl", cols), "text", "label")
    assert raw["train"].features["label"].names == ["1", "2", "sports", "world"]
    texts = raw["train"]["text"]
    assert texts[5] == "12345" and texts[0] == cols["text"][0] and not any(t.startswith('"') for t in texts)


def test_na_none_and_null_are_values_and_only_an_empty_cell_is_missing(tmp_path):
    rows = [("NA", "NA"), ("None", "pos"), ("null", "NA"), ("007", "pos")] * 20
    path = tmp_path / "train.csv"
    path.write_text("text,label\n" + "".join(f"{t} {i},{y}\n" if i else f"{t},{y}\n" for i, (t, y) in enumerate(rows)))
    raw = read_source(str(path), "text", "label")
    assert raw["train"].features["label"].names == ["NA", "pos"]
    assert raw["train"]["text"][:4] == ["NA", "None 1", "null 2", "007 3"]
    path.write_text("text,label\na film,pos\n,neg\n")
    with pytest.raises(DataError, match="1 empty text"):
        read_source(str(path), "text", "label")


def test_labels_mixing_numbers_and_names_are_ordered_as_text(tmp_path):
    cols = columns(80, 9)
    cols["label"] = [["pos", "1", "2", "neg"][i % 4] for i in range(80)]
    raw = read_source(write_table(tmp_path / "train.csv", cols), "text", "label")
    assert raw["train"].features["label"].names == ["1", "2", "neg", "pos"]


@pytest.mark.parametrize("content, message", [
    ("", "{path} is empty"),
    ("text,label\n", r"{path} has a header \(text,label\) but no rows"),
])
def test_an_empty_or_header_only_file_is_named(tmp_path, content, message):
    path = tmp_path / "train.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message.format(path=path)):
        load_splits(data_cfg(source=str(path)))


def test_official_split_uses_the_sources_validation_file(tmp_path):
    train = write_table(tmp_path / "train.csv", topic_table(200, 1))
    valid_cols = topic_table(30, 3)
    valid = write_table(tmp_path / "valid.csv", valid_cols)
    test = write_table(tmp_path / "test.csv", topic_table(40, 2))
    splits = load_splits(data_cfg(source=[train, valid, test], split="official", valid_size=0.5))
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [200, 30, 40]  # valid_size is not used
    assert splits["valid"]["text"] == valid_cols["text"]


def test_a_test_file_without_the_pair_column_is_named(tmp_path):
    cols = columns(60, 5)
    train = write_table(tmp_path / "train.csv", {**cols, "second": cols["text"][::-1]})
    test = write_table(tmp_path / "test.csv", columns(20, 6))
    with pytest.raises(DataError, match=r"data.text_pair_column='second' is not a column of .* \(test split has: "
                                        r"text, label\)"):
        load_splits(data_cfg(source=[train, test], split="official", text_pair_column="second"))


# ---------------------------------------------------------------------------------------------- -1: no label


def glue_like(root: Path, n: int = 120) -> Path:
    """GLUE SST-2 in the Hub's layout: sentence / label / idx, a ClassLabel, and a test split whose labels are -1."""
    from datasets import ClassLabel, Features, Value

    features = Features({"sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"]),
                         "idx": Value("int32")})
    (root / "sst2").mkdir(parents=True)
    for split, seed, hidden in (("train", 1, False), ("validation", 2, False), ("test", 3, True)):
        cols = columns(n, seed)
        labels = [-1] * n if hidden else cols["label"]
        Dataset.from_dict({"sentence": cols["text"], "label": labels, "idx": list(range(n))},
                          features=features).to_parquet(str(root / "sst2" / f"{split}-00000-of-00001.parquet"))
    return root


def test_minus_one_is_no_label_and_a_hidden_test_split_is_named(tmp_path):
    source = str(glue_like(tmp_path / "glue"))
    raw = read_source(source, "sentence", "label")
    assert raw["train"].features["label"].names == ["negative", "positive"]  # -1 is never a class
    assert len(raw["test"]) == 0 and len(raw["train"]) == 120
    with pytest.raises(DataError, match=r"data.split=official: the test split of data.source='.*' has no labels "
                                        r"\(every label is -1, hidden as in GLUE's test sets\), so it cannot score a "
                                        r"run; use data.test_split=validation"):
        load_splits(data_cfg(source=source, text_column="sentence", split="official"))
    splits = load_splits(data_cfg(source=source, text_column="sentence", split="official", test_split="validation",
                                  valid_size=20))
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [100, 20, 120]
    assert set(splits["test"]["text"]) == set(columns(120, 2)["text"])  # the validation split scores
    pooled = load_splits(data_cfg(source=source, text_column="sentence", valid_size=0.1, test_size=0.1))
    assert sum(len(pooled[s]) for s in ("train", "valid", "test")) == 240  # the unlabelled rows never train


def test_some_unlabelled_rows_are_left_out_with_a_count(tmp_path, caplog):
    cols = columns(100, 4)
    cols["label"] = [-1 if i % 10 == 0 else y for i, y in enumerate(cols["label"])]
    cols["text"][0] = ""  # an unlabelled row is not checked: it is not used
    with caplog.at_level(logging.WARNING):
        raw = read_source(write_table(tmp_path / "train.csv", cols), "text", "label")
    assert len(raw["train"]) == 90 and raw["train"].features["label"].names == ["0", "1"]
    assert "10 row(s) of its train split are labelled -1 (no label): left out" in caplog.text


def glue_repo(root: Path, n: int = 60) -> Path:
    """A local snapshot of a multi-configuration Hub set as GLUE's repo holds it: a folder per configuration and a
    README whose `configs:` block maps each configuration's splits to its files (MNLI's test set:
    validation_matched)."""
    from datasets import ClassLabel, Features, Value

    glue_like(root, n)
    features = Features({"premise": Value("string"), "hypothesis": Value("string"),
                         "label": ClassLabel(names=["entailment", "neutral", "contradiction"]), "idx": Value("int32")})
    (root / "mnli").mkdir()
    for split, seed in (("train", 4), ("validation_matched", 5), ("validation_mismatched", 6)):
        cols = columns(n, seed)
        Dataset.from_dict({"premise": cols["text"], "hypothesis": cols["text"][::-1],
                           "label": [i % 3 for i in range(n)], "idx": list(range(n))},
                          features=features).to_parquet(str(root / "mnli" / f"{split}-00000-of-00001.parquet"))
    blocks = {"sst2": ("train", "validation", "test"),
              "mnli": ("train", "validation_matched", "validation_mismatched")}
    lines = ["---", "configs:"]
    for name, splits in blocks.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: {name}/{split}-*" for split in splits]
    (root / "README.md").write_text("\n".join([*lines, "---", "# GLUE, a few rows"]) + "\n")
    return root


def test_a_configuration_of_a_multi_configuration_set(tmp_path):
    source = str(glue_repo(tmp_path / "glue"))
    with pytest.raises(DataError, match="has several configurations .* set data.config, e.g. sst2 for GLUE"):
        load_splits(data_cfg(source=source, text_column="sentence"))
    sst2 = load_splits(data_cfg(source=source, config="sst2", text_column="sentence", split="official",
                                test_split="validation", valid_size=10))
    assert [len(sst2[s]) for s in ("train", "valid", "test")] == [50, 10, 60] and classes(sst2) == ["negative",
                                                                                                     "positive"]
    mnli = load_splits(data_cfg(source=source, config="mnli", text_column="premise", text_pair_column="hypothesis",
                                split="official", test_split="validation_matched", valid_size=10))
    assert classes(mnli) == ["entailment", "neutral", "contradiction"] and len(mnli["test"]) == 60
    assert set(mnli["test"]["text"]) == set(columns(60, 5)["text"])  # validation_matched scores
    with pytest.raises(DataError, match="data.config='sst2' names a configuration of a Hub set"):
        load_splits(data_cfg(source=write_table(tmp_path / "train.csv", columns(50, 1)), config="sst2"))


def test_a_missing_local_source_is_named_before_data_config_is_questioned(tmp_path):
    """A folder that is not there says so, not that data.config does not apply to files (benchmark_smoke's copies
    not yet written gave that message)."""
    with pytest.raises(DataError, match=r"data.source='.*/fixtures/sst2' does not exist"):
        read_source(str(tmp_path / "fixtures" / "sst2"), "sentence", "label", config="sst2")
