"""Cost, compared only where comparable: ratios and their intervals against a direct computation, different
hardware never compared, old runs marked, and the budget curve in device-hours."""

import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bertcmp.compare import build_report, main
from bertcmp.compare.budget import curve
from bertcmp.compare.cost import compute_curve, cost_ratios
from bertcmp.runs import load_runs
from test_compare import labels, make_run, predictions

CPU = {"device_name": "AMD EPYC", "device_count": 1, "precision": "fp32", "shared_with": 1, "threads": 2}
H100 = {"device_name": "NVIDIA H100 80GB HBM3", "device_count": 1, "precision": "bf16", "shared_with": 1}
A100 = {**H100, "device_name": "NVIDIA A100-SXM4-80GB"}
SPEED = {"big": [100.0, 110.0, 95.0], "small": [210.0, 236.0, 190.0]}  # training tokens/s per seed


def cost_runs(root, hardware: dict | None = CPU, seeds=(0, 1, 2), hardware_small: dict | None = None) -> None:
    """A big and a small checkpoint of one family, the small one about twice as fast; equally accurate."""
    label = labels()
    for name in ("big", "small"):
        for seed in seeds:
            more = {"train": {"tokens_per_s": SPEED[name][seed]},
                    "inference": {"examples_per_s": (40.0 if name == "big" else 100.0) + seed},
                    "wall_seconds": 3600.0 if name == "big" else 1800.0, "params": 100 if name == "big" else 50,
                    "peak_memory_mb": 1000.0 + seed, "device": "cuda:0" if hardware and "NVIDIA" in
                    hardware["device_name"] else "cpu"}
            side = hardware_small if name == "small" and hardware_small is not None else hardware
            if side is not None:
                more["hardware"] = side
            wrong = np.arange(seed * 7, seed * 7 + 200)  # both sides alike: equally accurate
            make_run(root / f"{name}_{seed}", "bert", seed, predictions(label, wrong), label,
                     pretrained=f"models/{name}", more=more)


def task(root) -> dict:
    return json.loads((root / "comparison" / "comparison.json").read_text())["tasks"][0]


def ratio(task: dict, measure: str) -> dict:
    return next(c for c in task["cost"] if c["measure"] == measure)


def test_the_smaller_encoder_is_faster_with_ratios_and_intervals_from_the_runs_own_metrics(tmp_path, capsys):
    cost_runs(tmp_path)
    assert main([str(tmp_path), "--margin", "5"]) == 0
    t = task(tmp_path)
    train = ratio(t, "train_tokens_per_s")
    # directly: the small one's log speed minus the big one's, paired by seed, a t interval on 2 degrees of freedom
    logs = np.log(SPEED["small"]) - np.log(SPEED["big"])
    half = scipy_stats.t.ppf(0.975, 2) * logs.std(ddof=1) / math.sqrt(3)
    b = train["encoder_b"]
    sign = 1 if b == "small" else -1
    assert train["ratio"] == pytest.approx(math.exp(sign * logs.mean()))
    assert (train["low"], train["high"]) == pytest.approx(sorted([math.exp(sign * (logs.mean() - half)),
                                                                   math.exp(sign * (logs.mean() + half))]))
    assert train["compared"] and train["hardware"] == CPU and train["runs"] == [3, 3]
    assert ratio(t, "params")["ratio"] == pytest.approx(0.5 if b == "small" else 2.0)
    infer = ratio(t, "infer_examples_per_s")
    assert infer["ratio"] == pytest.approx(math.exp(sign * np.mean(np.log([100, 101, 102]) - np.log([40, 41, 42]))))
    out = capsys.readouterr().out
    assert f"small trains {math.exp(logs.mean()):.2f}x as fast as big (" in out
    assert "on AMD EPYC (2 threads), fp32" in out
    # equally accurate within 5 points, and the small one clearly faster: the recommendation names it
    assert t["head_to_heads"][0]["verdict"] == "equivalent"
    assert t["pick"] == "small" and t["recommendation"].startswith("Pick small, the cheaper:")
    assert t["recommendation"] in out and t["recommendation"] in (tmp_path / "comparison" / "report.md").read_text()


def test_runs_on_different_devices_are_not_compared_on_cost(tmp_path, capsys):
    cost_runs(tmp_path, hardware=A100, hardware_small=H100)
    assert main([str(tmp_path), "--margin", "5"]) == 0
    t = task(tmp_path)
    assert not any(c["compared"] for c in t["cost"]) and all(c["ratio"] is None for c in t["cost"])
    a, b = t["head_to_heads"][0]["encoder_a"], t["head_to_heads"][0]["encoder_b"]
    device = {"big": "NVIDIA A100-SXM4-80GB", "small": "NVIDIA H100 80GB HBM3"}
    line = f"{a} ran on {device[a]}, bf16, {b} on {device[b]}, bf16: not compared on cost"
    assert t["cost"][0]["why"] == line and line in capsys.readouterr().out
    # equivalent, and cost not compared: no pick by cost
    assert t["pick"] == "either" and "cost was not compared: " + line.removesuffix(": not compared on cost") + "." \
        in t["recommendation"]
    assert t["budget_compute"] and not any("of search" in s for s in t["budget_sentences"])


