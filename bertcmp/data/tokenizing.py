"""Tokenizing once: each model's own ids, truncated at the head, the tail or both, kept in a cache that every
later run with the same data, tokenizer and length reads instead."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np
from datasets import Dataset, DatasetDict
from filelock import FileLock, Timeout
from tokenizers import Tokenizer

from bertcmp.data.sources import column
from bertcmp.data.splits import SPLITS
from bertcmp.errors import ConfigError
from bertcmp.outputs import replacing

log = logging.getLogger("bertcmp.data")  # one logger for the package: the runs' logs name it so


_CACHE_FORMAT = 5


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
    entry = cache_entry(splits, tokenizer, max_length, cache_dir, truncation, head_tokens)
    root = entry.parent
    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(root)
    with FileLock(str(root / f"{entry.name}.lock")):
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


def cache_entry(splits: DatasetDict, tokenizer: Any, max_length: int, cache_dir: str | Path, truncation: str = "head",
                head_tokens: int = 128) -> Path:
    """Where tokenize_splits keeps these splits tokenized so: the folder exists once they are (bertcmp.prepare
    reports it)."""
    truncation = str(truncation)
    return Path(cache_dir).expanduser() / "tokenized" / _cache_key(splits, tokenizer, max_length, truncation,
                                                                   head_tokens)


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
