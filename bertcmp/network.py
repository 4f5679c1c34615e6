"""Whether a server can be reached, asked once and briefly: runs decide between online and offline by it (W&B's
server, the Hugging Face Hub) instead of waiting on a library's own retries."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request


def answers(url: str, seconds: float) -> bool:
    """Whether the server at `url` answers an HTTP request within `seconds` (any answer, an error status included:
    the server is there). Asked from a thread, so that a name lookup that hangs is bounded too."""
    answered: list[bool] = []

    def ask() -> None:
        try:
            urllib.request.urlopen(url, timeout=seconds).close()
            answered.append(True)
        except urllib.error.HTTPError:
            answered.append(True)
        except (OSError, ValueError):
            answered.append(False)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(seconds)
    return bool(answered and answered[0])
