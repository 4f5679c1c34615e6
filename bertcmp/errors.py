"""Errors a user can fix: each carries one line that names the bad key, file or value and what would be right."""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path
from typing import Iterator, Optional


class BertcmpError(Exception):
    """An error caused by the user's input, reported as one line without a traceback."""


class ConfigError(BertcmpError):
    """A config value outside its allowed range."""


class DataError(BertcmpError):
    """A data source that is missing or does not hold what the config says."""


class ModelError(BertcmpError):
    """A model that cannot be loaded or does not fit the config."""


class TrainingError(BertcmpError):
    """Training that cannot go on, such as a loss that became NaN or infinite."""


def summary(err: BaseException) -> str:
    """An exception in a few words for a one-line message: its type and the first line of what it says."""
    said = str(err).strip()
    return f"{type(err).__name__}: {said.splitlines()[0]}" if said else type(err).__name__


class NoSpaceError(BertcmpError):
    """A disk (or a quota) that filled up while a file was written."""


def is_disk_full(err: BaseException) -> bool:
    """Whether `err`, or an error it arose from, is a full disk or quota. Libraries that write in C++ or Rust
    (torch.save to a path, safetensors) report it in their own exception types, with the OS's words."""
    seen: Optional[BaseException] = err
    while seen is not None:
        if isinstance(seen, NoSpaceError) or isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(words in str(seen) for words in ("No space left on device", "Disk quota exceeded")):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


RUN_ADVICE = ("free some space or write elsewhere (hydra.run.dir, hydra.sweep.dir, cache_dir), then run the same "
              "command again; a run goes on from its last saved epoch")


@contextlib.contextmanager
def writing(path: Path, advice: str = RUN_ADVICE) -> Iterator[None]:
    """Turn a full disk while `path` is written into one line that names where, and what to do."""
    try:
        yield
    except Exception as err:
        if not is_disk_full(err):
            raise
        raise NoSpaceError(f"no space left on the disk holding {path.parent} (writing {path.name}): {advice}") from None


class TrackingError(BertcmpError):
    """Tracking asked for explicitly (logger.mode=online) that cannot start."""


class NotCachedError(BertcmpError):
    """A Hub model or data set that a run without the Hub (offline) does not find in the Hugging Face cache: what is
    missing, and the command that would fetch it."""

    def __init__(self, missing: str, command: str):
        self.missing = missing
        super().__init__(f"{missing}; fetch it where the Hub can be reached, with the sweep's overrides: {command}")
