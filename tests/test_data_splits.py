"""Splitting: the reference split, official splits, sizes, dedup, and the classes each split holds."""


import pytest
from datasets import Dataset, concatenate_datasets

from bertcmp.data import load_splits, read_source
from bertcmp.errors import DataError
from bertcmp.synthetic import make_reviews
from data_helpers import columns, data_cfg, topic_table, write_table


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


def test_one_training_example_says_one_class(tmp_path):
    with pytest.raises(DataError, match=r"training split \(1 examples\) holds only class"):
        load_splits(data_cfg(synthetic="reviews", num_examples=100, train_size=1))


def test_a_split_without_a_class_warns(tmp_path, caplog):
    train_cols, test_cols = topic_table(200, 1), topic_table(40, 2)
    test_cols["label"] = ["world", "sports"] * 20
    sources = [write_table(tmp_path / "train.csv", train_cols), write_table(tmp_path / "test.csv", test_cols)]
    load_splits(data_cfg(source=sources, split="official", valid_size=40))
    assert "the test split has no example of class 'business', 'science'" in caplog.text


def test_official_split_uses_the_sources_validation_file(tmp_path):
    train = write_table(tmp_path / "train.csv", topic_table(200, 1))
    valid_cols = topic_table(30, 3)
    valid = write_table(tmp_path / "valid.csv", valid_cols)
    test = write_table(tmp_path / "test.csv", topic_table(40, 2))
    splits = load_splits(data_cfg(source=[train, valid, test], split="official", valid_size=0.5))
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [200, 30, 40]  # valid_size is not used
    assert splits["valid"]["text"] == valid_cols["text"]
