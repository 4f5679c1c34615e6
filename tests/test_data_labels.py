"""Labels and classes: their order, what counts as no label, and bad labels named."""

import logging

import pytest
from datasets import Dataset

from bertcmp.data import classes, load_splits, read_source
from bertcmp.errors import DataError
from data_helpers import TOPICS, columns, data_cfg, glue_like, topic_table, write_table


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
    from bertcmp.data.labels import _label_value, label_classes

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


def test_labels_mixing_numbers_and_names_are_ordered_as_text(tmp_path):
    cols = columns(80, 9)
    cols["label"] = [["pos", "1", "2", "neg"][i % 4] for i in range(80)]
    raw = read_source(write_table(tmp_path / "train.csv", cols), "text", "label")
    assert raw["train"].features["label"].names == ["1", "2", "neg", "pos"]


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
