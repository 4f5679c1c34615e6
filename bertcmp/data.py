"""Data: read a labelled text source, split it reproducibly, tokenize it once (cached), serve batches.

The result of `load_splits` is three `datasets.Dataset`s (train / valid / test) with the columns `text` (and
`text_pair` for pair tasks), `label` (a ClassLabel: class ids 0..K-1 and their names, the same in every split)
and `index` (the row id in the pooled data, or in the official test split), so predictions of different runs
on the same data config line up item by item.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import itertools
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple, Optional, Sequence

import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Json, Value, concatenate_datasets, load_dataset
from filelock import FileLock, Timeout
from omegaconf import DictConfig, ListConfig
from tokenizers import Tokenizer
from torch.utils.data import DataLoader, Sampler

from bertcmp.errors import ConfigError, DataError, summary
from bertcmp.outputs import replacing
from bertcmp.synthetic import GENERATORS

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
NEGATIVE_LABELS = {"0", "neg", "negative", "false"}
POSITIVE_LABELS = {"1", "pos", "positive", "true"}
_SPLIT_IN_FILENAME = re.compile(r"(?:^|[-_.])(train|test|valid|validation|dev)(?:$|[-_.\d])")
_CACHE_FORMAT = 5


# ---------------------------------------------------------------------------------------------- reading


def read_source(source: str | Sequence[str], text_column: str, label_column: str,
                text_pair_column: Optional[str] = None, config: Optional[str] = None,
                test_split: str = "test") -> DatasetDict:
    """Read a source into named splits (`train`, `test`, maybe `validation`, and `test_split` when the test set
    is another, e.g. MNLI's validation_matched) holding `text`, `label` (a ClassLabel: the classes' names, in an
    order every split shares) and, for pair tasks, `text_pair`.

    `source` is a Hub dataset id or a local directory in the Hub's layout (`config`: which configuration of a
    set that has several, e.g. GLUE's sst2), an `aclImdb` folder as Stanford ships it, or one or more csv / jsonl
    / parquet files (globs allowed).
    """
    sources = [source] if isinstance(source, str) else list(source)
    if not sources:
        raise DataError("data.source is empty: give a Hub dataset id, a directory or data files")
    if len(sources) == 1 and Path(sources[0]).expanduser().is_dir():
        root = Path(sources[0]).expanduser()
        acl = _find_aclimdb(root)
        if not acl and not _holds_data(root):
            raise DataError(f"data.source={str(root)!r}: no data files in this directory (csv, jsonl, json, parquet or "
                            "arrow, or an aclImdb folder); give the directory that holds them, or the files")
        raw = _read_aclimdb(acl) if acl else _load(str(root), str(root), config, **_directory_options(root))
    elif any(_looks_local(s) for s in sources):
        raw = _read_files(sources)  # first: a source that is not there is named as such, whatever data.config says
        if config is not None:
            raise DataError(f"data.config={config!r} names a configuration of a Hub set (GLUE's sst2, ...); "
                            f"data.source={_show(source)} is files, which have none: leave data.config out")
    else:
        raw = _load(sources[0], sources[0], config)
    splits = {name: ds for name, ds in raw.items() if name in ("train", "validation", "test", test_split)}
    if not splits:
        raise DataError(f"data.source={_show(source)} holds no train/validation/test split "
                        f"(found: {', '.join(raw) or 'none'})")
    columns = {name: _standardise(ds, text_column, label_column, text_pair_column, source, name)
               for name, ds in splits.items()}
    declared = {tuple(f.names) if isinstance(f := ds.features.get(label_column), ClassLabel) else None
                for ds in splits.values()}
    classes, class_of = label_classes({name: c["label"] for name, c in columns.items()}, label_column,
                                      declared.pop() if len(declared) == 1 else None)
    return DatasetDict({name: _dataset({**c, "label": [class_of[v] for v in c["label"]]}, classes)
                        for name, c in columns.items()})


def _dataset(columns: dict[str, list], classes: Sequence[str]) -> Dataset:
    """`columns` (label as class ids) as a Dataset whose `label` feature names the classes."""
    features = Features({name: ClassLabel(names=list(classes)) if name == "label" else Value("string")
                         for name in columns})
    return Dataset.from_dict(columns, features=features)


def column(ds: Dataset, name: str) -> list:
    """A column as a Python list, read through Arrow in one go (row-by-row access is ~100x slower). A column of
    mixed types (a .jsonl with `1` and `"pos"` in one field) is datasets' Json feature, stored as JSON text: its
    values are given as the file holds them (1 and pos, not 1 and "pos" with quotes)."""
    if isinstance(ds.features.get(name), Json):
        return list(ds[name])
    return ds.with_format("arrow")[:][name].to_pylist()


def shown_texts(ds: Dataset, first_of_pair: int = 60) -> list[str]:
    """Each item's text as a person reads it; a pair's two texts joined by " ‖ ", the first cut to `first_of_pair`
    characters so that the start of the second still shows in a short excerpt."""
    texts = column(ds, "text")
    if "text_pair" not in ds.column_names:
        return texts
    cut = lambda text: text if len(text) <= first_of_pair else text[:first_of_pair - 1] + "…"  # noqa: E731
    return [f"{cut(a)} ‖ {b}" for a, b in zip(texts, column(ds, "text_pair"))]


def as_texts(values: Sequence[Any]) -> list[Optional[str]]:
    """A text column's values as text: a number stays the text it is written as (5, not "5" or a missing text);
    a missing cell stays None."""
    return [v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in values]


def _show(source: Any) -> str:
    return repr(source) if isinstance(source, str) else "[" + ", ".join(map(str, source)) + "]"


def _looks_local(source: str) -> bool:
    # a Hub id is `name` or `owner/name`: a path with more slashes is local, even one not there yet
    return (source.startswith(("/", ".", "~")) or "*" in source or source.count("/") > 1
            or Path(source).suffix in FILE_BUILDERS or Path(source).expanduser().exists())


def _holds_data(root: Path) -> bool:
    return any(p.suffix.lower() in (*FILE_BUILDERS, ".arrow") for p in root.rglob("*") if p.is_file())


def _directory_options(root: Path) -> dict[str, Any]:
    """reading_options for a directory in the Hub's layout that holds csv files."""
    found = sorted(str(p) for p in root.rglob("*.csv") if p.is_file())
    return {k: v for k, v in reading_options("csv", found).items() if k != "features"} if found else {}