def test_runs_of_another_precision_or_sharing_are_not_compared(tmp_path):
    cost_runs(tmp_path / "p", hardware=H100, hardware_small={**H100, "precision": "fp32"})
    cost_runs(tmp_path / "s", hardware=CPU, hardware_small={**CPU, "shared_with": 2})
    for root, words in ((tmp_path / "p", "fp32"), (tmp_path / "s", "2 jobs sharing it")):
        build_report([str(root)])
        t = task(root)
        assert not any(c["compared"] for c in t["cost"]) and words in t["cost"][0]["why"]


def test_runs_measured_while_sharing_the_device_are_marked(tmp_path, capsys):
    cost_runs(tmp_path, hardware={**CPU, "shared_with": 2})
    assert main([str(tmp_path)]) == 0
    t = task(tmp_path)
    assert all(c["compared"] and c["shared"] for c in t["cost"])
    assert "Measured while 2 jobs shared the device" in capsys.readouterr().out


def test_runs_of_older_versions_compare_as_before_with_device_not_recorded(tmp_path, capsys):
    cost_runs(tmp_path, hardware=None)
    assert main([str(tmp_path), "--margin", "5"]) == 0
    t = task(tmp_path)
    assert t["head_to_heads"][0]["verdict"] == "equivalent" and t["budget"]
    assert all(not c["compared"] and "device not recorded" in c["why"] for c in t["cost"])
    assert t["budget_compute"] == {} and "device not recorded" in capsys.readouterr().out


def test_missing_zero_or_non_finite_throughput_is_left_out_with_a_line(tmp_path):
    cost_runs(tmp_path)
    for name, value in (("big_1", 0), ("small_2", None)):
        path = tmp_path / name / "metrics.json"
        metrics = json.loads(path.read_text())
        metrics["train"]["tokens_per_s"] = value
        path.write_text(json.dumps(metrics))
    runs = load_runs([str(tmp_path)]).runs
    big, small = ([r for r in runs if r.pretrained == f"models/{n}"] for n in ("big", "small"))
    ratios, notes = cost_ratios("big", big, "small", small)
    train = next(r for r in ratios if r.measure == "train_tokens_per_s")
    # seeds 0 and 2 against 0 and 1: one shared seed, so Welch's interval for two independent samples
    small_logs, big_logs = np.log([210, 236]), np.log([100, 95])
    mean = small_logs.mean() - big_logs.mean()
    va, vb = small_logs.var(ddof=1) / 2, big_logs.var(ddof=1) / 2
    half = scipy_stats.t.ppf(0.975, (va + vb) ** 2 / (va ** 2 + vb ** 2)) * math.sqrt(va + vb)
    assert train.runs == (2, 2) and train.ratio == pytest.approx(math.exp(mean))
    assert (train.low, train.high) == pytest.approx((math.exp(mean - half), math.exp(mean + half)))
    assert len(notes) == 2 and all("train.tokens_per_s is missing, zero or not finite" in n for n in notes)
    assert any(n.startswith(str(tmp_path / "big_1")) for n in notes)


def test_one_run_a_side_gives_a_ratio_without_an_interval(tmp_path, capsys):
    cost_runs(tmp_path, seeds=(0,))
    assert main([str(tmp_path)]) == 0
    train = ratio(task(tmp_path), "train_tokens_per_s")
    assert train["low"] is None and train["high"] is None and train["runs"] == [1, 1]
    assert "one run a side: no interval" in capsys.readouterr().out


def test_the_compute_curve_is_the_trial_curve_scaled_by_each_encoders_run_cost(tmp_path):
    cost_runs(tmp_path)
    build_report([str(tmp_path)])
    t = task(tmp_path)
    assert t["budget_compute_unit"] == "CPU-hours"
    for name, hours in (("big", 2.0), ("small", 1.0)):  # 3,600 s or 1,800 s of 2 threads per trial
        trials = t["budget"][name]
        compute = t["budget_compute"][name]
        assert [c["hours"] for c in compute] == pytest.approx([p["n"] * hours for p in trials])
        assert [(c["test"], c["test_sd"]) for c in compute] == [(p["test"], p["test_sd"]) for p in trials]
    sentence = next(s for s in t["budget_sentences"] if "of search" in s)
    # at 3 CPU-hours the big encoder runs one trial, the small one all three
    assert sentence.startswith("With 3 CPU-hours of search, the expected test.accuracy of the selected run is ")
    assert "(1 trial)" in sentence and "(all 3 trials)" in sentence


def test_the_compute_sentence_gives_the_dearer_encoder_one_trial_where_the_other_search_costs_less():
    from bertcmp.compare.cost import compute_sentence

    cheap = [{"hours": 0.5 * n, "test": 0.80 + 0.01 * n, "test_sd": 0.0} for n in (1, 2)]
    dear = [{"hours": 3.0 * n, "test": 0.90 + 0.01 * n, "test_sd": 0.0} for n in (1, 2, 3)]
    assert compute_sentence("dear", "cheap", dear, cheap, "GPU-hours", "test.accuracy") == (
        "With 3 GPU-hours of search, the expected test.accuracy of the selected run is dear's 0.910 (1 trial), "
        "cheap's 0.820 (all 2 trials).")
    assert compute_sentence("cheap", "dear", cheap[:1], dear[:1], "GPU-hours", "test.accuracy").endswith(
        "cheap's 0.810 (1 trial), dear's 0.910 (1 trial).")


def test_compute_curve_needs_every_trial_to_record_its_device():
    points = curve([0.5, 0.6], [0.5, 0.6])

    class Trial:
        hardware, metrics = None, {}

        def value(self, key):
            return 10.0

    assert compute_curve(points, [Trial(), Trial()]) is None
