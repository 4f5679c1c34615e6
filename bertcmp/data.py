"""Data: read a labelled text source, split it reproducibly, tokenize it once (cached), serve batches.

The result of `load_splits` is three `datasets.Dataset`s (train / valid / test) with the columns
`text`, `label` (0 = negative, 1 = positive) and `index` (the row id in the pooled data, or in the official
test split), so predictions of different runs on the same data config line up item by item.
"""

from __future__ import annotations

import glob
import hashlib
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
from datasets import Dataset, DatasetDict, concatenate_datasets, load_dataset
from filelock import FileLock
from omegaconf import DictConfig, ListConfig
from tokenizers import Encoding, Tokenizer
from torch.utils.data import DataLoader, Sampler

from bertcmp.errors import ConfigError, DataError
from bertcmp.synthetic import make_reviews

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
NEGATIVE_LABELS = {"0", "neg", "negative", "false"}
POSITIVE_LABELS = {"1", "pos", "positive", "true"}
_SPLIT_IN_FILENAME = re.compile(r"(?:^|[-_.])(train|test|valid|validation|dev)(?:$|[-_.\d])")
_CACHE_FORMAT = 3


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


def column(ds: Dataset, name: str) -> list:
    """A column as a Python list, read through Arrow in one go (row-by-row access is ~100x slower)."""
    return ds.with_format("arrow")[:][name].to_pylist()


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
    for key, name in (("data.text_column", text_column), ("data.label_column", label_column)):
        if name not in ds.column_names:
            raise DataError(f"{key}={name!r} is not a column of data.source={_show(source)} "
                            f"({split} split has: {', '.join(ds.column_names)})")
    texts = column(ds, text_column)
    empty = [i for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip()]
    if empty:
        raise DataError(f"data.source={_show(source)} has {len(empty)} empty text(s) in column "
                        f"{text_column!r} of its {split} split (first at row {empty[0]}); remove them")
    labels = _labels_to_ints(column(ds, label_column), label_column, split)
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
    if cfg.synthetic:
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
    classes = set(column(splits["train"], "label"))
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
        seen = set(column(test, "text"))
        train = _drop_repeats(train)
        train = train.select([i for i, text in enumerate(column(train, "text")) if text not in seen])
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
    for i, text in enumerate(column(ds, "text")):
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

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


class Encodings(NamedTuple):
    ids: list[list[int]]  # special tokens included
    truncated: list[bool]


def tokenize_splits(splits: DatasetDict, tokenizer: Any, max_length: int, cache_dir: str | Path,
                    truncation: str = "head", head_tokens: int = 128) -> dict[str, Encoded]:
    """Tokenize every split once, truncated to `max_length` as `truncation` says; reuse the cache when texts,
    labels, tokenizer, max_length and truncation are all the same (safe for parallel jobs: one builds, the
    others wait)."""
    truncation = str(truncation)
    if truncation == "head_tail":
        _check_head_tokens(head_tokens, max_length, _specials(_plain_backend(tokenizer)))
    key = _cache_key(splits, tokenizer, max_length, truncation, head_tokens)
    root = Path(cache_dir).expanduser() / "tokenized"
    root.mkdir(parents=True, exist_ok=True)
    entry = root / key
    with FileLock(str(root / f"{key}.lock")):
        if (entry / "meta.json").is_file():
            log.info("tokenized data: cache hit %s", entry)
        else:
            log.info("tokenizing %s examples (max_length %d, truncation %s) into %s",
                     " / ".join(str(len(splits[s])) for s in SPLITS), max_length, truncation, entry)
            encoded = {name: _encode(splits[name], tokenizer, max_length, truncation, head_tokens) for name in SPLITS}
            encoded["test"].n_tokens = full_lengths(column(splits["test"], "text"), tokenizer)
            _write_cache(entry, encoded)
        return {name: _read_split(entry, name) for name in SPLITS}


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
    for name in SPLITS:
        digest.update(f";{name}={len(splits[name])};".encode())
        digest.update(np.asarray(column(splits[name], "label"), dtype=np.int64).tobytes())
        digest.update(np.asarray(column(splits[name], "index"), dtype=np.int64).tobytes())
        digest.update("\0".join(column(splits[name], "text")).encode())
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