def _problem(files: Sequence[str]) -> Optional[str]:
    """What is wrong with the first of these data files that cannot be rows of a table, in words naming it: an empty
    file, a csv with a header and no rows, a .jsonl line that is not JSON; None when none of that is it."""
    for name in files:
        with open(name, encoding="utf-8", errors="replace") as f:
            written = ((number, line) for number, line in enumerate(f, 1) if line.strip())
            lines = list(written if name.endswith(".jsonl") else itertools.islice(written, 2))
        if not lines:
            return f"{name} is empty"
        if name.endswith(".csv") and len(lines) == 1:
            return f"{name} has a header ({lines[0][1].strip()[:60]}) but no rows"
        for number, line in lines if name.endswith(".jsonl") else ():
            try:
                json.loads(line)
            except ValueError:
                return f"{name}, line {number} is not valid JSON; each line of a .jsonl file must be one JSON object"
    return None


def _csv_header(path: str) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        return next(csv.reader(f), [])


def reading_options(builder: str, files: Sequence[str]) -> dict[str, Any]:
    """How datasets should read these files so that each cell is what the file holds: for csv, every column as text
    (a text "007" stays 007, not the number 7) and only an empty cell missing ("NA", "None" and "null" are
    values, not pandas' missing-value markers)."""
    if builder != "csv":
        return {}
    options: dict[str, Any] = {"keep_default_na": False, "na_values": [""]}
    if header := _csv_header(files[0]):
        options["features"] = Features({name: Value("string") for name in header})
    return options


def load_files(builder: str, files: Sequence[str], shown: str) -> Dataset:
    """The rows of one split's local files, all of one kind, as the files hold them (reading_options)."""
    try:
        return load_dataset(builder, data_files={"train": list(files)}, split="train",
                            **reading_options(builder, files))
    except Exception as err:  # datasets raises many types for a file it cannot parse
        problem = _problem(files) or f"could not be read ({summary(err)})"
        raise DataError(f"{shown}: {problem}") from err


def _load(path: str, shown: str, config: Optional[str] = None, **kwargs: Any) -> DatasetDict:
    try:
        return load_dataset(path, config, **kwargs)
    except Exception as err:  # datasets raises many types for "not there"; all mean the same to a user
        if "Config name is missing" in str(err) or "BuilderConfig" in str(err):
            raise DataError(f"data.source={shown!r} has several configurations and data.config={config!r} is not "
                            f"one of them ({summary(err)}); set data.config, e.g. sst2 for GLUE") from err
        if Path(path).exists():
            raise DataError(f"data.source={shown!r} could not be read ({summary(err)})") from err
        raise DataError(f"data.source={shown!r} is not a local path and could not be loaded from the Hugging Face "
                        f"Hub ({summary(err)}); give a local directory or files, e.g. data.source=/path/to/imdb, "
                        "or run offline with data=synthetic") from err


