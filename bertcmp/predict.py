"""Use a trained run: the classes of new texts, from the run's best checkpoint, tokenized exactly as it was trained.

    python -m bertcmp.predict RUN_DIR --text "A moving film." --text "Dull from start to end."
    python -m bertcmp.predict RUN_DIR --file texts.csv [--text-column text] [--out predictions.csv]

    from bertcmp import load_classifier
    classifier = load_classifier("outputs/multirun/2026-11-27/10-00-00/1_model=modernbert")
    result = classifier.predict(["A moving film."])  # result.labels, result.probs

The output has one row per input, in input order: the input's own columns (--keep-columns chooses them; a .txt
gives `line` and `text`), then the run's own columns (as its test_predictions.csv): `pred` and `prob_pos` for two
classes, `pred` as a class name and `prob_<class>` for each class with more. A blank text is classified as the
empty text, with a warning naming its row. A checkpoint answers only for the completed run of its directory.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerFast

from bertcmp import outputs
from bertcmp.data import FILE_BUILDERS, as_texts, column, empty_rows, encode, flatten, load_files, make_loader
from bertcmp.devices import resolve_device
from bertcmp.errors import BertcmpError, ConfigError, DataError, ModelError, summary
from bertcmp.model import load_trained, load_trained_tokenizer
from bertcmp.train import PRECISIONS, in_hardware, predict_probs

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
                 device: torch.device, dtype: Optional[torch.dtype] = None):
        self.model, self.tokenizer, self.settings, self.device = model.to(device), tokenizer, settings, device
        self.dtype = dtype  # the autocast predictions run under; None: fp32

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

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
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r}: give a whole number of texts, 1 or more")
        if not texts:
            return Prediction(self.classes, np.zeros(0, dtype=np.int64), np.zeros((0, len(self.classes))))
        s = self.settings
        encodings = encode(texts, text_pairs, self.tokenizer, s["max_length"], s["truncation"], s["head_tokens"])
        encoded = flatten(encodings, labels=[0] * len(texts), index=range(len(texts)))
        loader = make_loader(encoded, batch_size, self.tokenizer.pad_token_id, s["max_length"], padding="dynamic")
        probs = predict_probs(self.model, loader, self.device, self.dtype)
        return Prediction(self.classes, probs.argmax(-1), probs)


def load_classifier(path: str | Path, device: str | torch.device | None = None,
                    precision: str = "auto") -> Classifier:
    """The best model of a completed run (its directory) or a checkpoint directory, on `device` (default: the
    first GPU if there is one, else the CPU), predicting in `precision` (fp32, bf16, fp16; auto: the run's own
    where the device has it in hardware, else fp32). A checkpoint inside a run directory answers only for that
    directory's completed run: one left behind by an earlier computation is refused."""
    checkpoint, run = checkpoint_dir(Path(path))
    settings = read_settings(checkpoint)
    if run is not None:
        check_own_run(checkpoint, settings, run)
    device = resolve_device(device, key="device")
    tokenizer = load_trained_tokenizer(checkpoint)
    model = load_trained(checkpoint, settings["head"], settings["pooling"], len(settings["classes"]), tokenizer)
    return Classifier(model, tokenizer, settings, device, inference_dtype(precision, settings, device))


def inference_dtype(precision: str, settings: dict, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype of predictions: the one asked for, or with `auto` the run's own (bertcmp.json, from
    0.5) where the device computes in it natively; fp32 elsewhere, where a half type is emulated and slower."""
    if precision == "auto":
        trained = PRECISIONS.get(str(settings.get("precision", "fp32")))
        return trained if trained is not None and in_hardware(trained, device) else None
    if precision not in ("fp32", "bf16", "fp16"):
        raise ConfigError(f"precision {precision!r}: use auto, fp32, bf16 or fp16")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    return PRECISIONS[precision]


def checkpoint_dir(path: Path) -> tuple[Path, Optional[dict]]:
    """The checkpoint to load, and the metrics.json of the run it belongs to (None for a checkpoint on its own,
    outside a run directory). The run must have completed."""
    if not path.is_dir():
        raise ModelError(f"{path} is not a directory: give a run directory (it holds metrics.json and checkpoint/)")
    if (path / outputs.METRICS_FILE).is_file():
        run_dir, checkpoint = path, path / outputs.CHECKPOINT_DIR
    elif path.name == outputs.CHECKPOINT_DIR and (path.parent / outputs.METRICS_FILE).is_file():
        run_dir, checkpoint = path.parent, path
    elif (path / outputs.CHECKPOINT_SETTINGS).is_file() or (path / "config.json").is_file():
        return path, None
    else:
        raise ModelError(f"{path} is not a run directory (no {outputs.METRICS_FILE}) nor a checkpoint; give the "
                         "directory of one run, e.g. outputs/multirun/<date>/<time>/0_model=bert")
    metrics = outputs.read_json(run_dir / outputs.METRICS_FILE)
    if not isinstance(metrics, dict):
        raise ModelError(f"{run_dir / outputs.METRICS_FILE} is damaged (not a JSON object); run the run again")
    check_completed(run_dir, metrics)
    if not checkpoint.is_dir():
        raise ModelError(f"{run_dir} has no {outputs.CHECKPOINT_DIR}/: it ran with trainer.save_checkpoint=none; "
                         "run it again with trainer.save_checkpoint=best to keep its model")
    return checkpoint, metrics


def check_completed(run_dir: Path, metrics: dict) -> None:
    """Only a completed run's checkpoint holds its best model: say what the run is doing instead, and what to do."""
    status = metrics.get("status")
    if status == "completed":
        return
    if status == "running" and outputs.is_held(run_dir):
        raise ModelError(f"{run_dir} is still training: its checkpoint is the best model once it completes; wait "
                         "for it, then predict")
    why = {"running": "stopped before it completed (killed, or its disk filled up)",
           "interrupted": "was interrupted before it completed",
           "failed": f"failed ({metrics.get('error', 'no error recorded')})"}.get(status, f"has status {status!r}")
    raise ModelError(f"{run_dir} {why}: only a completed run's checkpoint holds its best model; run the same "
                     "command again to complete it")


