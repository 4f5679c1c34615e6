"""Splitting reproducibly: train / valid / test from a pooled set or the official splits, each row keeping its
`index`, so predictions of different runs on the same data config line up item by item."""

from __future__ import annotations

import logging

from datasets import Dataset, DatasetDict, concatenate_datasets
from omegaconf import DictConfig, ListConfig

from bertcmp.data.labels import label_classes
from bertcmp.data.sources import column, _dataset, read_source, _show
from bertcmp.errors import DataError
from bertcmp.synthetic import GENERATORS

log = logging.getLogger("bertcmp.data")  # one logger for the package: the runs' logs name it so


SPLITS = ("train", "valid", "test")


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