def _read_files(sources: list[str]) -> DatasetDict:
    files: list[Path] = []
    for source in sources:
        matches = sorted(glob.glob(os.path.expanduser(source))) if "*" in source else [source]
        if not matches:
            raise DataError(f"data.source={source!r} matches no file")
        for match in matches:
            path = Path(match).expanduser()
            if not path.is_file():
                raise DataError(f"data.source={source!r} does not exist "
                                "(give a Hub id, a directory, or csv / jsonl / parquet files)")
            files.append(path)
    builders = {FILE_BUILDERS.get(f.suffix.lower()) for f in files}
    if None in builders or len(builders) != 1:
        raise DataError(f"data.source files must all be one of .csv, .jsonl, .json, .parquet; "
                        f"got {', '.join(sorted({f.suffix or f.name for f in files}))}")
    builder = builders.pop()
    data_files: dict[str, list[str]] = {}
    for path in files:
        data_files.setdefault(_split_of(path.name), []).append(str(path))
    # each split read on its own: a test file without a column the train file has is named as such, not a cast error
    return DatasetDict({split: load_files(builder, group, f"data.source={_show(sources)}")
                        for split, group in data_files.items()})


def _split_of(filename: str) -> str:
    match = _SPLIT_IN_FILENAME.search(Path(filename).stem.lower())
    name = match.group(1) if match else "train"
    return {"valid": "validation", "dev": "validation"}.get(name, name)


def _find_aclimdb(root: Path) -> Path | None:
    for candidate in (root, root / "aclImdb"):
        if (candidate / "train" / "pos").is_dir():
            return candidate
    return None


def _read_aclimdb(root: Path) -> DatasetDict:
    """Stanford's layout: {train,test}/{pos,neg}/<id>_<rating>.txt; `unsup` holds no labels and is skipped."""
    def file_id(path: Path) -> int:
        head = path.stem.split("_")[0]
        return int(head) if head.isdigit() else -1

    splits = {}
    for split in ("train", "test"):
        texts, labels = [], []
        for label in ("pos", "neg"):  # the Hub's copy lists positives first; its class names are neg and pos
            for path in sorted((root / split / label).glob("*.txt"), key=lambda p: (file_id(p), p.name)):
                texts.append(path.read_text(encoding="utf-8"))
                labels.append(label)
        if texts:
            splits[split] = Dataset.from_dict({"text": texts, "label": labels})
    return DatasetDict(splits)


def _standardise(ds: Dataset, text_column: str, label_column: str, text_pair_column: Optional[str], source: Any,
                 split: str) -> dict[str, list]:
    """The split's texts (and second texts of pairs) and its labels as plain values; reject what would train on
    garbage."""
    wanted = {"data.text_column": text_column, "data.label_column": label_column}
    if text_pair_column:
        wanted["data.text_pair_column"] = text_pair_column
    for key, name in wanted.items():
        if name not in ds.column_names:
            raise DataError(f"{key}={name!r} is not a column of data.source={_show(source)} "
                            f"({split} split has: {', '.join(ds.column_names)})")
    values = column(ds, label_column)
    rows = [row for row, value in enumerate(values) if not is_unlabelled(value)]  # the labelled ones
    if 0 < len(rows) < len(values):
        log.warning("data.source=%s: %d row(s) of its %s split are labelled -1 (no label): left out", _show(source),
                    len(values) - len(rows), split)
    elif not rows and values:
        log.info("data.source=%s: its %s split has no labels (every label is -1): not used", _show(source), split)
    keep = (lambda cells: [cells[i] for i in rows]) if len(rows) < len(values) else list
    columns = {"text": as_texts(keep(column(ds, text_column)))}
    if text_pair_column:
        columns["text_pair"] = as_texts(keep(column(ds, text_pair_column)))
    for name, texts in columns.items():
        if empty := empty_rows(texts):
            raise DataError(f"data.source={_show(source)} has {len(empty)} empty text(s) in column "
                            f"{wanted['data.text_pair_column' if name == 'text_pair' else 'data.text_column']!r} "
                            f"of its {split} split (first at row {rows[empty[0]]}); remove them")
    feature = ds.features.get(label_column)
    values = keep(values)
    if isinstance(feature, ClassLabel):  # the Hub's class ids: use the names they stand for
        values = [feature.names[v] if v is not None and 0 <= v < len(feature.names) else None for v in values]
    columns["label"] = [_label_value(v, label_column, split, row) for row, v in zip(rows, values)]
    return columns