SETTINGS_KEYS = ("classes", "head", "pooling", "max_length", "truncation", "head_tokens", "text_column")


def read_settings(checkpoint: Path) -> dict[str, Any]:
    """The checkpoint's bertcmp.json: its classes and how the run tokenized texts."""
    file = checkpoint / outputs.CHECKPOINT_SETTINGS
    if not file.is_file():
        raise ModelError(f"{checkpoint} has no {outputs.CHECKPOINT_SETTINGS}, which records the classes and how the "
                         "run tokenized texts: it is not a checkpoint of bertcmp 0.2 or later; train the run again")
    try:
        settings = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelError(f"{file} is damaged ({summary(err)}); train the run again, or restore the file") from err
    missing = [key for key in SETTINGS_KEYS if key not in settings] if isinstance(settings, dict) else SETTINGS_KEYS
    if missing:
        raise ModelError(f"{file} is damaged: it lacks {', '.join(missing)}; train the run again, or restore the file")
    classes = settings["classes"]
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise ModelError(f"{file} is damaged: 'classes' must list the class names (two or more); train the run "
                         "again, or restore the file")
    return settings


def check_own_run(checkpoint: Path, settings: dict, run: dict) -> None:
    """A checkpoint computed by another config than the directory's completed run (left when the directory was
    run again without saving one) must not answer for it."""
    key = settings.get("computation_key")  # recorded from bertcmp 0.5; older ones are judged by model and classes
    same = (key == run.get("computation_key") if key is not None else settings.get("model") == run.get("model"))
    if not same or settings["classes"] != run.get("classes", settings["classes"]):
        raise ModelError(f"{checkpoint} was saved by an earlier run of another config (classes "
                         f"{', '.join(settings['classes'])}), not by the run that completed in {checkpoint.parent} "
                         f"(classes {', '.join(run.get('classes') or ['?'])}); run it again with "
                         "trainer.save_checkpoint=best to keep its model")


@dataclass
class Inputs:
    """What to classify, one item per input row, in input order, and the input's columns that the output carries."""
    texts: list[str]
    pairs: Optional[list[str]]
    carried: dict[str, list]  # column name -> its value in each row
    row: str = "row"          # what a row is called in messages: a .txt file's are lines


def given_texts(texts: Sequence[str], pairs: Optional[Sequence[str]]) -> Inputs:
    carried = {"text": list(texts), **({"text_pair": list(pairs)} if pairs is not None else {})}
    return Inputs(list(texts), list(pairs) if pairs is not None else None, carried, row="--text")


def read_inputs(path: Path, text_column: str, pair_column: Optional[str],
                keep_columns: Optional[Sequence[str]] = None) -> Inputs:
    """The texts (and second texts) of a csv / jsonl / parquet file, every row, as the file holds them, and the
    columns to carry (`keep_columns`, by default all); or of a .txt file, one text per line, blank lines too."""
    if not path.is_file():
        raise DataError(f"--file {path} does not exist" if not path.is_dir() else f"--file {path} is a directory")
    if path.suffix.lower() == ".txt":
        if pair_column:
            raise DataError(f"--file {path}: a .txt file holds single texts; this model reads pairs: use a csv or "
                            "jsonl file with both columns")
        try:
            lines = path.read_bytes().decode("utf-8-sig").splitlines()
        except UnicodeDecodeError as err:
            raise DataError(f"--file {path} is not UTF-8 text (byte {err.object[err.start]:#04x} at offset "
                            f"{err.start}); save it as UTF-8") from None
        carried = {"line": list(range(1, len(lines) + 1)), "text": lines}
        return Inputs(lines, None, _kept(carried, keep_columns, path), row="line")
    builder = FILE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise DataError(f"--file {path}: use a .csv, .jsonl, .json, .parquet or .txt file")
    table = load_files(builder, [str(path)], f"--file {path}")
    for flag, name in (("--text-column", text_column), ("--pair-column", pair_column)):
        if name and name not in table.column_names:
            raise DataError(f"{flag}={name!r} is not a column of {path} (it has: {', '.join(table.column_names)})")
    carried = {name: column(table, name) for name in table.column_names}
    texts = as_texts(carried[text_column])
    pairs = as_texts(carried[pair_column]) if pair_column else None
    return Inputs(texts, pairs, _kept(carried, keep_columns, path))


