"""The files a run writes into its output directory, each written atomically (a temp file, then a rename),
so an interrupted run leaves the previous complete version or nothing, never a truncated file.

    metrics.json          status, best epoch, valid / test metrics, speed, size (read by bertcmp.compare)
    history.jsonl         one line per epoch
    test_predictions.csv  index,label,pred,prob_pos,n_tokens,text for every test item (more than two classes:
                          label and pred as class names, and prob_<class> for each class; text: its start)
    checkpoint/           the best weights (model.safetensors), the config, the tokenizer, and bertcmp.json
                          (the classes and how texts were tokenized: what bertcmp.predict needs)
    resume/state.pt       while training: the last finished epoch's full state; removed once the run completes
    .lock                 held (flock) by the process running the run, for as long as it runs

A temporary is named `.<name>.tmp<pid>`; one that outlives its process (a kill at the wrong moment) is removed by
the next process to hold the directory.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import logging
import os
import re
import shutil
import signal
import socket
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from bertcmp.errors import RUN_ADVICE, summary, writing

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.jsonl"
PREDICTIONS_FILE = "test_predictions.csv"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_SETTINGS = "bertcmp.json"
RESUME_DIR = "resume"
LOCK_FILE = ".lock"
_TEMPORARY = re.compile(r"\..+\.tmp\d+")


def temporary(path: Path) -> Path:
    """Where `path` is written before it is renamed into place: beside it, named for this process."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


@contextlib.contextmanager
def replacing(path: Path, advice: str = RUN_ADVICE) -> Iterator[Path]:
    """Write the temporary that the with-block is given, then rename it to `path` (a file or a directory): a
    reader sees the old version or the new one, never a part. A failed write removes its temporary, and a full
    disk is one line naming `path` and giving `advice` (errors.NoSpaceError)."""
    tmp = temporary(path)
    _remove(tmp)
    try:
        with writing(path, advice):
            yield tmp
            if path.is_dir() and tmp.is_dir():
                shutil.rmtree(path)
            os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_text(path: Path, text: str, advice: str = RUN_ADVICE) -> None:
    with replacing(path, advice) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=_plain) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(row, default=_plain) + "\n" for row in rows))


def probability_columns(classes: Sequence[str]) -> list[str]:
    """The names of the class-probability columns: prob_pos for two classes (the positive one's), else
    prob_<class> for each class."""
    return ["prob_pos"] if len(classes) == 2 else [f"prob_{name}" for name in classes]


def shown_class(class_id: int, classes: Sequence[str]) -> int | str:
    """A class as prediction files write it: for two classes its id 0 / 1, for more its name."""
    return int(class_id) if len(classes) == 2 else classes[class_id]


def read_class(cell: str, classes: Sequence[str]) -> int:
    """The class id a prediction file's label or pred cell stands for: the inverse of shown_class."""
    return int(float(cell)) if len(classes) == 2 else list(classes).index(cell)


def class_cells(class_id: int, probs: np.ndarray, classes: Sequence[str]) -> list[Any]:
    """A predicted class and the item's probabilities as prediction files write them (probability_columns)."""
    return [shown_class(class_id, classes), *(f"{float(x):.6f}" for x in (probs[1:] if len(classes) == 2 else probs))]


TEXT_START = 100  # characters of each test text a run keeps beside its prediction: enough to recognise it


def text_start(text: str) -> str:
    """The start of a text as prediction files keep it: TEXT_START characters at most, on one line."""
    text = " ".join(text.split())
    return text if len(text) <= TEXT_START else text[:TEXT_START - 1] + "…"