def is_unlabelled(value: Any) -> bool:
    """-1 is "no label" in every Hugging Face set (GLUE's hidden test labels, IMDB's unsupervised split): never a
    class."""
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        return value.strip() == "-1"
    return isinstance(value, (int, float, np.integer, np.floating)) and value == -1


def empty_rows(texts: Sequence[Any]) -> list[int]:
    """The rows whose text is missing or blank: nothing to classify."""
    return [i for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip()]


def _label_value(value: Any, label_column: str, split: str, row: int) -> int | str:
    """A label as an int (whole numbers, also written as text or as 3.0) or as its stripped text."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+(\.0*)?", text):  # a csv read as text: 1 and 1.0 are the numbers they say
            return int(text.split(".")[0])
        if not re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+)", text):
            return text
    shown = "no label" if value is None or (isinstance(value, str) and not value.strip()) else f"label {value!r}"
    raise DataError(f"data.label_column={label_column!r} has {shown} at row {row} of the {split} split; "
                    "labels must be class names or whole numbers (a number with a fraction looks like a regression "
                    "target, which bertcmp does not train)")


MAX_CLASSES = 1000  # more distinct values than this is almost surely not a label column


def label_classes(labels: dict[str, list], label_column: str,
                  declared: Optional[Sequence[str]] = None) -> tuple[list[str], dict[Any, int]]:
    """The task's classes from the labels of every split, in one stable order, and each label value's class id.

    A Hub dataset's ClassLabel (`declared`, the same in every split): its names in its order. Whole numbers: in
    numeric order (0..K-1 keep their ids). Two classes spelt with the usual conventions (0/1, neg/pos,
    negative/positive, false/true, any case): negative first. Other text: in sorted order."""
    values = set(itertools.chain.from_iterable(labels.values()))
    if len(values) > MAX_CLASSES:
        raise DataError(f"data.label_column={label_column!r} has {len(values)} distinct values (e.g. "
                        f"{', '.join(map(repr, sorted(values, key=str)[:3]))}): over {MAX_CLASSES} classes is probably "
                        "not a label column; set data.label_column to the column holding the classes")
    if declared and {str(v) for v in values} <= set(declared):
        return list(declared), {v: list(declared).index(str(v)) for v in values}
    if all(isinstance(v, int) for v in values):
        order = sorted(values)
        return [str(v) for v in order], {v: i for i, v in enumerate(order)}
    text = {v: str(v) for v in values}
    lowered = {v: t.lower() for v, t in text.items()}
    # sorted as text: a column may mix numbers and names (pos, 1, 2, neg)
    negative = sorted((v for v, low in lowered.items() if low in NEGATIVE_LABELS), key=str)
    positive = sorted((v for v, low in lowered.items() if low in POSITIVE_LABELS), key=str)
    if negative and positive and len(negative) + len(positive) == len(values):
        return [text[negative[0]], text[positive[0]]], {v: int(v in positive) for v in values}
    order = sorted(values, key=str)
    names = [text[v] for v in order]
    return names, {v: i for i, v in enumerate(order)}


# ---------------------------------------------------------------------------------------------- splitting


def load_splits(cfg: DictConfig) -> DatasetDict:
    """The train / valid / test splits the data config asks for, each with `text` (and `text_pair` for pair
    tasks), `label` and `index`; `classes(splits)` names the classes."""
    if cfg.synthetic:
        columns = GENERATORS[str(cfg.synthetic)](cfg.num_examples, cfg.split_seed)
        classes, class_of = label_classes({"train": columns["label"]}, "label")
        raw = DatasetDict({"train": _dataset({**columns, "label": [class_of[v] for v in columns["label"]]}, classes)})
    else:
        source = list(cfg.source) if isinstance(cfg.source, ListConfig) else cfg.source
        if source is None:
            raise DataError("data.source is null: give a Hub dataset id, a directory or data files")
        raw = read_source(source, cfg.text_column, cfg.label_column, cfg.text_pair_column, cfg.config,
                          str(cfg.test_split))
    if cfg.split == "official":
        splits = _official_split(raw, cfg)
    else:
        splits = _pooled_split(raw, cfg)
    if cfg.train_size is not None:
        splits["train"] = splits["train"].select(range(min(cfg.train_size, len(splits["train"]))))
    _check_classes(splits, cfg)
    return splits


def classes(splits: DatasetDict) -> list[str]:
    """The names of the task's classes; class id i is classes[i]."""
    return list(splits["train"].features["label"].names)


