"""Labels and classes: what counts as no label, which classes a label column holds, and their order."""

from __future__ import annotations

import itertools
import re
from typing import Any, Optional, Sequence

import numpy as np

from bertcmp.errors import DataError


NEGATIVE_LABELS = {"0", "neg", "negative", "false"}
POSITIVE_LABELS = {"1", "pos", "positive", "true"}


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
