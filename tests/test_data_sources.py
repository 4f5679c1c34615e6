"""Reading sources: Hub layouts, aclImdb folders, csv / jsonl / parquet files, pairs, and bad input named."""

import json
from pathlib import Path

import pytest
from datasets import Dataset

from bertcmp.data import classes, hub_source, is_hub_source, load_splits, read_source
from bertcmp import hub
from bertcmp.errors import DataError, NotCachedError
from data_helpers import columns, data_cfg, glue_repo, pair_table, write_aclimdb, write_table


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


def test_empty_texts_are_rejected(tmp_path):
    cols = columns(90, 8)
    cols["text"][17] = "   "
    with pytest.raises(DataError, match="empty text.*first at row 17"):
        load_splits(data_cfg(source=str(Path(write_table(tmp_path / "train.csv", cols)))))


@pytest.mark.parametrize("source, is_hub", [("stanfordnlp/imdb", True), ("imdb", True), ("reviews.csv", False),
                                             ("data/train.jsonl", False), ("data/*.csv", False),
                                             ("outputs/fixtures/imdb", False), ("../shared/data/imdb", False)])
def test_a_hub_data_set_is_a_hub_id_not_a_data_files_name(source, is_hub):
    assert is_hub_source(source) is is_hub
    assert hub_source(data_cfg(source=source)) == (source if is_hub else None)
    assert hub_source(data_cfg(source=source, synthetic="reviews")) is None


def test_unreachable_hub_id_says_what_to_do(monkeypatch):
    monkeypatch.setattr(hub, "is_offline", lambda: False)  # as if the Hub had been tried and not reached
    with pytest.raises(DataError, match="not a local path and could not be loaded from the Hugging Face Hub"):
        load_splits(data_cfg(source="nobody/no-such-dataset"))


def test_offline_a_hub_data_set_not_in_the_cache_names_the_prepare_command():
    with pytest.raises(NotCachedError, match=r"data.source='nobody/no-such-dataset' is not in the Hugging Face cache"
                                             r".* python -m bertcmp.prepare data.source=nobody/no-such-dataset"):
        load_splits(data_cfg(source="nobody/no-such-dataset"))


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


@pytest.mark.parametrize("content, message", [
    ("", "{path} is empty"),
    ("text,label\n", r"{path} has a header \(text,label\) but no rows"),
])
def test_an_empty_or_header_only_file_is_named(tmp_path, content, message):
    path = tmp_path / "train.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message.format(path=path)):
        load_splits(data_cfg(source=str(path)))


def test_a_test_file_without_the_pair_column_is_named(tmp_path):
    cols = columns(60, 5)
    train = write_table(tmp_path / "train.csv", {**cols, "second": cols["text"][::-1]})
    test = write_table(tmp_path / "test.csv", columns(20, 6))
    with pytest.raises(DataError, match=r"data.text_pair_column='second' is not a column of .* \(test split has: "
                                        r"text, label\)"):
        load_splits(data_cfg(source=[train, test], split="official", text_pair_column="second"))


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