def _check_classes(splits: DatasetDict, cfg: DictConfig) -> None:
    """Training needs two classes or more; a split that lacks a class the others hold is allowed, with a warning."""
    names = classes(splits)
    held = {name: set(column(ds, "label")) for name, ds in splits.items()}
    if len(held["train"]) < 2:
        only = ", ".join(repr(names[i]) for i in sorted(held["train"])) or "none"
        raise DataError(f"data.label_column={cfg.label_column!r}: the training split ({len(splits['train'])} "
                        f"examples) holds only class {only}; a classifier needs two classes or more "
                        "(a larger data.train_size, or another label column)")
    everywhere = set().union(*held.values())
    for name, ids in held.items():
        missing = [names[i] for i in sorted(everywhere - ids)]
        if missing:
            log.warning("the %s split has no example of class %s (the other splits do): its scores cannot count "
                        "them", name, ", ".join(map(repr, missing)))


def _with_index(ds: Dataset) -> Dataset:
    return ds.add_column("index", list(range(len(ds))))


def _pooled_split(raw: DatasetDict, cfg: DictConfig) -> DatasetDict:
    order = [name for name in ("train", "validation", "test") if name in raw]
    pooled = _with_index(concatenate_datasets([raw[name] for name in order]))
    if cfg.dedup:
        pooled = _drop_repeats(pooled)
    held_out = _holdout_size(cfg.valid_size + cfg.test_size, len(pooled), "data.valid_size + data.test_size")
    first = pooled.train_test_split(test_size=held_out, seed=cfg.split_seed)
    # the reference recipe halves the held-out part with the same seed: first half valid, second test
    test_share = cfg.test_size / (cfg.valid_size + cfg.test_size) if cfg.test_size < 1 else int(cfg.test_size)
    second = first["test"].train_test_split(test_size=test_share, seed=cfg.split_seed)
    return DatasetDict(train=first["train"], valid=second["train"], test=second["test"])


def _official_split(raw: DatasetDict, cfg: DictConfig) -> DatasetDict:
    test_split = str(cfg.test_split)
    if test_split not in raw or "train" not in raw:
        raise DataError(f"data.split=official needs a train and a {test_split} split in data.source="
                        f"{_show(cfg.source)} (found: {', '.join(raw)}); use data.split=pooled")
    if not len(raw[test_split]):
        way_out = "data.test_split=validation (its validation split as the test set, as the GLUE presets do)" \
            if test_split != "validation" and len(raw.get("validation", [])) else "data.split=pooled"
        raise DataError(f"data.split=official: the {test_split} split of data.source={_show(cfg.source)} has no "
                        f"labels (every label is -1, hidden as in GLUE's test sets), so it cannot score a run; use "
                        f"{way_out}")
    train, test = _with_index(raw["train"]), _with_index(raw[test_split])
    valid = _with_index(raw["validation"]) if test_split != "validation" and len(raw.get("validation", [])) else None
    if cfg.dedup:
        test = _drop_repeats(test)
        seen = set(_items(test))
        if valid is not None:  # an item is in one split only: test first, then validation, then train
            valid = _drop_repeats(valid)
            valid = valid.select([i for i, item in enumerate(_items(valid)) if item not in seen])
            seen |= set(_items(valid))
        train = _drop_repeats(train)
        train = train.select([i for i, item in enumerate(_items(train)) if item not in seen])
    if valid is not None:  # the source's own validation split, as the source's authors meant it
        log.info("validation: the source's validation split (%d examples); data.valid_size is not used", len(valid))
        return DatasetDict(train=train, valid=valid, test=test)
    held_out = _holdout_size(cfg.valid_size, len(train), "data.valid_size")
    parts = train.train_test_split(test_size=held_out, seed=cfg.split_seed)
    return DatasetDict(train=parts["train"], valid=parts["test"], test=test)


def _holdout_size(size: float, n: int, key: str) -> float | int:
    count = size * n if size < 1 else size
    if count >= n or round(count) < 1 or n - count < 2:
        raise DataError(f"{key} = {size:g} leaves no room for training in {n} examples; "
                        "use fractions such as 0.05 or counts smaller than the data")
    return size if size < 1 else int(size)


def _items(ds: Dataset) -> list:
    """Each item's text, or (text, second text) for pairs: what makes two items the same."""
    texts = column(ds, "text")
    return list(zip(texts, column(ds, "text_pair"))) if "text_pair" in ds.column_names else texts


def _drop_repeats(ds: Dataset) -> Dataset:
    seen: set = set()
    keep = []
    for i, text in enumerate(_items(ds)):
        if text not in seen:
            seen.add(text)
            keep.append(i)
    return ds.select(keep)


# ---------------------------------------------------------------------------------------------- tokenizing


