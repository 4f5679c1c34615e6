"""What an encoder costs, compared only where it is comparable: training and inference throughput, peak memory,
parameters and a run's wall time, each as a ratio to the task's leader with a 95 % interval over seeds (on log
ratios), and the budget curves in device-hours instead of trials.

Runs compare on cost only when every run of both sides records the same hardware (metrics.json `hardware`: the
device's own name, how many, the precision, the CPU threads, and how many jobs shared the device): a speed taken
on an A100 says nothing of one taken on an H100, and a job that shared its device ran slower than it would alone.
Runs of bertcmp 0.5 and older record none of it: "device not recorded", never compared on cost.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from bertcmp.compare import stats
from bertcmp.compare.budget import BudgetPoint
from bertcmp.runs import Run

# measure -> (its metrics.json key, whether more is better)
MEASURES = {"train_tokens_per_s": ("train.tokens_per_s", True),
            "infer_examples_per_s": ("inference.examples_per_s", True),
            "peak_memory_mb": ("peak_memory_mb", False),
            "params": ("params", False),
            "run_seconds": ("wall_seconds", False)}
CLEAR_WITHOUT_INTERVAL = 1.1  # a ratio from one run a side is taken as a difference only past 1.1x either way
NOT_RECORDED = "device not recorded (bertcmp 0.5 and older record none)"
NOT_COMPARED = ": not compared on cost"


@dataclass
class CostRatio:
    """One measure of encoder b against encoder a (the task's leader): b over a, over the seeds of each side's
    compared configuration."""
    encoder_a: str
    encoder_b: str
    measure: str                # a key of MEASURES
    ratio: Optional[float]      # b over a (of geometric means, or the mean of per-seed ratios' logs); None: no ratio
    low: Optional[float]        # its 95 % interval; None with one run a side
    high: Optional[float]
    compared: bool
    why: Optional[str] = None   # when not compared
    runs: tuple[int, int] = (0, 0)  # runs with a usable value on each side
    hardware: Optional[dict] = None  # what both sides ran on, when compared
    shared: bool = False        # measured while other jobs shared the device

    @property
    def clear(self) -> bool:
        """Whether b differs from a on this measure: the interval excludes 1, or without one, past 1.1x."""
        if not self.compared or self.ratio is None:
            return False
        if self.low is None:
            return abs(math.log(self.ratio)) > math.log(CLEAR_WITHOUT_INTERVAL)
        return self.low > 1 or self.high < 1


def signature(run: Run) -> Optional[str]:
    """What a run's speeds were measured on, as one comparable string; None if it did not record it."""
    return json.dumps(run.hardware, sort_keys=True) if run.hardware else None


def hardware_words(hardware: dict) -> str:
    """`NVIDIA H200, bf16`, `AMD EPYC (2 threads), fp32`, with the sharing when there was any."""
    threads = hardware.get("threads")
    device = hardware.get("device_name", "?") + (f" ({threads} thread{'s' if threads > 1 else ''})" if threads else "")
    count = hardware.get("device_count", 1)
    words = f"{count} x {device}" if count and count > 1 else device
    words += f", {hardware.get('precision', '?')}"
    shared = hardware.get("shared_with", 1)
    return words + (f", {shared} jobs sharing it" if shared and shared > 1 else "")


def comparable(runs_a: Sequence[Run], runs_b: Sequence[Run], a: str, b: str) -> tuple[Optional[dict], Optional[str]]:
    """The hardware both sides' runs share, or why they are not compared on cost (one line)."""
    sides = {a: {signature(r) for r in runs_a}, b: {signature(r) for r in runs_b}}
    unrecorded = [name for name, signatures in sides.items() if None in signatures]
    if unrecorded:
        whose = "" if len(unrecorded) == 2 else f"{unrecorded[0]}'s runs: "
        return None, f"{whose}{NOT_RECORDED}{NOT_COMPARED}"
    for name, signatures in sides.items():
        if len(signatures) > 1:
            seen = "; ".join(hardware_words(json.loads(s)) for s in sorted(signatures))
            return None, f"{name}'s runs ran on different hardware ({seen}){NOT_COMPARED}"
    (one,), (other,) = sides[a], sides[b]
    if one != other:
        return None, f"{a} ran on {hardware_words(json.loads(one))}, {b} on {hardware_words(json.loads(other))}" \
                     f"{NOT_COMPARED}"
    return json.loads(one), None


def usable(runs: Sequence[Run], key: str) -> tuple[dict, list[Run]]:
    """seed -> the runs' value of `key` where it is a positive finite number, and the runs left out."""
    values, left_out = {}, []
    for run in runs:
        value = run.value(key)
        if value is None or not math.isfinite(value) or value <= 0:
            left_out.append(run)
        else:
            values[run.seed] = value
    return values, left_out


def cost_ratios(a: str, runs_a: Sequence[Run], b: str, runs_b: Sequence[Run]) -> tuple[list[CostRatio], list[str]]:
    """Every measure of b against a, and a line naming each run left out of a ratio (missing, zero or
    non-finite)."""
    hardware, why = comparable(runs_a, runs_b, a, b)
    if hardware is None:
        return [CostRatio(a, b, measure, None, None, None, compared=False, why=why) for measure in MEASURES], []
    ratios, notes = [], []
    for measure, (key, _) in MEASURES.items():
        (values_a, out_a), (values_b, out_b) = usable(runs_a, key), usable(runs_b, key)
        notes += [f"{run.dir}: {key} is missing, zero or not finite; left out of the {measure} ratio"
                  for run in out_a + out_b]
        ratio = CostRatio(a, b, measure, None, None, None, compared=bool(values_a and values_b),
                          runs=(len(values_a), len(values_b)), hardware=hardware,
                          shared=hardware.get("shared_with", 1) > 1)
        if not ratio.compared:
            missing = [name for name, values in ((a, values_a), (b, values_b)) if not values]
            ratio.why = f"no usable {key} on {'either side' if len(missing) == 2 else missing[0]}"
        else:
            log_a = {seed: math.log(v) for seed, v in values_a.items()}
            log_b = {seed: math.log(v) for seed, v in values_b.items()}
            interval = stats.seed_difference(log_b, log_a)
            if interval is None:  # one run on a side: the ratio of the (geometric) means, without an interval
                ratio.ratio = math.exp(np.mean(list(log_b.values())) - np.mean(list(log_a.values())))
            else:
                ratio.ratio, ratio.low, ratio.high = (math.exp(x) for x in (interval.mean, interval.low, interval.high))
        ratios.append(ratio)
    return ratios, notes


VERBS = {"train_tokens_per_s": ("trains", "as fast as", "training tokens/s"),
         "infer_examples_per_s": ("classifies", "as many texts per second as", "inference examples/s"),
         "peak_memory_mb": ("needs", "the peak memory of", "peak memory"),
         "params": ("has", "the parameters of", "parameters"),
         "run_seconds": ("takes", "the wall time per run of", "wall time per run")}


def ahead(r: CostRatio) -> str:
    """The encoder that is ahead on this measure: faster, smaller, quicker."""
    return r.encoder_b if (r.ratio >= 1) == MEASURES[r.measure][1] else r.encoder_a


def ratio_clause(r: CostRatio, named: bool = True) -> str:
    """`ModernBERT trains 1.31x as fast as BERT (1.22 to 1.40 over 3 seeds)`, said from the side that is ahead;
    without the subject when not `named` (a second clause about the same encoder)."""
    verb, compared_to, _ = VERBS[r.measure]
    subject = ahead(r)
    if subject == r.encoder_b:
        ratio, low, high, other = r.ratio, r.low, r.high, r.encoder_a
    else:
        ratio, other = 1 / r.ratio, r.encoder_b
        low, high = (1 / r.high, 1 / r.low) if r.low is not None else (None, None)
    if low is None:
        spread = "one run a side: no interval" if r.runs == (1, 1) else "no interval: one side has one run"
    else:
        seeds = str(r.runs[0]) if r.runs[0] == r.runs[1] else f"{r.runs[0]} and {r.runs[1]}"
        spread = f"{low:.2f} to {high:.2f} over {seeds} seeds"
        spread += "" if r.clear else ": not a clear difference"
    return f"{subject + ' ' if named else ''}{verb} {ratio:.2f}x {compared_to} {other} ({spread})"


def cost_sentence(ratios: Sequence[CostRatio]) -> str:
    """The speeds side by side in one sentence, on which hardware; or why they are not compared."""
    if not ratios:
        return ""
    shown = [r for r in ratios if r.compared and r.ratio is not None]
    if not shown:
        return f"Cost: {ratios[0].why or 'not compared'}."
    order = ("train_tokens_per_s", "infer_examples_per_s", "peak_memory_mb", "params")
    hardware = shown[0].hardware
    sentence = clauses([r for m in order for r in shown if r.measure == m], "; ") + f", on {hardware_words(hardware)}."
    if shown[0].shared:
        sentence += (f" Measured while {hardware['shared_with']} jobs shared the device: each speed is below what "
                     "the encoder reaches alone.")
    return sentence


def clauses(ratios: Sequence[CostRatio], joint: str) -> str:
    """The ratios' clauses joined, each encoder named once in a row: `a trains 2.0x as fast as b (...) and
    classifies 1.9x as many texts per second as b (...)`."""
    said = [ratio_clause(r, named=i == 0 or ahead(r) != ahead(ratios[i - 1])) for i, r in enumerate(ratios)]
    return joint.join(said)


# ---------------------------------------------------------------------------------------------- budget in hours


def run_hours(run: Run) -> Optional[float]:
    """A run's cost in device-hours: its wall time times its GPUs, or on the CPU its threads (core-hours)."""
    seconds, hardware = run.value("wall_seconds"), run.hardware
    if hardware is None or seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return None
    return seconds / 3600 * (hardware.get("threads") or hardware.get("device_count") or 1)


def hours_unit(runs: Sequence[Run]) -> str:
    return "GPU-hours" if all(str(r.metrics.get("device", "")).startswith("cuda") for r in runs) else "CPU-hours"


def compute_curve(curve: Sequence[BudgetPoint], trials: Sequence[Run]) -> Optional[list[dict]]:
    """The budget curve against the search's compute: n trials cost n times the encoder's mean run cost. None
    when a trial did not record its device or wall time."""
    hours = [run_hours(r) for r in trials]
    if not hours or any(h is None for h in hours):
        return None
    each = float(np.mean(hours))
    return [{"hours": p.n * each, "test": p.test, "test_sd": p.test_sd} for p in curve]


def compute_sentence(a: str, b: str, curve_a: Sequence[dict], curve_b: Sequence[dict], unit: str,
                     metric: str) -> str:
    """`With 2 GPU-hours of search, the expected test.accuracy of the selected run is ModernBERT's 0.913 (4 trials),
    BERT's 0.905 (2 trials)`: at the largest budget both searches reach, or where one trial of the dearer encoder
    costs more than that, at its one trial."""
    budget = max(min(curve_a[-1]["hours"], curve_b[-1]["hours"]), curve_a[0]["hours"], curve_b[0]["hours"])
    parts = []
    for name, curve in ((a, curve_a), (b, curve_b)):
        trials = min(len(curve), int(budget / curve[0]["hours"] * (1 + 1e-9)))  # whole trials within the budget
        count = f"all {trials} trials" if trials == len(curve) > 1 else f"{trials} trial{'s' if trials > 1 else ''}"
        parts.append(f"{name}'s {curve[trials - 1]['test']:.3f} ({count})")
    return f"With {budget:.3g} {unit} of search, the expected {metric} of the selected run is {parts[0]}, {parts[1]}."
