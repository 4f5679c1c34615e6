"""Use a trained run: the classes of new texts, from the run's best checkpoint, tokenized exactly as it was trained.

    python -m bertcmp.predict RUN_DIR --text "A moving film." --text "Dull from start to end."
    python -m bertcmp.predict RUN_DIR --file texts.csv [--text-column text] [--out predictions.csv]

    from bertcmp import load_classifier
    classifier = load_classifier("outputs/multirun/2026-11-27/10-00-00/1_model=modernbert")
    result = classifier.predict(["A moving film."])  # result.labels, result.probs

The output has the run's own columns (as its test_predictions.csv): `pred` and `prob_pos` for two classes,
`pred` as a class name and `prob_<class>` for each class with more; one row per input, in input order.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from datasets import load_dataset
from transformers import PreTrainedTokenizerFast

from bertcmp import outputs
from bertcmp.data import FILE_BUILDERS, column, empty_rows, encode, flatten, make_loader
from bertcmp.errors import BertcmpError, DataError, ModelError, summary
from bertcmp.model import load_tokenizer, load_trained
from bertcmp.train import predict_probs

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    """The classes a model gives some texts: `preds` (class ids) and `probs` (texts x classes), in input order."""
    classes: list[str]
    preds: np.ndarray
    probs: np.ndarray

    @property
    def labels(self) -> list[str]:
        """Each text's predicted class, by name."""
        return [self.classes[i] for i in self.preds]

    def columns(self) -> list[str]:
        return ["pred", *outputs.probability_columns(self.classes)]

    def rows(self) -> list[list[Any]]:
        """As the run's test_predictions.csv writes them: two classes as ids and prob_pos, more by name."""
        return [outputs.class_cells(pred, p, self.classes) for pred, p in zip(self.preds, self.probs)]


class Classifier:
    """A run's trained model with the tokenizer and settings it was trained with."""

    def __init__(self, model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, settings: dict,
                 device: torch.device):
        self.model, self.tokenizer, self.settings, self.device = model.to(device), tokenizer, settings, device

    @property
    def classes(self) -> list[str]:
        return list(self.settings["classes"])

    @property
    def pairs(self) -> bool:
        """Whether the run classified pairs of texts (data.text_pair_column)."""
        return self.settings.get("text_pair_column") is not None

    def predict(self, texts: Sequence[str], text_pairs: Optional[Sequence[str]] = None,
                batch_size: int = 64) -> Prediction:
        """The class of each text (or pair), tokenized as the run did, batched by length. A single string is one
        text (not a sequence of characters)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if isinstance(text_pairs, str):
            text_pairs = [text_pairs]
        if self.pairs != (text_pairs is not None):
            raise DataError("this model classifies pairs of texts: give the second texts too (text_pairs, --pair, "
                            "--pair-column)" if self.pairs else "this model classifies single texts, not pairs")
        if text_pairs is not None and len(text_pairs) != len(texts):
            raise DataError(f"{len(texts)} texts but {len(text_pairs)} second texts: give one of each per item")
        if not texts:
            return Prediction(self.classes, np.zeros(0, dtype=np.int64), np.zeros((0, len(self.classes))))
        s = self.settings
        encodings = encode(texts, text_pairs, self.tokenizer, s["max_length"], s["truncation"], s["head_tokens"])
        encoded = flatten(encodings, labels=[0] * len(texts), index=range(len(texts)))
        loader = make_loader(encoded, batch_size, self.tokenizer.pad_token_id, s["max_length"], padding="dynamic")
        probs = predict_probs(self.model, loader, self.device)
        return Prediction(self.classes, probs.argmax(-1), probs)


def load_classifier(path: str | Path, device: str | torch.device | None = None) -> Classifier:
    """The best model of a completed run (its directory) or a checkpoint directory, on `device` (default: the
    first GPU if there is one, else the CPU)."""
    checkpoint = checkpoint_dir(Path(path))
    settings = outputs.read_json(checkpoint / outputs.CHECKPOINT_SETTINGS)
    if settings is None:
        raise ModelError(f"{checkpoint}/{outputs.CHECKPOINT_SETTINGS} is missing or damaged: the checkpoint was "
                         "written by bertcmp before 0.2, which did not record how texts were tokenized; run it again")
    tokenizer = load_tokenizer(str(checkpoint))
    model = load_trained(checkpoint, settings["head"], settings["pooling"], len(settings["classes"]), tokenizer)
    device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return Classifier(model, tokenizer, settings, device)


def checkpoint_dir(path: Path) -> Path:
    """The checkpoint of a completed run's directory, or `path` itself if it is a checkpoint."""
    if (path / outputs.CHECKPOINT_SETTINGS).is_file():
        return path
    if not path.is_dir():
        raise ModelError(f"{path} is not a directory: give a run directory (it holds metrics.json and checkpoint/)")
    metrics = outputs.read_json(path / outputs.METRICS_FILE)
    if metrics is None:
        raise ModelError(f"{path} is not a run directory (no readable {outputs.METRICS_FILE}); give the directory of "
                         "one run, e.g. outputs/multirun/<date>/<time>/0_model=bert")
    if metrics.get("status") != "completed":
        raise ModelError(f"{path} has not completed (status: {metrics.get('status')}); only a completed run's "
                         "checkpoint holds its best model: finish it by running the same command again")
    if not (path / outputs.CHECKPOINT_DIR).is_dir():
        raise ModelError(f"{path} has no {outputs.CHECKPOINT_DIR}/: it ran with trainer.save_checkpoint=none; "
                         "run it again with trainer.save_checkpoint=best to keep its model")
    return path / outputs.CHECKPOINT_DIR