def full_lengths(texts: Sequence[str], tokenizer: Any) -> np.ndarray:
    """How many tokens each whole text is, special tokens included (what max_length is compared with)."""
    backend = _plain_backend(tokenizer)
    encodings = backend.encode_batch_fast(list(texts), add_special_tokens=False)
    return np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings)) + _specials(backend)


def encode_texts(texts: Sequence[str], tokenizer: Any, max_length: int, truncation: str = "head",
                 head_tokens: int = 128) -> Encodings:
    """Token ids of each text, special tokens included, at most max_length of them, and which texts lost tokens.

    head: the first tokens, exactly what `tokenizer(texts, truncation=True, max_length=max_length)` gives.
    tail: the last ones (the tokenizer with truncation_side="left"). head_tail: the first `head_tokens` and the
    rest from the end (Sun et al. 2019). The kept ids are always the tokenizer's own ids for those parts."""
    if str(truncation) == "head":
        return _encode_head(texts, tokenizer, max_length)
    backend = _plain_backend(tokenizer)
    budget = max_length - _specials(backend)
    keep_head = head_tokens if str(truncation) == "head_tail" else 0
    encodings = backend.encode_batch_fast(list(texts), add_special_tokens=False)
    long = [i for i, enc in enumerate(encodings) if len(enc.ids) > budget]
    if keep_head:  # a second encoding of each long text gives its tail
        tails = backend.encode_batch_fast([texts[i] for i in long], add_special_tokens=False)
    for n, i in enumerate(long):
        if keep_head:
            encodings[i].truncate(keep_head, direction="right")
            tails[n].truncate(budget - keep_head, direction="left")
            encodings[i] = Encoding.merge([encodings[i], tails[n]], growing_offsets=True)
        else:
            encodings[i].truncate(budget, direction="left")
    truncated = [False] * len(encodings)
    for i in long:
        truncated[i] = True
    return Encodings([backend.post_process(enc).ids for enc in encodings], truncated)


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


def _encode(ds: Dataset, tokenizer: Any, max_length: int, truncation: str, head_tokens: int) -> Encoded:
    pieces, truncated = encode_texts(column(ds, "text"), tokenizer, max_length, truncation, head_tokens)
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = np.fromiter(itertools.chain.from_iterable(pieces), dtype=np.int32, count=int(offsets[-1]))
    return Encoded(ids, offsets, np.asarray(column(ds, "label"), dtype=np.int64),
                   np.asarray(column(ds, "index"), dtype=np.int64), np.asarray(truncated, dtype=bool))


_ARRAYS = ("ids", "offsets", "labels", "index", "truncated", "n_tokens")


def _write_cache(entry: Path, encoded: dict[str, Encoded]) -> None:
    tmp = entry.with_name(entry.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, enc in encoded.items():
        for field in _ARRAYS:
            if getattr(enc, field) is not None:
                np.save(tmp / f"{name}.{field}.npy", getattr(enc, field))
    (tmp / "meta.json").write_text(json.dumps({name: len(enc) for name, enc in encoded.items()}))
    shutil.rmtree(entry, ignore_errors=True)
    os.replace(tmp, entry)  # a reader sees the whole entry or none of it


def _read_split(entry: Path, name: str) -> Encoded:
    arrays = {field: np.load(path) for field in _ARRAYS if (path := entry / f"{name}.{field}.npy").is_file()}
    return Encoded(**arrays)


# ---------------------------------------------------------------------------------------------- batching


def collate(items: Iterable[int], data: Encoded, pad_id: int, pad_to: int | None) -> dict[str, torch.Tensor]:
    """Pad the chosen items to `pad_to` tokens, or to the longest item when `pad_to` is None. `item` holds
    the items' positions in the split, so results of reordered (length-sorted) batches can be put back."""
    items = np.fromiter(items, dtype=np.int64)
    lengths = data.lengths[items]
    width = pad_to or int(lengths.max())
    input_ids = np.full((len(items), width), pad_id, dtype=np.int64)
    for row, (item, length) in enumerate(zip(items, lengths)):
        start = data.offsets[item]
        input_ids[row, :length] = data.ids[start:start + length]
    attention_mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask),
            "labels": torch.from_numpy(data.labels[items]), "item": torch.from_numpy(items)}


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