def write_predictions(path: Path, index: np.ndarray, labels: np.ndarray, preds: np.ndarray, probs: np.ndarray,
                      classes: Sequence[str], n_tokens: Optional[np.ndarray] = None,
                      texts: Optional[Sequence[str]] = None) -> None:
    """One row per test item, sorted by its row id so two runs' files line up line by line: index, label, pred,
    the probabilities (class_cells), `n_tokens`, each text's whole length in tokens before truncation, and the
    start of each text (text_start), so that a comparison can show items without reading the data."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["index", "label", "pred", *probability_columns(classes),
                     *(["n_tokens"] if n_tokens is not None else []), *(["text"] if texts is not None else [])])
    for i in np.argsort(index, kind="stable"):
        extra = [int(n_tokens[i])] if n_tokens is not None else []
        extra += [text_start(texts[i])] if texts is not None else []
        writer.writerow([int(index[i]), shown_class(labels[i], classes), *class_cells(preds[i], probs[i], classes),
                         *extra])
    write_text(path, buffer.getvalue())


def write_checkpoint(directory: Path, fill: Callable[[Path], None]) -> None:
    """A directory that `fill` writes (weights, config, tokenizer), swapped in as a whole."""
    with replacing(directory) as tmp:
        tmp.mkdir(parents=True)
        fill(tmp)


def remove_checkpoint(run_dir: Path) -> None:
    """Remove a checkpoint that an earlier run of this directory left, if there is one."""
    if (run_dir / CHECKPOINT_DIR).exists():
        log.info("removed %s/%s: it was saved by an earlier run of this directory", run_dir, CHECKPOINT_DIR)
    _remove(run_dir / CHECKPOINT_DIR)


def write_resume_state(run_dir: Path, state: dict) -> None:
    """The state, complete: a requeue signal, SIGTERM or Ctrl-C arriving meanwhile waits until it is written."""
    directory = run_dir / RESUME_DIR
    directory.mkdir(exist_ok=True)
    import torch

    # through a Python file, so that a failed write is an OSError rather than torch's own RuntimeError
    with signals_deferred(signal.SIGUSR2, signal.SIGTERM, signal.SIGINT), \
            replacing(directory / "state.pt") as tmp, open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def signals_deferred(*signums: int) -> Iterator[None]:
    """Signals that arrive during the block are handled at its end, by the handlers they had before, each once.
    Python runs signal handlers in the main thread between bytecodes, whichever thread the signal reached, so
    swapping the handlers (not the thread's signal mask) is what holds them back."""
    caught: list[int] = []
    previous: dict[int, Any] = {}
    try:
        for signum in signums:
            previous[signum] = signal.signal(signum, lambda number, frame: caught.append(number))
    except ValueError:  # not the main thread: signals are not ours to hold
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        yield
        return
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(caught):
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)


def read_resume_state(run_dir: Path) -> dict | None:
    """The saved state, read as data only (tensors and plain values, `weights_only`): a file planted in a shared
    sweep directory or an archive of runs could otherwise run code of its author's choosing when unpickled. One
    that is not such data is named in a warning and the run starts afresh."""
    import torch

    path = run_dir / RESUME_DIR / "state.pt"
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle's and torch's many errors all mean "not a state bertcmp wrote"
        log.warning("ignoring %s: it is not a resume state bertcmp wrote (%s); starting afresh", path,
                    summary(err)[:200])
        return None


def clear_resume_state(run_dir: Path) -> None:
    shutil.rmtree(run_dir / RESUME_DIR, ignore_errors=True)


@contextlib.contextmanager
def holding(run_dir: Path) -> Iterator[Optional[str]]:
    """Hold `run_dir` for the with-block, so that one live process at a time runs it: gives None when this process
    holds it, else who does ("process <pid> on <host>"). The lock is the operating system's (flock), so a killed
    process lets go of it at once and the next one takes over."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            return
        except OSError as err:  # a file system without locks (some NFS mounts): run, unguarded
            log.warning("cannot lock %s (%s): a second sweep in this directory would not be noticed", run_dir,
                        err.strerror)
            yield None
            return
        holder = f"process {os.getpid()} on {socket.gethostname()}".encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder, 0)
        yield None
    finally:
        os.close(fd)  # lets go of the lock


def is_held(run_dir: Path) -> Optional[bool]:
    """Whether a live process holds `run_dir` now; None when no process ever took it (bertcmp 0.2 and older)."""
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:  # a file system without locks: cannot tell
        return None
    finally:
        os.close(fd)


def remove_leftovers(run_dir: Path) -> list[str]:
    """Remove the temporaries that processes which held `run_dir` before left behind (only the holder writes there,
    so every temporary found by the holder is one); give their names."""
    found = [p for d in (run_dir, run_dir / RESUME_DIR) if d.is_dir() for p in d.iterdir()
             if _TEMPORARY.fullmatch(p.name)]
    for path in found:
        _remove(path)
    return [str(p.relative_to(run_dir)) for p in found]


def read_json(path: Path) -> dict | None:
    """The parsed file, or None when it is missing or not valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
