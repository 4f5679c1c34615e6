"""The command line: python -m bertcmp.compare PATH [PATH ...] [--out DIR] [--metric M] [--margin POINTS]."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Optional, Sequence

from bertcmp.compare import __doc__ as DESCRIPTION
from bertcmp.compare.report import build_report, print_report
from bertcmp.compare.verdict import DEFAULT_MARGIN
from bertcmp.errors import NoSpaceError
from bertcmp.runs import load_runs

COMPARABLE_METRICS = ("test.accuracy", "test.macro_f1", "test.mcc", "test.f1")  # what --metric accepts


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bertcmp.compare", description=DESCRIPTION.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="sweep dir, run dir, or a glob of them")
    parser.add_argument("--out", type=Path, help="where to write the report (default: PATH/comparison)")
    parser.add_argument("--metric", choices=COMPARABLE_METRICS,
                        help="the metric compared on every task (default: each task's data.metric, which its runs "
                             "were selected by; test.f1: the positive class's, two-class tasks only)")
    parser.add_argument("--margin", default=str(DEFAULT_MARGIN), metavar="POINTS",
                        help=f"equivalence margin in points of the metric (default {DEFAULT_MARGIN}): two encoders "
                             "whose 90 %% interval lies within ±POINTS are practically equivalent")
    args = parser.parse_args(argv)
    margin = _positive(args.margin)
    if margin is None:
        print(f"error: --margin {args.margin!r} is not a positive number of points; give e.g. --margin 0.5 "
              "(half a point of accuracy)", file=sys.stderr)
        return 2
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} is a file; give a directory (made if missing) for the report", file=sys.stderr)
        return 2
    found = load_runs(args.paths)
    many = [r for r in found.runs if r.status == "completed" and len(r.classes) > 2]
    if args.metric == "test.f1" and many:
        print(f"error: --metric test.f1 is the positive class's F1 of two-class tasks, but {many[0].dir} has "
              f"{len(many[0].classes)} classes; use --metric test.macro_f1", file=sys.stderr)
        return 2
    try:
        report = build_report(args.paths, args.out, args.metric, found, margin)
    except NoSpaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_report(report)
    if not report.compared:
        print("error: no completed run to compare in " + " ".join(args.paths), file=sys.stderr)
        return 1
    return 0


def _positive(text: str) -> Optional[float]:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None