def _kept(carried: dict[str, list], keep_columns: Optional[Sequence[str]], path: Path) -> dict[str, list]:
    if keep_columns is None:
        return carried
    if unknown := [name for name in keep_columns if name not in carried]:
        raise DataError(f"--keep-columns: {', '.join(map(repr, unknown))} is not a column of {path} (it has: "
                        f"{', '.join(carried)})")
    return {name: carried[name] for name in keep_columns}


def fill_blanks(inputs: Inputs, source: str) -> None:
    """A blank or missing text is classified as the empty text, never dropped: the output keeps one row per input."""
    for name, texts in (("text", inputs.texts), ("second text", inputs.pairs or [])):
        if blank := empty_rows(texts):
            for i in blank:
                texts[i] = texts[i] or ""
            log.warning("%s: %d blank %s(s) (the first at %s %d) classified as the empty text", source, len(blank),
                        name, inputs.row, blank[0] + 1)


def refuse_unused_options(args: argparse.Namespace, pairs: bool) -> None:
    """An option that would be ignored is a mistake to name, not to pass over."""
    if args.pair_column and not pairs:
        raise DataError(f"--pair-column={args.pair_column!r}: this model classifies single texts, not pairs; "
                        "leave --pair-column out")
    if not args.file:
        for flag, value in (("--text-column", args.text_column), ("--pair-column", args.pair_column),
                            ("--keep-columns", args.keep_columns and ",".join(args.keep_columns))):
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


def check_out(out: Path, file: Optional[Path]) -> None:
    """Where predictions go must be a new or old file, never the input, in a directory that exists."""
    if file and is_same_file(file, out):
        raise DataError(f"--out {out} is the input file {file}: the predictions would overwrite it; give --out "
                        "another path")
    if out.is_dir():
        raise DataError(f"--out {out} is a directory: give a file in it, e.g. {out / 'predictions.csv'}")
    if not out.parent.is_dir():
        raise DataError(f"--out {out}: the directory {out.parent} does not exist; create it, or give another path")


def write_csv(path: Path, prediction: Prediction, carried: dict[str, list]) -> None:
    """The carried input columns, then the prediction's, one row per input."""
    if clash := [name for name in carried if name in prediction.columns()]:
        raise DataError(f"the input's column {clash[0]!r} has the name of an output column: choose the input "
                        "columns to keep with --keep-columns")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*carried, *prediction.columns()])
    for i, row in enumerate(prediction.rows()):
        writer.writerow([_cell(values[i]) for values in carried.values()] + row)
    outputs.write_text(path, buffer.getvalue())


def _cell(value: Any) -> Any:
    """A carried value as the csv shows it: missing as an empty cell, a JSON list or object as JSON."""
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of texts, 1 or more")
    return value


def column_names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


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
    parser.add_argument("--keep-columns", type=column_names, metavar="A,B",
                        help="the input columns the output repeats before its own (default: all of them)")
    parser.add_argument("--out", type=Path, help="write the predictions to this csv (default: print a table)")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: a GPU if there is one)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                        help="auto: the run's own where the device has it in hardware, else fp32")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        if args.out:
            check_out(args.out, args.file)
    except DataError as err:  # before anything is loaded, and nothing written
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        classifier = load_classifier(args.run_dir, args.device, args.precision)
        s = classifier.settings
        refuse_unused_options(args, classifier.pairs)
        if args.file:
            inputs = read_inputs(args.file, args.text_column or s["text_column"],
                                 (args.pair_column or s["text_pair_column"]) if classifier.pairs else None,
                                 args.keep_columns)
        else:
            inputs = given_texts(args.text, args.pair)
        fill_blanks(inputs, str(args.file or "--text"))
        prediction = classifier.predict(inputs.texts, inputs.pairs, batch_size=args.batch_size)
        if args.out:
            write_csv(args.out, prediction, inputs.carried)
            print(f"{len(inputs.texts)} predictions: {args.out}")
        else:
            print_table(inputs.texts, prediction)
    except BertcmpError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