@dataclass
class Encoded:
    """One tokenized split as flat arrays: the token ids of item i are ids[offsets[i]:offsets[i + 1]]."""

    ids: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    truncated: np.ndarray                  # whether each text lost tokens to max_length
    n_tokens: Optional[np.ndarray] = None  # the test split's: each text's whole length, special tokens included
    type_ids: Optional[np.ndarray] = None  # pairs, for encoders that read them: 0 for the first text, 1 the second

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


class Encodings(NamedTuple):
    ids: list[list[int]]  # special tokens included
    truncated: list[bool]
    type_ids: Optional[list[list[int]]] = None  # of pairs: which text each token comes from


def reads_type_ids(tokenizer: Any) -> bool:
    """Whether the model of this tokenizer reads token_type_ids (BERT does; RoBERTa, ModernBERT do not)."""
    return "token_type_ids" in tokenizer.model_input_names


def tokenize_splits(splits: DatasetDict, tokenizer: Any, max_length: int, cache_dir: str | Path,
                    truncation: str = "head", head_tokens: int = 128) -> dict[str, Encoded]:
    """Tokenize every split once, truncated to `max_length` as `truncation` says (pairs: from the longer text
    first); reuse the cache when texts, labels, tokenizer, max_length and truncation are all the same (safe for
    parallel jobs: one builds, the others wait)."""
    truncation = str(truncation)
    if truncation == "head_tail":
        _check_head_tokens(head_tokens, max_length, _specials(_plain_backend(tokenizer)))
    key = _cache_key(splits, tokenizer, max_length, truncation, head_tokens)
    root = Path(cache_dir).expanduser() / "tokenized"
    root.mkdir(parents=True, exist_ok=True)
    entry = root / key
    _remove_leftovers(root)
    with FileLock(str(root / f"{key}.lock")):
        cached = _read_cache(entry)
        if cached is not None:
            log.info("tokenized data: cache hit %s", entry)
            return cached
        log.info("tokenizing %s examples (max_length %d, truncation %s) into %s",
                 " / ".join(str(len(splits[s])) for s in SPLITS), max_length, truncation, entry)
        encoded = {name: _encode(splits[name], tokenizer, max_length, truncation, head_tokens) for name in SPLITS}
        encoded["test"].n_tokens = full_lengths(column(splits["test"], "text"), tokenizer, _pairs(splits["test"]))
        _write_cache(entry, encoded)
        return encoded


def _check_head_tokens(head_tokens: int, max_length: int, specials: int) -> None:
    if not 0 < head_tokens < max_length - specials:
        raise ConfigError(f"data.head_tokens={head_tokens} must be from 1 to {max_length - specials - 1}: "
                          f"data.truncation=head_tail keeps it from the start and the rest of the {max_length} "
                          f"tokens used ({specials} of them special) from the end; lower data.head_tokens or raise "
                          "data.max_length")


def _cache_key(splits: DatasetDict, tokenizer: Any, max_length: int, truncation: str, head_tokens: int) -> str:
    kept = f"{truncation}:{head_tokens}" if truncation == "head_tail" else truncation
    digest = hashlib.sha256(f"format={_CACHE_FORMAT};max_length={max_length};truncation={kept};".encode())
    digest.update(_tokenizer_fingerprint(tokenizer).encode())
    digest.update(f";type_ids={reads_type_ids(tokenizer)}".encode())
    for name in SPLITS:
        digest.update(f";{name}={len(splits[name])};".encode())
        digest.update(np.asarray(column(splits[name], "label"), dtype=np.int64).tobytes())
        digest.update(np.asarray(column(splits[name], "index"), dtype=np.int64).tobytes())
        digest.update("\0".join(column(splits[name], "text")).encode())
        if "text_pair" in splits[name].column_names:
            digest.update(("\1" + "\0".join(column(splits[name], "text_pair"))).encode())
    return digest.hexdigest()[:32]


def _tokenizer_fingerprint(tokenizer: Any) -> str:
    # calling a tokenizer stores its truncation settings in the backend: leave them out of the identity
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    spec.pop("truncation", None)
    spec.pop("padding", None)
    return json.dumps(spec, sort_keys=True)


def _plain_backend(tokenizer: Any) -> Tokenizer:
    """A copy of the tokenizer's Rust backend without truncation or padding: the caller's keeps its settings."""
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.no_truncation()
    return backend


def _specials(backend: Tokenizer) -> int:
    return backend.post_processor.num_special_tokens_to_add(False) if backend.post_processor else 0


def _pairs(ds: Dataset) -> Optional[list[str]]:
    return column(ds, "text_pair") if "text_pair" in ds.column_names else None