def read_texts(path: Path, text_column: str, pair_column: Optional[str]) -> tuple[list[str], Optional[list[str]]]:
    """The texts (and second texts) of a csv / jsonl / parquet file, or of a .txt file (one text per line)."""
    if not path.is_file():
        raise DataError(f"--file {path} does not exist")
    if path.suffix.lower() == ".txt":
        if pair_column:
            raise DataError(f"--file {path}: a .txt file holds single texts; this model reads pairs: use a csv or "
                            "jsonl file with both columns")
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()], None
    builder = FILE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise DataError(f"--file {path}: use a .csv, .jsonl, .json, .parquet or .txt file")
    try:
        table = load_dataset(builder, data_files=str(path), split="train")
    except Exception as err:  # datasets raises many types for a file it cannot parse
        raise DataError(f"--file {path} could not be read ({summary(err)})") from err
    for flag, name in (("--text-column", text_column), ("--pair-column", pair_column)):
        if name and name not in table.column_names:
            raise DataError(f"{flag}={name!r} is not a column of {path} (it has: {', '.join(table.column_names)})")
    texts = column(table, text_column)
    pairs = column(table, pair_column) if pair_column else None
    for name, values in ((text_column, texts), (pair_column, pairs or [])):
        if bad := empty_rows(values):
            raise DataError(f"--file {path}: column {name!r} has {len(bad)} empty text(s) (first at row {bad[0]})")
    return texts, pairs


def refuse_unused_options(args: argparse.Namespace, pairs: bool) -> None:
    """An option that would be ignored is a mistake to name, not to pass over."""
    if args.pair_column and not pairs:
        raise DataError(f"--pair-column={args.pair_column!r}: this model classifies single texts, not pairs; "
                        "leave --pair-column out")
    if not args.file:
        for flag, value in (("--text-column", args.text_column), ("--pair-column", args.pair_column)):
            if value:
                raise DataError(f"{flag}={value!r} names a column of --file, but the texts come from --text; "
                                f"leave {flag} out")
    elif args.file.suffix.lower() == ".txt" and args.text_column:
        raise DataError(f"--text-column={args.text_column!r}: --file {args.file} is a .txt file, one text per line "
                        "and no columns; leave --text-column out, or give a csv / jsonl / parquet file")


def is_same_file(a: Path, b: Path) -> bool:
    """The same file, whatever the spelling: links resolved, hard links included."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def print_table(texts: Sequence[str], prediction: Prediction, stream=None) -> None:
    """A short table: each text's start, its class by name (files write two classes' `pred` as the id 0 / 1, which
    on screen reads as a class named 0 or 1), and the class probabilities, one line per text."""
    stream = stream or sys.stdout
    head = ["text", *prediction.columns()]
    lines = [[_short(text), prediction.classes[pred], *row[1:]]
             for text, pred, row in zip(texts, prediction.preds, prediction.rows())]
    lines = [[_printable(str(cell)) for cell in line] for line in [head, *lines]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip(), file=stream)


def _printable(cell: str) -> str:
    """A cell on one line: a newline or other control character in a class name shown escaped (\\n)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in cell)


def _short(text: str, width: int = 50) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def write_csv(path: Path, prediction: Prediction) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([prediction.columns(), *prediction.rows()])
    outputs.write_text(path, buffer.getvalue())


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bertcmp.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="a completed run's directory (or its checkpoint/)")
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--text", action="append", help="a text to classify (repeat for more)")
    given.add_argument("--file", type=Path, help="a csv / jsonl / parquet file of texts, or a .txt with one per line")
    parser.add_argument("--pair", action="append", help="pair tasks: the second text of each --text, in order")
    parser.add_argument("--text-column", help="the file's text column (default: the run's data.text_column)")
    parser.add_argument("--pair-column",
                        help="the file's second-text column (default: the run's data.text_pair_column)")
    parser.add_argument("--out", type=Path, help="write the predictions to this csv (default: print a table)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: a GPU if there is one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    if args.file and args.out and is_same_file(args.file, args.out):
        print(f"error: --out {args.out} is the input file {args.file}: the predictions would overwrite it; give "
              "--out another path", file=sys.stderr)
        return 2
    try:
        classifier = load_classifier(args.run_dir, args.device)
        s = classifier.settings
        refuse_unused_options(args, classifier.pairs)
        if args.file:
            texts, pairs = read_texts(args.file, args.text_column or s["text_column"],
                                      (args.pair_column or s["text_pair_column"]) if classifier.pairs else None)
        else:
            texts, pairs = args.text, args.pair
        prediction = classifier.predict(texts, pairs, batch_size=args.batch_size)
        if args.out:
            write_csv(args.out, prediction)
            print(f"{len(texts)} predictions: {args.out}")
        else:
            print_table(texts, prediction)
    except BertcmpError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
