"""The Hugging Face Hub as runs meet it: which names are Hub ids, whether the Hub can be reached, and offline mode.

A run that needs the Hub and cannot reach it goes on from the Hugging Face cache (what `python -m bertcmp.prepare`
fetched) after one brief probe, instead of waiting on every file's timeouts and retries; what the cache lacks is
then one line naming it and the prepare command (docs/clusters.md).
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path
from typing import Iterator, Sequence

from huggingface_hub import constants

from bertcmp.errors import NotCachedError
from bertcmp.network import answers

log = logging.getLogger("bertcmp")

HUB_WAIT_SECONDS = 5.0  # how long a run waits for the Hub to answer before it goes on offline
PREPARE = "python -m bertcmp.prepare"
_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")


def is_hub_id(name: str) -> bool:
    """Whether a model.pretrained or data.source names a Hub repository (`name` or `owner/name`), not a local path."""
    return bool(_HUB_ID.fullmatch(name)) and not name.startswith((".", "~")) and not Path(name).expanduser().exists()


def endpoint() -> str:
    """The Hub this process talks to: HF_ENDPOINT, else huggingface.co."""
    return constants.ENDPOINT


def is_offline() -> bool:
    return constants.HF_HUB_OFFLINE


@contextlib.contextmanager
def offline_unless_reachable(hub_ids: Sequence[str], seconds: float = HUB_WAIT_SECONDS) -> Iterator[None]:
    """Within: offline mode when these Hub ids are needed and the Hub does not answer within `seconds` (one line
    says so); as before otherwise. Offline, transformers and datasets read the cache and make no request."""
    if not hub_ids or is_offline() or answers(endpoint(), seconds):
        yield
        return
    log.warning("the Hugging Face Hub (%s) did not answer within %g s: going on offline, with %s from the cache "
                "(%s)", endpoint(), seconds, ", ".join(hub_ids), constants.HF_HOME)
    with offline_mode():
        yield


@contextlib.contextmanager
def offline_mode() -> Iterator[None]:
    """HF_HUB_OFFLINE=1 for this process while within, as huggingface_hub, transformers and datasets read it (at each
    call, from the values they took from the environment at import); restored after, for the next job."""
    import datasets.config

    saved = constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE
    constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE = saved


def not_cached(key: str, value: str) -> NotCachedError:
    """The line for a Hub id that offline mode could not find in the cache."""
    return NotCachedError(f"{key}={value!r} is not in the Hugging Face cache ({constants.HF_HOME}) and the Hub is not "
                          "used (offline)", f"{PREPARE} {key}={value}")
