"""Reading a labelled text source: a Hub id or a local copy in the Hub's layout, an aclImdb folder, or csv /
jsonl / parquet files, into splits with the columns `text` (`text_pair` for pair tasks) and `label`."""

from __future__ import annotations

import csv
import glob
import itertools
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Optional, Sequence

from datasets import ClassLabel, Dataset, DatasetDict, Features, Json, Value, load_dataset
from omegaconf import DictConfig

from bertcmp import hub
from bertcmp.data.labels import empty_rows, is_unlabelled, label_classes, _label_value
from bertcmp.errors import DataError, summary

log = logging.getLogger("bertcmp.data")  # one logger for the package: the runs' logs name it so


FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_SPLIT_IN_FILENAME = re.compile(r"(?:^|[-_.])(train|test|valid|validation|dev)(?:$|[-_.\d])")


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
    elif not all(is_hub_source(s) for s in sources):
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


def is_hub_source(source: str) -> bool:
    """Whether a data.source names a Hub data set: a Hub id (bertcmp.hub.is_hub_id), not a data file's name (a
    path with more slashes, a glob or a file not there yet is local too)."""
    return hub.is_hub_id(source) and Path(source).suffix.lower() not in FILE_BUILDERS


def hub_source(cfg: DictConfig) -> Optional[str]:
    """The Hub data set a data config reads, or None for local files and generated data."""
    source = None if cfg.synthetic else cfg.source
    return source if isinstance(source, str) and is_hub_source(source) else None


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
        if hub.is_offline() and is_hub_source(path):
            raise hub.not_cached("data.source", shown) from err
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
