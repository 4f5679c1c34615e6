"""Compare runs: per task, which encoder wins, by how much, whether the difference is more than noise or less than a
margin, which is better at each tuning budget, what each costs, and which to pick; across tasks, a summary.

    python -m bertcmp.compare PATH [PATH ...] [--out DIR] [--metric M] [--margin 0.5]

PATH is a sweep directory, a run directory or a glob of them; runs of different sweeps may be mixed. Runs are
grouped by task (what fixes the test items: runs of two tasks never meet), then by encoder (a checkpoint, or a
shape built from scratch), then into configurations (runs that differ only in seed). On each task the encoder
whose best configuration leads on validation meets every other encoder's best, item by item and over seeds, on
cost (only where the runs' hardware is the same) and by length, class and example; each task opens with what to
pick. Writes summary.csv, summary.md, comparison.json, report.md and PNG plots into --out (default: a
`comparison/` folder inside the first PATH). Reads only the files runs write: no torch, any machine.

The modules: groups (tasks and encoders), table (the runs' table), stats (tests and intervals), verdict (a
head-to-head and its verdict), cost (speed, memory and size ratios, and the budget in device-hours), differ (where
two encoders differ), recommend (what to pick), budget (expected performance at each tuning budget), across (the
summary across tasks), report (the report's files and screen), plots, cli.
"""

from bertcmp.compare.cli import COMPARABLE_METRICS, main
from bertcmp.compare.report import Report, build_report, compare_runs, print_report
from bertcmp.compare.table import TABLE, table_records

__all__ = ["COMPARABLE_METRICS", "Report", "TABLE", "build_report", "compare_runs", "main", "print_report",
           "table_records"]
