"""The comparison: statistics checked against independent computations, on run dirs built here."""

import csv
import json
import os
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from bertcmp.compare import build_report, main
from bertcmp.metrics import scores
from bertcmp.compare.stats import mcnemar_exact, paired_bootstrap, seed_difference

N = 2000


def labels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 2, N)


def predictions(label: np.ndarray, wrong: np.ndarray) -> np.ndarray:
    pred = label.copy()
    pred[wrong] = 1 - pred[wrong]
    return pred


def make_run(directory: Path, model: str, seed: int, pred: np.ndarray, label: np.ndarray, lr: float = 5e-5,
             data_name: str = "imdb", status: str = "completed", valid: float | None = None,
             extra: tuple[str, ...] = (), n_tokens: np.ndarray | None = None, pretrained: str | None = None,
             scratch: dict | None = None, more: dict | None = None, texts: list[str] | None = None,
             prob_pos: np.ndarray | None = None) -> Path:
    """A run dir as bertcmp writes it: .hydra/config.yaml, metrics.json, history.jsonl, test_predictions.csv.
    `model` is the family (model_type); `pretrained` the checkpoint, or `scratch` the shape built from scratch;
    `more` is merged into metrics.json (a dict into a dict); `texts` and `prob_pos` fill those columns."""
    (directory / ".hydra").mkdir(parents=True)
    config = {"model": {"name": model, "pretrained": pretrained, "scratch": scratch}, "trainer": {"lr": lr},
              "seed": seed, "data": {"name": data_name, "source": "x", "split": "pooled", "split_seed": 42}}
    (directory / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    accuracy = float((pred == label).mean())
    metrics = {"status": status, "model": model, "overrides": [f"model={model}", *extra, f"seed={seed}"]}
    if status == "completed":
        metrics |= {"best_epoch": 2, "valid": {"accuracy": valid if valid is not None else accuracy},
                    "test": {"accuracy": accuracy, "f1": accuracy}, "data": {"test": len(label)},
                    "train": {"examples_per_s": 10.0, "tokens_per_s": 1000.0}, "params": 100,
                    "inference": {"examples_per_s": 40.0 + seed, "tokens_per_s": 4000.0},
                    "peak_memory_mb": 1.0, "wall_seconds": 5.0}
        prob_pos = np.where(pred == 1, 0.9, 0.1) if prob_pos is None else prob_pos
        rows = [["index", "label", "pred", "prob_pos", *(["n_tokens"] if n_tokens is not None else []),
                 *(["text"] if texts is not None else [])]]
        rows += [[i, y, p, prob_pos[i], *([n_tokens[i]] if n_tokens is not None else []),
                  *([texts[i]] if texts is not None else [])] for i, (y, p) in enumerate(zip(label, pred))]
        with open(directory / "test_predictions.csv", "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(rows)
        history = [{"epoch": e, "valid_accuracy": accuracy, "train_loss": 1 / e} for e in (1, 2)]
        (directory / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    else:
        metrics["error"] = "the training loss became nan at epoch 1, step 3"
    (directory / "metrics.json").write_text(json.dumps(merged(metrics, more or {})))
    return directory


def merged(base: dict, more: dict) -> dict:
    return {**base, **{k: merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
                       for k, v in more.items()}}


def test_mcnemar_matches_the_binomial_by_hand():
    label = labels()
    a = predictions(label, np.arange(0, 100))    # A wrong on items 0..99
    b = predictions(label, np.arange(85, 200))   # B wrong on 85..199: A alone right on 100..199, B alone on 0..84
    only_a, only_b, p = mcnemar_exact(label, a, b)
    assert (only_a, only_b) == (100, 85)
    k, n = min(only_a, only_b), only_a + only_b
    by_hand = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)
    assert p == pytest.approx(by_hand, rel=1e-9)


def test_paired_bootstrap_agrees_with_the_normal_interval():
    label = labels()
    a = predictions(label, np.arange(0, 150))
    b = predictions(label, np.arange(100, 300))
    i = paired_bootstrap(label, a, b)
    diff = i.mean
    assert diff == pytest.approx(((a == label).mean() - (b == label).mean()))
    d = (a == label).astype(float) - (b == label).astype(float)
    for z, low, high in ((1.96, i.low, i.high), (1.645, i.low90, i.high90)):  # the 95 % and the 90 % interval
        half = z * d.std(ddof=1) / math.sqrt(N)
        assert low == pytest.approx(diff - half, abs=0.003) and high == pytest.approx(diff + half, abs=0.003)
    assert paired_bootstrap(label, a, b) == i  # seeded: the same interval every time
    assert i.p_value < 0.05 and i.low > 0 or i.p_value >= 0.05 and i.low <= 0


def test_seed_difference_t_interval():
    a, b = {0: 0.91, 1: 0.93, 2: 0.92}, {0: 0.90, 1: 0.90, 2: 0.91}
    s = seed_difference(a, b)
    diffs = np.array([0.01, 0.03, 0.01])
    half = 4.302652729911275 * diffs.std(ddof=1) / math.sqrt(3)  # t(0.975, 2 dof)
    assert s.paired and s.mean == pytest.approx(diffs.mean()) and s.high - s.mean == pytest.approx(half)
    half90 = 2.919985580355516 * diffs.std(ddof=1) / math.sqrt(3)  # t(0.95, 2 dof)
    assert s.high90 - s.mean == pytest.approx(half90) and s.mean - s.low90 == pytest.approx(half90)
    assert seed_difference({0: 0.9}, b) is None


@pytest.fixture
def two_sweeps(tmp_path):
    """Yesterday's BERT sweep and today's ModernBERT sweep, 3 seeds each, on the same test items."""
    label = labels()
    for seed in range(3):
        make_run(tmp_path / "bert_sweep" / f"{seed}_model=bert,seed={seed}", "bert", seed,
                 predictions(label, np.arange(seed, 200 + seed)), label)
        make_run(tmp_path / "modern_sweep" / f"{seed}_model=modernbert,seed={seed}", "modernbert", seed,
                 predictions(label, np.arange(seed, 120 + 2 * seed)), label)
    make_run(tmp_path / "modern_sweep" / "3_model=modernbert,seed=3", "modernbert", 3, label, label, status="failed")
    return tmp_path


@pytest.mark.figures
def test_mixed_sweeps_are_compared_head_to_head(two_sweeps, capsys):
    out = two_sweeps / "report"
    assert main([str(two_sweeps / "bert_sweep"), str(two_sweeps / "modern_sweep"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "comparison.json").read_text())
    rows = {r["model"]: r for r in summary["rows"]}
    assert rows["bert"]["runs"] == 3 and rows["modernbert"]["runs"] == 3
    bert_acc = [1 - 200 / N] * 3
    assert rows["bert"]["test.accuracy"] == pytest.approx(np.mean(bert_acc))
    modern_acc = [1 - (120 + s) / N for s in range(3)]
    assert rows["modernbert"]["test.accuracy_std"] == pytest.approx(np.std(modern_acc, ddof=1))
    assert rows["bert"]["inference.examples_per_s"] == pytest.approx(41.0)  # seeds 0, 1, 2
    assert "infer ex/s" in printed and "inference.examples_per_s_mean" in (out / "summary.csv").read_text()
    h = summary["head_to_heads"][0]
    assert h["items"]["p_value"] < 0.001 and h["items"]["low"] > 0 and h["evidence"] == "seeds"
    assert h["seeds"]["paired"] and h["seeds"]["n_a"] == 3 and h["verdict"] == "better"
    assert (h["difference"], h["low"], h["high"]) == (h["seeds"]["mean"], h["seeds"]["low"], h["seeds"]["high"])
    assert h["seeds"]["mean"] == pytest.approx(np.mean(modern_acc) - np.mean(bert_acc))
    # with seeds, the verdict rests on the interval over seeds
    low, high = h["seeds"]["low"] * 100, h["seeds"]["high"] * 100
    assert h["sentence"] == f"ModernBERT is better than BERT by {h['seeds']['mean'] * 100:.1f} points " \
                            f"(95 % CI {low:.1f} to {high:.1f} over seeds)."
    assert h["sentence"] in printed
    assert "On the same 2000 test items, runs of seed 0 (ModernBERT) and 0 (BERT): +4.0 points" in printed
    assert "failed: the training loss became nan" in printed  # the failed run is listed, not fatal
    for name in ("summary.csv", "summary.md", "report.md", "learning_curves.png", "accuracy_vs_lr.png",
                 "accuracy_vs_throughput.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "![learning_curves.png](learning_curves.png)" in report and "| configuration |" in report


def test_overrides_every_configuration_has_are_said_once(tmp_path, capsys):
    label = labels()
    common = ("data.source=/data/imdb", "trainer.epochs=1")
    for seed in range(2):
        make_run(tmp_path / "s" / f"{seed}_bert", "bert", seed, predictions(label, np.arange(100)), label,
                 extra=common)
        make_run(tmp_path / "s" / f"{2 + seed}_modernbert", "modernbert", seed, predictions(label, np.arange(90)),
                 label, extra=(*common, "trainer.lr=1e-4"))
    assert main([str(tmp_path / "s")]) == 0
    printed = capsys.readouterr().out
    assert "every configuration has: data.source=/data/imdb,trainer.epochs=1" in printed
    summary = json.loads((tmp_path / "s" / "comparison" / "comparison.json").read_text())
    assert summary["shared_overrides"] == list(common)
    assert sorted(r["configuration"] for r in summary["rows"]) == ["model=bert", "model=modernbert,trainer.lr=1e-4"]
    assert "Every configuration has `data.source=/data/imdb,trainer.epochs=1`." in \
        (tmp_path / "s" / "comparison" / "report.md").read_text()


def test_one_configuration_keeps_its_whole_name(tmp_path):
    label = labels()
    make_run(tmp_path / "s" / "0_bert", "bert", 0, label, label, extra=("trainer.epochs=1",))
    report = build_report([str(tmp_path / "s")])
    assert report.tasks[0].shared == [] and report.rows[0]["configuration"] == "model=bert,trainer.epochs=1"


def test_default_out_is_inside_the_first_path(two_sweeps):
    report = build_report([str(two_sweeps / "bert_sweep"), str(two_sweeps / "modern_sweep" / "*")])
    assert report.files[0].parent == two_sweeps / "bert_sweep" / "comparison"


def test_single_runs_conclude_from_the_items(tmp_path):
    label = labels()
    make_run(tmp_path / "s" / "0_bert", "bert", 0, predictions(label, np.arange(100, 200)), label)
    make_run(tmp_path / "s" / "1_modernbert", "modernbert", 0, predictions(label, np.arange(0, 95)), label)
    h = build_report([str(tmp_path / "s")]).head_to_heads[0]
    assert h.evidence == "items" and h.seeds is None and h.p_value > 0.05 and h.verdict == "inconclusive"
    assert h.sentence.startswith("Inconclusive: ModernBERT minus BERT is +0.3 points (95 % CI")
    assert h.sentence.endswith(f"McNemar p = {h.p_value:.3g}), which spans both no difference and a difference "
                               "larger than 0.5 points; from one run each, so training noise is not counted: add "
                               "seed=0,1,2.")


def test_predictions_of_other_items_are_not_paired(tmp_path):
    label = labels()
    make_run(tmp_path / "s" / "0_bert", "bert", 0, predictions(label, np.arange(100)), label)
    other = make_run(tmp_path / "s" / "1_modernbert", "modernbert", 0, predictions(label, np.arange(50)), label)
    lines = (other / "test_predictions.csv").read_text().splitlines()
    lines[1:] = [line.replace(line.split(",")[0], str(1000 + i), 1) for i, line in enumerate(lines[1:])]
    (other / "test_predictions.csv").write_text("\n".join(lines) + "\n")
    h = build_report([str(tmp_path / "s")]).head_to_heads[0]
    assert h.items is None and h.p_value is None and h.evidence == "scores" and h.verdict == "inconclusive"
    assert "list different test items" in h.notes[0]
    assert h.difference == pytest.approx(50 / N)
    assert "cannot say whether that is more than noise" in h.sentence


def test_bad_inputs_are_named_and_the_rest_reported(tmp_path, capsys):
    label = labels()
    make_run(tmp_path / "s" / "0_bert", "bert", 0, predictions(label, np.arange(100)), label)
    make_run(tmp_path / "s" / "1_modernbert", "modernbert", 0, predictions(label, np.arange(50)), label)
    broken = make_run(tmp_path / "s" / "2_bert", "bert", 1, label, label)
    (broken / "metrics.json").write_text("{not json")
    short = make_run(tmp_path / "s" / "3_modernbert", "modernbert", 1, label, label)
    lines = (short / "test_predictions.csv").read_text().splitlines()
    (short / "test_predictions.csv").write_text("\n".join(lines[:-5]) + "\n")
    (tmp_path / "empty").mkdir()
    code = main([str(tmp_path / "s"), str(tmp_path / "empty"), "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"{broken}: metrics.json is not valid JSON or has no status; run left out" in printed
    assert f"{short / 'test_predictions.csv'}: 1995 rows but the run's test split has 2000 items" in printed
    assert f"{tmp_path / 'empty'}: no runs here" in printed
    assert "ModernBERT is better than BERT" in printed


def test_nothing_to_compare_exits_non_zero(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 1
    assert "no completed run to compare" in capsys.readouterr().err


@pytest.mark.slow  # a fresh interpreter
def test_compare_does_not_import_torch():
    code = "import sys, bertcmp.compare; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.figures
def test_accuracy_by_length_quarters(tmp_path, capsys):
    """ModernBERT wrong on 100 of the shortest texts, BERT wrong on all of the longest quarter."""
    label, n_tokens = labels(), np.arange(N) + 10  # item i has i + 10 tokens: quarters of 500 items
    make_run(tmp_path / "s" / "0_bert", "bert", 0, predictions(label, np.arange(1500, 2000)), label,
             n_tokens=n_tokens)
    make_run(tmp_path / "s" / "1_modernbert", "modernbert", 0, predictions(label, np.arange(100)), label,
             n_tokens=n_tokens)
    assert main([str(tmp_path / "s")]) == 0
    rows = json.loads((tmp_path / "s" / "comparison" / "comparison.json").read_text())["head_to_heads"][0]["by_length"]
    assert [(r["bucket"], r["items"], r["a"], r["b"]) for r in rows] == [
        ("10-509 tokens", 500, 0.8, 1.0), ("510-1009 tokens", 500, 1.0, 1.0), ("1010-1509 tokens", 500, 1.0, 1.0),
        ("1510-2009 tokens", 500, 1.0, 0.0)]
    assert [r["difference"] for r in rows] == pytest.approx([-0.2, 0.0, 0.0, 1.0])
    assert re.search(r"1510-2009 tokens +500 +1\.0000 +0\.0000 +\+100\.0", capsys.readouterr().out)
    assert "| 10-509 tokens | 500 | 0.8000 | 1.0000 | -20.0 (" in (tmp_path / "s" / "comparison" / "report.md").read_text()
    assert (tmp_path / "s" / "comparison" / "accuracy_by_length.png").read_bytes()[:4] == b"\x89PNG"


def test_three_families_rank_and_meet_the_best_with_holms_correction(tmp_path, capsys):
    label = labels()
    wrong = {"modernbert": np.arange(0, 100), "roberta": np.arange(60, 190), "bert": np.arange(50, 200)}
    for num, (model, items) in enumerate(wrong.items()):
        make_run(tmp_path / "s" / f"{num}_{model}", model, 0, predictions(label, items), label)
    assert main([str(tmp_path / "s")]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "s" / "comparison" / "comparison.json").read_text())
    assert [s["family"] for s in summary["ranking"]] == ["modernbert", "roberta", "bert"]
    assert [s["encoder"] for s in summary["ranking"]] == ["ModernBERT", "RoBERTa", "BERT"]
    pairs = summary["head_to_heads"]
    assert [(h["encoder_a"], h["encoder_b"]) for h in pairs] == [("ModernBERT", "RoBERTa"), ("ModernBERT", "BERT")]
    raw = [mcnemar_exact(label, predictions(label, wrong["modernbert"]), predictions(label, wrong[m]))[2]
           for m in ("roberta", "bert")]
    assert [h["p_value"] for h in pairs] == pytest.approx(raw)
    low, high = sorted(raw)  # Holm: the smaller p times 2, the larger as it is (never below the first)
    holm = {low: min(1, 2 * low), high: max(min(1, 2 * low), high)}
    assert [h["adjusted_p"] for h in pairs] == pytest.approx([holm[p] for p in raw])
    assert all(h["comparisons"] == 2 and "Holm-adjusted p" in h["sentence"] for h in pairs)
    assert "  1. ModernBERT: valid accuracy 0.9500" in printed and "  3. BERT:" in printed
    report = (tmp_path / "s" / "comparison" / "report.md").read_text()
    assert "| 2 | RoBERTa | `model=roberta` | 1 |" in report and "## ModernBERT against BERT" in report


def test_multi_class_runs_compare_by_item_and_by_macro_f1(tmp_path, capsys):
    rng = np.random.default_rng(5)
    names = ["a", "b", "c"]
    label = rng.integers(0, 3, 600)
    for num, (model, wrong) in enumerate((("bert", 150), ("modernbert", 60))):
        pred = label.copy()
        pred[:wrong] = (pred[:wrong] + 1) % 3
        run = make_run(tmp_path / "s" / f"{num}_{model}", model, 0, pred, label)
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["classes"], metrics["test"] = names, scores(label, pred, names)
        (run / "metrics.json").write_text(json.dumps(metrics))
        rows = ["index,label,pred,prob_a,prob_b,prob_c"] + [f"{i},{names[y]},{names[p]},0.2,0.3,0.5"
                                                            for i, (y, p) in enumerate(zip(label, pred))]
        (run / "test_predictions.csv").write_text("\n".join(rows) + "\n")
    assert main([str(tmp_path / "s"), "--metric", "test.macro_f1"]) == 0
    h = json.loads((tmp_path / "s" / "comparison" / "comparison.json").read_text())["head_to_heads"][0]
    assert h["evidence"] == "items" and h["items"]["only_a"] == 90 and h["items"]["only_b"] == 0 and h["low"] > 0
    assert h["sentence"].startswith("ModernBERT is better than BERT by") and "points of test.macro_f1" in h["sentence"]
    assert main([str(tmp_path / "s"), "--metric", "test.f1"]) == 2
    assert "--metric test.f1 is the positive class's F1 of two-class tasks" in capsys.readouterr().err


def test_damaged_files_leave_their_run_out_and_the_rest_is_compared(tmp_path, capsys):
    """A history.jsonl that is not UTF-8, a completed metrics.json without scores: one line each, no NaN."""
    label = labels()
    make_run(tmp_path / "s" / "0_bert", "bert", 0, predictions(label, np.arange(100)), label)
    make_run(tmp_path / "s" / "1_modernbert", "modernbert", 0, predictions(label, np.arange(50)), label)
    garbled = make_run(tmp_path / "s" / "2_bert", "bert", 1, label, label)
    (garbled / "history.jsonl").write_bytes(b'{"epoch": 1, "valid_accuracy": 0.9}\n\xff\xfe garbage\n')
    empty = make_run(tmp_path / "s" / "3_modernbert", "modernbert", 1, label, label)
    metrics = json.loads((empty / "metrics.json").read_text())
    del metrics["valid"], metrics["test"]
    (empty / "metrics.json").write_text(json.dumps(metrics))
    assert main([str(tmp_path / "s")]) == 0
    printed = capsys.readouterr().out
    assert f"{garbled}: history.jsonl is not UTF-8 text (invalid start byte, byte 36); run left out" in printed
    assert f"{empty}: metrics.json says completed but has no valid.accuracy or test.accuracy; run left out" in printed
    assert "nan points" not in printed  # the NaN row and verdict of issue 13
    summary = json.loads((tmp_path / "s" / "comparison" / "comparison.json").read_text())
    assert sorted(r["runs"] for r in summary["rows"]) == [1, 1]  # the two good runs, compared
    assert summary["head_to_heads"][0]["sentence"].startswith("ModernBERT is better than BERT")


def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    label = labels()
    make_run(tmp_path / "s" / "0_bert", "bert", 0, label, label)
    (tmp_path / "report.txt").write_text("mine")
    assert main([str(tmp_path / "s"), "--out", str(tmp_path / "report.txt")]) == 2
    assert capsys.readouterr().err.strip() == (f"error: --out {tmp_path / 'report.txt'} is a file; give a directory "
                                               "(made if missing) for the report")
    assert (tmp_path / "report.txt").read_text() == "mine"


@pytest.mark.figures
def test_a_full_disk_under_out_is_one_line(tmp_path, capsys, monkeypatch):
    import errno

    label = labels()
    make_run(tmp_path / "s" / "0_bert", "bert", 0, label, label)
    make_run(tmp_path / "s" / "1_modernbert", "modernbert", 0, label, label)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # every report file but the figures; the figures are written first
    monkeypatch.setattr("matplotlib.figure.Figure.savefig", full)
    assert main([str(tmp_path / "s"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == (f"error: no space left on the disk holding {tmp_path / 'out'} "
                                               "(writing learning_curves.png): free some space, or give --out a "
                                               "directory on another disk")
    assert list((tmp_path / "out").iterdir()) == []


def two_task_runs(root: Path, seeds=(0, 1)) -> dict:
    """BERT and ModernBERT on two tasks with test sets of their own: BERT's best run falls on imdb, ModernBERT's on
    synthetic, so a comparison across tasks would pit one task against the other."""
    tasks = {"imdb": labels(), "synthetic": np.random.default_rng(1).integers(0, 2, 800)}
    wrong = {("imdb", "bert"): 100, ("imdb", "modernbert"): 160, ("synthetic", "bert"): 60,
             ("synthetic", "modernbert"): 20}
    for (task, model), k in wrong.items():
        label = tasks[task]
        for seed in seeds:
            make_run(root / f"{task}_{model}_{seed}", model, seed, predictions(label, np.arange(k + seed)), label,
                     data_name=task, extra=(f"data={task}",))
    return tasks


@pytest.mark.figures
def test_runs_of_two_tasks_never_meet(tmp_path, capsys):
    tasks = two_task_runs(tmp_path / "s")
    assert main([str(tmp_path / "s")]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "s" / "comparison"
    summary = json.loads((out / "comparison.json").read_text())
    assert [t["name"] for t in summary["tasks"]] == ["imdb", "synthetic"]
    assert "head_to_heads" not in summary and "rows" not in summary  # top-level keys never mix tasks
    for task in summary["tasks"]:
        assert {r["task"] for r in task["rows"]} == {task["name"]} and len(task["runs"]) == 4
        assert all(f"/{task['name']}_" in run for run in task["runs"])
        (h,) = task["head_to_heads"]
        assert h["items"]["test_items"] == len(tasks[task["name"]])  # paired on its own task's items
        assert task["key"]["name"] == task["name"] and set(task["budget"]) == {"BERT", "ModernBERT"}
    imdb, synthetic = (t["head_to_heads"][0] for t in summary["tasks"])
    assert (imdb["encoder_a"], imdb["verdict"], imdb["winner"]) == ("BERT", "better", "BERT")
    assert (synthetic["encoder_a"], synthetic["verdict"], synthetic["winner"]) == ("ModernBERT", "better", "ModernBERT")
    assert imdb["difference"] == pytest.approx(60 / N)
    across = summary["across_tasks"]
    assert across["tasks"] == ["imdb", "synthetic"] and across["record"]["BERT"]["wins"] == 1
    assert across["record"]["BERT"]["losses"] == 1 and across["test"]["p_value"] is None
    assert across["sentence"] == ("Across 2 tasks BERT is better than ModernBERT on 1, equivalent on 0, worse on 1 and "
                                  "inconclusive on 0; no test across tasks: with 2 tasks the Wilcoxon signed-rank "
                                  "test cannot reach p < 0.05 (it needs at least 6).")
    assert "=== task imdb: 4 runs ===" in printed and "=== across tasks ===" in printed
    report = (out / "report.md").read_text()
    assert summary["recommendation"].startswith("No single pick: BERT on 1 (imdb), ModernBERT on 1 (synthetic).")
    assert report.startswith(f"# bertcmp comparison\n\n**Recommendation.** {summary['recommendation']}\n\n"
                             f"**{across['sentence']}**")
    assert "## Task: imdb" in report and "## Task: synthetic" in report and "| BERT | 0.9497 leader |" in report
    csv_head = (out / "summary.csv").read_text().splitlines()[0]
    assert csv_head.startswith("task,encoder,configuration,")
    assert (out / "budget.png").read_bytes()[:4] == b"\x89PNG"


def test_a_task_that_one_encoder_ran_says_so_and_the_rest_goes_on(tmp_path, capsys):
    two_task_runs(tmp_path / "s")
    label = labels()
    for seed in (0, 1):
        make_run(tmp_path / "s" / f"topics_bert_{seed}", "bert", seed, predictions(label, np.arange(30)), label,
                 data_name="topics")
    report = build_report([str(tmp_path / "s")])
    topics = report.tasks[2]
    assert topics.name == "topics" and topics.head_to_heads == []
    assert topics.notes == ["no head-to-head on topics: only BERT ran it; it needs completed runs of at least two "
                            "encoders"]
    assert len(report.tasks[0].head_to_heads) == 1 and "(not both run on 1)" in report.across.sentence
    assert {c["mark"] for c in report.across.cells if c["task"] == "topics"} == {"alone"}


def test_tasks_that_share_a_name_are_told_apart(tmp_path):
    label = labels()
    for split in ("pooled", "official"):
        for num, model in enumerate(("bert", "modernbert")):
            run = make_run(tmp_path / "s" / f"{split}_{model}", model, 0, predictions(label, np.arange(50 + num)),
                           label)
            config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
            config["data"]["split"] = split
            (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    report = build_report([str(tmp_path / "s")])
    assert [t.name for t in report.tasks] == ["imdb (split=official)", "imdb (split=pooled)"]


def test_two_checkpoints_of_one_family_meet_by_name(tmp_path, capsys):
    label = labels()
    for seed in (0, 1):
        for k, checkpoint in ((150, "roberta-base"), (90, "FacebookAI/roberta-large")):
            make_run(tmp_path / "s" / f"{checkpoint.replace('/', '_')}_{seed}", "roberta", seed,
                     predictions(label, np.arange(k + 3 * seed)), label, pretrained=checkpoint,
                     extra=("model=auto", f"model.pretrained={checkpoint}"))
        make_run(tmp_path / "s" / f"bert_{seed}", "bert", seed, predictions(label, np.arange(120 + seed)), label,
                 pretrained="bert-base-uncased")
    report = build_report([str(tmp_path / "s")])
    assert [s.encoder for s in report.tasks[0].ranking] == ["roberta-large", "BERT", "roberta-base"]
    assert [(h.encoder_a, h.encoder_b) for h in report.head_to_heads] == [("roberta-large", "BERT"),
                                                                          ("roberta-large", "roberta-base")]
    assert report.head_to_heads[1].sentence.startswith("roberta-large is better than roberta-base by 3.0 points")


def test_encoders_are_named_by_family_checkpoint_or_shape(tmp_path):
    from bertcmp.compare.groups import encoder_names
    from bertcmp.runs import load_runs

    label = labels()
    made = {"a": dict(model="bert", pretrained="/models/a/minilm"), "b": dict(model="bert", pretrained="/models/b/minilm"),
            "c": dict(model="modernbert", scratch={"hidden_size": 64, "num_layers": 2, "num_heads": 2,
                                                   "intermediate_size": 128, "vocab_size": 2000}),
            "d": dict(model="modernbert", scratch={k: None for k in ("hidden_size", "num_layers", "num_heads",
                                                                     "intermediate_size", "vocab_size")}),
            "e": dict(model="deberta-v2", pretrained="microsoft/deberta-v3-base")}
    for name, kind in made.items():
        make_run(tmp_path / "s" / name, seed=0, pred=label, label=label, **kind)
    runs = load_runs([str(tmp_path / "s")]).runs
    names = encoder_names(runs)
    assert [names[r.encoder_key] for r in runs] == ["a/minilm", "b/minilm", "ModernBERT scratch 2x64",
                                                    "ModernBERT scratch base", "DeBERTa-v2"]


def test_each_task_is_compared_on_its_own_metric(tmp_path, capsys):
    """A task whose runs were selected by data.metric=mcc: its configurations are picked on valid MCC and
    compared on test MCC, unless --metric says otherwise."""
    label = labels()
    for num, (model, lr, valid_accuracy, valid_mcc, test_mcc) in enumerate((
            ("bert", 1e-5, 0.95, 0.10, 0.11), ("bert", 5e-5, 0.80, 0.60, 0.61),  # accuracy and MCC disagree
            ("modernbert", 5e-5, 0.85, 0.70, 0.72))):
        wrong = np.arange(0, 50 * (num + 1))
        run = make_run(tmp_path / "s" / f"{num}_{model}_{lr}", model, 0, predictions(label, wrong), label, lr=lr,
                       extra=(f"trainer.lr={lr}",), data_name="cola")
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["metric"] = "mcc"
        metrics["valid"] |= {"accuracy": valid_accuracy, "mcc": valid_mcc}
        metrics["test"]["mcc"] = test_mcc
        (run / "metrics.json").write_text(json.dumps(metrics))
    assert main([str(tmp_path / "s")]) == 0
    summary = json.loads((tmp_path / "s" / "comparison" / "comparison.json").read_text())
    assert summary["metric"] == "test.mcc" and summary["tasks"][0]["metric"] == "test.mcc"
    ranking = {s["encoder"]: s for s in summary["ranking"]}
    assert "trainer.lr=5e-05" in ranking["BERT"]["configuration"]  # the better valid MCC, not accuracy
    assert ranking["BERT"]["valid_score"] == 0.60 and ranking["BERT"]["metric"] == 0.61
    assert "points of test.mcc" in summary["head_to_heads"][0]["sentence"]
    report = (tmp_path / "s" / "comparison" / "report.md").read_text()
    assert "| rank | encoder | best configuration | runs | valid mcc | test.mcc |" in report
    assert main([str(tmp_path / "s"), "--metric", "test.accuracy", "--out", str(tmp_path / "acc")]) == 0
    summary = json.loads((tmp_path / "acc" / "comparison.json").read_text())
    ranking = {s["encoder"]: s for s in summary["ranking"]}
    assert summary["metric"] == "test.accuracy" and "trainer.lr=1e-05" in ranking["BERT"]["configuration"]


def test_runs_scored_on_another_split_or_configuration_are_another_task(tmp_path):
    from bertcmp.runs import load_runs

    label = labels()
    dirs = [make_run(tmp_path / "s" / f"{i}_bert", "bert", i, label, label) for i in range(4)]
    for directory, change in zip(dirs[1:], ({"test_split": "test"}, {"test_split": "validation"}, {"config": "sst2"})):
        config = yaml.safe_load((directory / ".hydra" / "config.yaml").read_text())
        config["data"] |= change
        (directory / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    keys = [run.data_key for run in sorted(load_runs([str(tmp_path / "s")]).runs, key=lambda r: r.dir.name)]
    assert keys[0] == keys[1]  # a run of 0.4 (no data.test_split) scored on the test split, as the default does
    assert len({keys[0], keys[2], keys[3]}) == 3


def test_a_task_compared_on_f1_shows_it_and_ranks_by_it(tmp_path, capsys):
    """MRPC and QQP record data.metric=f1: test.f1 is not among the table's usual columns, yet it is compared."""
    label = labels()
    for model, wrong in (("bert", 150), ("modernbert", 60)):
        for seed in range(2):
            run = make_run(tmp_path / "s" / f"{model}_{seed}", model, seed,
                           predictions(label, np.arange(wrong + seed)), label, data_name="mrpc")
            metrics = json.loads((run / "metrics.json").read_text())
            metrics["metric"] = "f1"
            metrics["valid"]["f1"], metrics["test"]["f1"] = 0.5 + wrong / 1000, 0.9 - wrong / 1000 - seed / 1000
            (run / "metrics.json").write_text(json.dumps(metrics))
    report = build_report([str(tmp_path / "s")])
    (task,) = report.tasks
    assert task.metric == "test.f1" and [s.metric for s in task.ranking] == pytest.approx([0.7495, 0.8395])
    assert main([str(tmp_path / "s")]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"macro-F1\s+MCC\s+test f1\s+best epoch", printed)
    assert "0.8395 ± 0.0007" in printed
    # the compared metric is kept once a row: metric_mean and metric_std, under the name `metric`
    rows = json.loads((tmp_path / "s" / "comparison" / "comparison.json").read_text())["rows"]
    assert sorted(r["metric_mean"] for r in rows) == pytest.approx([0.7495, 0.8395])
    assert all(r["metric"] == "test.f1" and "test.f1" not in r and "test.f1_std" not in r for r in rows)