def full_lengths(texts: Sequence[str], tokenizer: Any, pairs: Optional[Sequence[str]] = None) -> np.ndarray:
    """How many tokens each whole text (or pair) is, special tokens included (what max_length is compared with)."""
    backend = _plain_backend(tokenizer)
    if pairs is not None:
        encodings = backend.encode_batch_fast(list(zip(texts, pairs)))
        return np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
    encodings = backend.encode_batch_fast(list(texts), add_special_tokens=False)
    return np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings)) + _specials(backend)


def encode_pairs(texts: Sequence[str], pairs: Sequence[str], tokenizer: Any, max_length: int) -> Encodings:
    """Token ids of each pair in the tokenizer's own pair format ([CLS] a [SEP] b [SEP] for BERT, <s> a </s></s>
    b </s> for RoBERTa, ...), at most max_length of them: truncation takes from the longer text first (the
    tokenizer's longest_first), as `tokenizer(texts, pairs, truncation=True, max_length=...)` does."""
    backend = _plain_backend(tokenizer)
    backend.enable_truncation(max_length, strategy="longest_first")
    encodings = backend.encode_batch_fast(list(zip(texts, pairs)))
    type_ids = [enc.type_ids for enc in encodings] if reads_type_ids(tokenizer) else None
    # what truncation cut off is kept as overflowing pieces: a pair that lost tokens has some
    return Encodings([enc.ids for enc in encodings], [bool(enc.overflowing) for enc in encodings], type_ids)


def encode_texts(texts: Sequence[str], tokenizer: Any, max_length: int, truncation: str = "head",
                 head_tokens: int = 128) -> Encodings:
    """Token ids of each text, special tokens included, at most max_length of them, and which texts lost tokens.

    head: the first tokens, exactly what `tokenizer(texts, truncation=True, max_length=max_length)` gives.
    tail: the last ones (the tokenizer with truncation_side="left"). head_tail: the first `head_tokens` and the
    rest from the end (Sun et al. 2019). The kept ids are always the tokenizer's own ids for those parts."""
    if str(truncation) == "head":
        return _encode_head(texts, tokenizer, max_length)
    backend = _plain_backend(tokenizer)
    before, after = _single_text_specials(backend)
    budget = max_length - len(before) - len(after)
    keep_head = head_tokens if str(truncation) == "head_tail" else 0
    ids, truncated = [], []
    # the kept ids cut from the whole text's ids: the tokenizer's own Encoding.truncate keeps the cut-off part as
    # overflowing pieces of the kept length, and merging and post-processing those took 0.2 s a review
    for enc in backend.encode_batch_fast(list(texts), add_special_tokens=False):
        whole = enc.ids
        cut = len(whole) > budget
        kept = whole[:keep_head] + whole[len(whole) - (budget - keep_head):] if cut else whole
        ids.append([*before, *kept, *after])
        truncated.append(cut)
    return Encodings(ids, truncated)


