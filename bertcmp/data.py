"""Data: read a labelled text source, split it reproducibly, tokenize it once (cached), serve batches.

The result of `load_splits` is three `datasets.Dataset`s (train / valid / test) with the columns
`text`, `label` (0 = negative, 1 = positive) and `index` (the row id in the pooled data, or in the official
test split), so predictions of different runs on the same data config line up item by item.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from datasets import Dataset, DatasetDict, concatenate_datasets, load_dataset
from filelock import FileLock
from omegaconf import DictConfig, ListConfig
from torch.utils.data import DataLoader

from bertcmp.errors import DataError
from bertcmp.synthetic import make_reviews

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
NEGATIVE_LABELS = {"0", "neg", "negative", "false"}
POSITIVE_LABELS = {"1", "pos", "positive", "true"}
_SPLIT_IN_FILENAME = re.compile(r"(?:^|[-_.])(train|test|valid|validation|dev)(?:$|[-_.\d])")
_CACHE_FORMAT = 1


# ---------------------------------------------------------------------------------------------- reading


def read_source(source: str | Sequence[str], text_column: str, label_column: str) -> DatasetDict:
    """Read a source into named splits (`train`, `test`, maybe `validation`) holding `text` and `label`.

    `source` is a Hub dataset id, a local directory in the Hub's layout, an `aclImdb` folder as Stanford
    ships it, or one or more csv / jsonl / parquet files (globs allowed).
    """
    sources = [source] if isinstance(source, str) else list(source)
    if not sources:
        raise DataError("data.source is empty: give a Hub dataset id, a directory or data files")
    if len(sources) == 1 and Path(sources[0]).expanduser().is_dir():
        root = Path(sources[0]).expanduser()
        acl = _find_aclimdb(root)
        raw = _read_aclimdb(acl) if acl else _load(str(root), str(root))
    elif any(_looks_local(s) for s in sources):
        raw = _read_files(sources)
    else:
        raw = _load(sources[0], sources[0])
    splits = {name: ds for name, ds in raw.items() if name in ("train", "validation", "test")}
    if not splits:
        raise DataError(f"data.source={_show(source)} holds no train/validation/test split "
                        f"(found: {', '.join(raw) or 'none'})")
    return DatasetDict({name: _standardise(ds, text_column, label_column, source, name)
                        for name, ds in splits.items()})


def _show(source: Any) -> str:
    return repr(source) if isinstance(source, str) else "[" + ", ".join(map(str, source)) + "]"


def _looks_local(source: str) -> bool:
    return (source.startswith(("/", ".", "~")) or "*" in source or Path(source).suffix in FILE_BUILDERS
            or Path(source).expanduser().exists())


def _load(path: str, shown: str, **kwargs: Any) -> DatasetDict:
    try:
        return load_dataset(path, **kwargs)
    except Exception as err:  # datasets raises many types for "not there"; all mean the same to a user
        where = "is not a local path and could not be loaded from the Hugging Face Hub" \
            if not Path(path).exists() else "could not be read"
        raise DataError(f"data.source={shown!r} {where} ({type(err).__name__}: {str(err).splitlines()[0]}); "
                        "give a local directory or files, e.g. data.source=/path/to/imdb, "
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
    data_files: dict[str, list[str]] = {}
    for path in files:
        data_files.setdefault(_split_of(path.name), []).append(str(path))
    return _load(builders.pop(), _show(sources), data_files=data_files)


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
        for folder, label in (("pos", 1), ("neg", 0)):  # the Hub's copy lists positives first
            for path in sorted((root / split / folder).glob("*.txt"), key=lambda p: (file_id(p), p.name)):
                texts.append(path.read_text(encoding="utf-8"))
                labels.append(label)
        if texts:
            splits[split] = Dataset.from_dict({"text": texts, "label": labels})
    return DatasetDict(splits)


def _standardise(ds: Dataset, text_column: str, label_column: str, source: Any, split: str) -> Dataset:
    """Keep only `text` and `label`, with labels as 0/1; reject what would train on garbage."""
    for key, column in (("data.text_column", text_column), ("data.label_column", label_column)):
        if column not in ds.column_names:
            raise DataError(f"{key}={column!r} is not a column of data.source={_show(source)} "
                            f"({split} split has: {', '.join(ds.column_names)})")
    texts = ds[text_column]
    empty = [i for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip()]
    if empty:
        raise DataError(f"data.source={_show(source)} has {len(empty)} empty text(s) in column "
                        f"{text_column!r} of its {split} split (first at row {empty[0]}); remove them")
    labels = _labels_to_ints(ds[label_column], label_column, split)
    return Dataset.from_dict({"text": texts, "label": labels})


def _labels_to_ints(values: list, label_column: str, split: str) -> list[int]:
    names = {str(v).strip().lower() for v in values}
    unknown = names - NEGATIVE_LABELS - POSITIVE_LABELS
    if unknown:
        shown = ", ".join(sorted(unknown)[:5])
        raise DataError(f"data.label_column={label_column!r} holds labels {shown} in the {split} split; "
                        "expected two classes: 0/1, neg/pos or negative/positive")
    return [0 if str(v).strip().lower() in NEGATIVE_LABELS else 1 for v in values]


# ---------------------------------------------------------------------------------------------- splitting


def load_splits(cfg: DictConfig) -> DatasetDict:
    """The train / valid / test splits the data config asks for, each with `text`, `label` and `index`."""
    if cfg.name == "synthetic":
        raw = DatasetDict({"train": Dataset.from_dict(make_reviews(cfg.num_examples, cfg.split_seed))})
    else:
        source = list(cfg.source) if isinstance(cfg.source, ListConfig) else cfg.source
        if source is None:
            raise DataError("data.source is null: give a Hub dataset id, a directory or data files")
        raw = read_source(source, cfg.text_column, cfg.label_column)
    if cfg.split == "official":
        splits = _official_split(raw, cfg)
    else:
        splits = _pooled_split(raw, cfg)
    if cfg.train_size is not None:
        splits["train"] = splits["train"].select(range(min(cfg.train_size, len(splits["train"]))))
    classes = set(splits["train"]["label"])
    if len(classes) != 2:
        raise DataError(f"data.source={_show(cfg.source)}: the training split holds only label {classes}; "
                        "a classifier needs both classes (0 and 1)")
    return splits


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
    if "test" not in raw or "train" not in raw:
        raise DataError(f"data.split=official needs a train and a test split in data.source="
                        f"{_show(cfg.source)} (found: {', '.join(raw)}); use data.split=pooled")
    train, test = _with_index(raw["train"]), _with_index(raw["test"])
    if cfg.dedup:
        test = _drop_repeats(test)
        seen = set(test["text"])
        train = _drop_repeats(train).filter(lambda row: row["text"] not in seen)
    held_out = _holdout_size(cfg.valid_size, len(train), "data.valid_size")
    parts = train.train_test_split(test_size=held_out, seed=cfg.split_seed)
    return DatasetDict(train=parts["train"], valid=parts["test"], test=test)


def _holdout_size(size: float, n: int, key: str) -> float | int:
    count = size * n if size < 1 else size
    if count >= n or round(count) < 1 or n - count < 2:
        raise DataError(f"{key} = {size:g} leaves no room for training in {n} examples; "
                        "use fractions such as 0.05 or counts smaller than the data")
    return size if size < 1 else int(size)


def _drop_repeats(ds: Dataset) -> Dataset:
    seen: set[str] = set()
    keep = []
    for i, text in enumerate(ds["text"]):
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

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def tokenize_splits(splits: DatasetDict, tokenizer: Any, max_length: int, cache_dir: str | Path) -> dict[str, Encoded]:
    """Tokenize every split once, truncated to `max_length`; reuse the cache when texts, labels,
    tokenizer and max_length are all the same (safe for parallel jobs: one builds, the others wait)."""
    key = _cache_key(splits, tokenizer, max_length)
    root = Path(cache_dir).expanduser() / "tokenized"
    root.mkdir(parents=True, exist_ok=True)
    entry = root / key
    with FileLock(str(root / f"{key}.lock")):
        if (entry / "meta.json").is_file():
            log.info("tokenized data: cache hit %s", entry)
        else:
            log.info("tokenizing %s examples (max_length %d) into %s",
                     " / ".join(str(len(splits[s])) for s in SPLITS), max_length, entry)
            _write_cache(entry, {name: _encode(splits[name], tokenizer, max_length) for name in SPLITS})
        return {name: _read_split(entry, name) for name in SPLITS}


def _cache_key(splits: DatasetDict, tokenizer: Any, max_length: int) -> str:
    digest = hashlib.sha256(f"format={_CACHE_FORMAT};max_length={max_length};".encode())
    digest.update(_tokenizer_fingerprint(tokenizer).encode())
    for name in SPLITS:
        digest.update(f";{name}={len(splits[name])};".encode())
        digest.update(np.asarray(splits[name]["label"], dtype=np.int64).tobytes())
        digest.update(np.asarray(splits[name]["index"], dtype=np.int64).tobytes())
        for text in splits[name]["text"]:
            digest.update(text.encode())
            digest.update(b"\0")
    return digest.hexdigest()[:32]


def _tokenizer_fingerprint(tokenizer: Any) -> str:
    # calling a tokenizer stores its truncation settings in the backend: leave them out of the identity
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    spec.pop("truncation", None)
    spec.pop("padding", None)
    return json.dumps(spec, sort_keys=True)


def _encode(ds: Dataset, tokenizer: Any, max_length: int, chunk: int = 4096) -> Encoded:
    pieces: list[list[int]] = []
    texts = ds["text"]
    for start in range(0, len(texts), chunk):
        pieces += tokenizer(texts[start:start + chunk], truncation=True, max_length=max_length,
                            return_attention_mask=False, return_token_type_ids=False)["input_ids"]
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = np.fromiter((t for p in pieces for t in p), dtype=np.int32, count=int(offsets[-1]))
    return Encoded(ids, offsets, np.asarray(ds["label"], dtype=np.int64), np.asarray(ds["index"], dtype=np.int64))


def _write_cache(entry: Path, encoded: dict[str, Encoded]) -> None:
    tmp = entry.with_name(entry.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, enc in encoded.items():
        for field in ("ids", "offsets", "labels", "index"):
            np.save(tmp / f"{name}.{field}.npy", getattr(enc, field))
    (tmp / "meta.json").write_text(json.dumps({name: len(enc) for name, enc in encoded.items()}))
    shutil.rmtree(entry, ignore_errors=True)
    os.replace(tmp, entry)  # a reader sees the whole entry or none of it


def _read_split(entry: Path, name: str) -> Encoded:
    return Encoded(*(np.load(entry / f"{name}.{field}.npy") for field in ("ids", "offsets", "labels", "index")))


# ---------------------------------------------------------------------------------------------- batching


def collate(items: Iterable[int], data: Encoded, pad_id: int, pad_to: int | None) -> dict[str, torch.Tensor]:
    """Pad the chosen items to `pad_to` tokens, or to the longest item when `pad_to` is None."""
    items = list(items)
    lengths = data.lengths[items]
    width = pad_to or int(lengths.max())
    input_ids = np.full((len(items), width), pad_id, dtype=np.int64)
    for row, (item, length) in enumerate(zip(items, lengths)):
        start = data.offsets[item]
        input_ids[row, :length] = data.ids[start:start + length]
    attention_mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask),
            "labels": torch.from_numpy(data.labels[items])}


def make_loader(data: Encoded, batch_size: int, pad_id: int, pad_to: int | None, shuffle: bool,
                seed: int = 0) -> DataLoader:
    """Batches of padded tensors; shuffled reproducibly from `seed` when `shuffle`."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(range(len(data)), batch_size=batch_size, shuffle=shuffle, generator=generator,
                      collate_fn=partial(collate, data=data, pad_id=pad_id, pad_to=pad_to))