def _single_text_specials(backend: Tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer's own post-processing puts before and after a single text ([CLS] and
    [SEP] for BERT, <s> and </s> for RoBERTa), read from what it makes of a short probe."""
    probe = backend.encode_batch_fast(["a"], add_special_tokens=False)[0]
    whole, inner = backend.post_process(probe).ids, probe.ids
    start = next(i for i in range(len(whole) - len(inner) + 1) if whole[i:i + len(inner)] == inner)
    return whole[:start], whole[start + len(inner):]


def _encode_head(texts: Sequence[str], tokenizer: Any, max_length: int) -> Encodings:
    """The first max_length tokens, about twice as fast as the tokenizer on long reviews.

    Tokenizing a whole review only to keep its first max_length tokens wastes most of the work, so each text
    is first cut at a space after enough characters for max_length tokens. The tokens of such a prefix are the
    full text's tokens, except near the cut; a text whose cut prefix does not yield max_length tokens plus a
    margin of spare ones is tokenized whole instead."""
    backend = _plain_backend(tokenizer)
    backend.enable_truncation(max_length)
    specials = _specials(backend)
    budget = (max_length + 2 * _SPARE_TOKENS) * 6
    cut = [_cut_at_space(text, budget) for text in texts]
    encodings = backend.encode_batch_fast(cut)
    redo = [i for i, (text, short, enc) in enumerate(zip(texts, cut, encodings))
            if len(short) < len(text) and _spare_tokens(enc, specials) < _SPARE_TOKENS]
    for i, enc in zip(redo, backend.encode_batch_fast([texts[i] for i in redo])):
        encodings[i] = enc
    return Encodings([enc.ids for enc in encodings], [bool(enc.overflowing) for enc in encodings])


_SPARE_TOKENS = 32  # the cut can change only the last word's tokens; keep this many tokens between it and the kept ones


def _cut_at_space(text: str, budget: int) -> str:
    if len(text) <= budget:
        return text
    space = text.rfind(" ", 0, budget)
    return text[:space] if space > 0 else text


def _spare_tokens(encoding: Any, specials: int) -> int:
    """Tokens that truncation dropped (those of the overflowing pieces, without their special tokens)."""
    return sum(len(piece.ids) - specials for piece in encoding.overflowing)


def encode(texts: Sequence[str], pairs: Optional[Sequence[str]], tokenizer: Any, max_length: int,
           truncation: str = "head", head_tokens: int = 128) -> Encodings:
    """Single texts (`pairs` None) as `encode_texts` does, or pairs as `encode_pairs` does."""
    if pairs is not None:
        return encode_pairs(texts, pairs, tokenizer, max_length)
    return encode_texts(texts, tokenizer, max_length, truncation, head_tokens)


def flatten(encodings: Encodings, labels: Sequence[int], index: Sequence[int]) -> Encoded:
    """Encodings as the flat arrays of an `Encoded`."""
    pieces = encodings.ids
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = np.fromiter(itertools.chain.from_iterable(pieces), dtype=np.int32, count=int(offsets[-1]))
    type_ids = None
    if encodings.type_ids is not None:
        type_ids = np.fromiter(itertools.chain.from_iterable(encodings.type_ids), dtype=np.int8, count=int(offsets[-1]))
    return Encoded(ids, offsets, np.asarray(labels, dtype=np.int64), np.asarray(index, dtype=np.int64),
                   np.asarray(encodings.truncated, dtype=bool), type_ids=type_ids)


def _encode(ds: Dataset, tokenizer: Any, max_length: int, truncation: str, head_tokens: int) -> Encoded:
    encodings = encode(column(ds, "text"), _pairs(ds), tokenizer, max_length, truncation, head_tokens)
    return flatten(encodings, column(ds, "label"), column(ds, "index"))


_ARRAYS = ("ids", "offsets", "labels", "index", "truncated", "n_tokens", "type_ids")
_META = "meta.json"


def _write_cache(entry: Path, encoded: dict[str, Encoded]) -> None:
    """Each array as a .npy file, and meta.json (written last: an entry without it is not one) with the size and
    SHA-256 of each, so that a damaged or altered file is found when the entry is read."""
    with replacing(entry) as tmp:
        tmp.mkdir()
        arrays = {}
        for name, enc in encoded.items():
            for field in _ARRAYS:
                if getattr(enc, field) is not None:
                    buffer = io.BytesIO()  # then written by Python: a full disk is an OSError that says so
                    np.save(buffer, getattr(enc, field))
                    data = buffer.getvalue()
                    (tmp / f"{name}.{field}.npy").write_bytes(data)
                    arrays[f"{name}.{field}.npy"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        (tmp / _META).write_text(json.dumps({"splits": {name: len(enc) for name, enc in encoded.items()},
                                             "arrays": arrays}))


def _read_cache(entry: Path) -> Optional[dict[str, Encoded]]:
    """The entry's splits, or None when there is no entry or it is damaged (then it is removed, with a warning
    naming it and its bad file, and built again)."""
    if not (entry / _META).is_file():
        return None
    try:
        meta = json.loads((entry / _META).read_text())
        arrays = {name: _read_array(entry / name, **check) for name, check in meta["arrays"].items()}
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("tokenized data cache %s is damaged (%s): tokenizing again", entry, err)
        shutil.rmtree(entry, ignore_errors=True)
        return None
    return {split: Encoded(**{field: arrays[f"{split}.{field}.npy"] for field in _ARRAYS
                              if f"{split}.{field}.npy" in arrays}) for split in SPLITS}


def _read_array(path: Path, size: int, sha256: str) -> np.ndarray:
    data = path.read_bytes()
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{path.name} is not the file written: {len(data)} bytes where {size} were written, "
                         "or another checksum")
    return np.load(io.BytesIO(data))


def _remove_leftovers(root: Path) -> None:
    """Remove the half-written entries of processes that died while writing one: those whose key nobody holds
    (named `.<key>.tmp<pid>`, or by bertcmp 0.2 `<key>.tmp<pid>`)."""
    for tmp in root.glob("*.tmp*"):
        key = tmp.name.lstrip(".").split(".tmp")[0]
        lock = FileLock(str(root / f"{key}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:  # being written now
            continue
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            log.info("removed %s, left by a process that died while writing it", tmp)
        finally:
            lock.release()


# ---------------------------------------------------------------------------------------------- batching


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
