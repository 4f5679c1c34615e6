"""Where two encoders differ: by length (buckets set by each model's own limit), by class, and the items one alone
got right, each checked against a direct computation on crafted predictions."""

import json

import numpy as np
import pytest

from bertcmp.compare import main
from bertcmp.metrics import scores
from test_compare import N, labels, make_run, predictions


def direct_interval(right_a: np.ndarray, right_b: np.ndarray) -> tuple[float, float, float]:
    """The paired difference in accuracy and its normal-approximation 95 % interval, from the items directly."""
    d = right_a.astype(float) - right_b.astype(float)
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half


def test_by_length_buckets_follow_each_models_own_limit(tmp_path, capsys):
    """The long model (reads 512) is right on the texts the short one (128) must cut; the short one is right on
    some short texts the long one gets wrong. Each model counts tokens with its own tokenizer."""
    label = labels()
    n_long = np.where(np.arange(N) < 1500, 100, np.where(np.arange(N) < 1800, 300, 700))  # 1,500 / 300 / 200
    n_short = n_long + 5  # another tokenizer: a few more tokens per text
    long_pred = predictions(label, np.r_[np.arange(0, 30), np.arange(1800, 1900)])
    short_pred = predictions(label, np.r_[np.arange(1500, 1650), np.arange(1800, 1900)])
    for name, pred, n_tokens, limit, valid in (("long", long_pred, n_long, 512, 0.9),
                                                ("short", short_pred, n_short, 128, 0.8)):
        make_run(tmp_path / name, "bert", 0, pred, label, pretrained=f"m/{name}", n_tokens=n_tokens, valid=valid,
                 more={"data": {"max_length": limit}})
    assert main([str(tmp_path)]) == 0
    h = json.loads((tmp_path / "comparison" / "comparison.json").read_text())["head_to_heads"][0]
    assert (h["encoder_a"], h["encoder_b"]) == ("long", "short")
    buckets = {r["bucket"]: r for r in h["by_length"]}
    assert list(buckets) == ["within both limits (long 512, short 128 tokens)",
                             "longer than both limits (long 512, short 128 tokens)",
                             "longer than short's 128 tokens, within long's"]
    for name, items in zip(buckets, (np.arange(1500), np.arange(1800, 2000), np.arange(1500, 1800))):
        row = buckets[name]
        mean, low, high = direct_interval(long_pred[items] == label[items], short_pred[items] == label[items])
        assert row["items"] == len(items) and row["difference"] == pytest.approx(mean)
        assert row["a"] == pytest.approx((long_pred[items] == label[items]).mean())
        if mean != 0:
            assert (row["low"], row["high"]) == pytest.approx((low, high), abs=0.01)
    cut = buckets["longer than short's 128 tokens, within long's"]
    assert cut["difference"] == pytest.approx(0.5) and cut["low"] > 0 and cut["adjusted_p"] < 0.05
    assert h["length_sentence"].startswith("A longer context pays: ")
    assert "on the 300 test items longer than short's 128 tokens, within long's long is better by 50.0 points" in \
        h["length_sentence"]
    assert "the difference is inconclusive" in h["length_sentence"] or "within the margin" in h["length_sentence"]
    assert h["length_sentence"] in capsys.readouterr().out


def test_a_model_better_everywhere_is_not_said_to_gain_from_reading_further():
    """ModernBERT ahead on every bucket by about as much (a real H200 run of two scratch base shapes): its lead where
    BERT cut the text is no larger than where both read it whole."""
    from bertcmp.compare.differ import length_sentence

    def row(cut_by, difference, low, high, items):
        return {"bucket": f"cut by {cut_by}", "quarters": False, "cut_by": cut_by, "items": items,
                "difference": difference, "low": low, "high": high, "low90": low + 0.02, "high90": high - 0.02,
                "adjusted_p": 0.0001}

    everywhere = [row("none", 0.355, 0.316, 0.393, 854), row("both", 0.326, 0.225, 0.426, 129),
                  row("BERT", 0.412, 0.176, 0.647, 17)]
    assert length_sentence(everywhere, "ModernBERT", "BERT", 0.005).startswith("By length: ")
    gains = [row("none", 0.01, -0.01, 0.03, 854), row("BERT", 0.20, 0.10, 0.30, 300)]
    assert length_sentence(gains, "ModernBERT", "BERT", 0.005).startswith("A longer context pays: ")


def test_texts_no_model_cut_are_shown_in_quarters_and_no_context_pays(tmp_path):
    label = labels()
    n_tokens = np.arange(N) + 10
    for name, wrong, valid in (("a", np.arange(100), 0.9), ("b", np.arange(100, 210), 0.8)):
        make_run(tmp_path / name, "bert", 0, predictions(label, wrong), label, pretrained=f"m/{name}",
                 n_tokens=n_tokens, valid=valid, more={"data": {"max_length": 4096}})
    assert main([str(tmp_path)]) == 0
    h = json.loads((tmp_path / "comparison" / "comparison.json").read_text())["head_to_heads"][0]
    assert [r["items"] for r in h["by_length"]] == [500] * 4 and all(r["quarters"] for r in h["by_length"])
    assert h["length_sentence"].startswith("Neither model cut any test text; by length (quarters of the items): ")


def test_per_class_f1_and_its_interval_match_a_direct_computation(tmp_path, capsys):
    rng = np.random.default_rng(3)
    names = ["sport", "world", "tech"]
    label = rng.integers(0, 3, 900)
    preds = {"good": label.copy(), "weak": label.copy()}
    tech = np.flatnonzero(label == 2)
    preds["weak"][tech[:120]] = 0           # the weak one misses many tech items
    preds["good"][np.flatnonzero(label == 0)[:20]] = 1
    for name, valid in (("good", 0.9), ("weak", 0.8)):
        run = make_run(tmp_path / name, "bert", 0, preds[name], label, pretrained=f"m/{name}", valid=valid)
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["classes"], metrics["test"] = names, scores(label, preds[name], names)
        (run / "metrics.json").write_text(json.dumps(metrics))
        rows = ["index,label,pred,prob_sport,prob_world,prob_tech"] + [
            f"{i},{names[y]},{names[p]},0.2,0.3,0.5" for i, (y, p) in enumerate(zip(label, preds[name]))]
        (run / "test_predictions.csv").write_text("\n".join(rows) + "\n")
    assert main([str(tmp_path), "--metric", "test.macro_f1"]) == 0
    h = json.loads((tmp_path / "comparison" / "comparison.json").read_text())["head_to_heads"][0]
    rows = {r["class"]: r for r in h["by_class"]}

    def f1(pred: np.ndarray, k: int, items: np.ndarray) -> float:
        tp = np.sum((pred[items] == k) & (label[items] == k))
        return 2 * tp / (np.sum(pred[items] == k) + np.sum(label[items] == k))

    resampled = np.random.default_rng(9).integers(0, len(label), size=(2000, len(label)))
    for k, name in enumerate(names):
        row = rows[name]
        assert row["f1_a"] == pytest.approx(f1(preds["good"], k, np.arange(len(label))))
        assert row["f1_b"] == pytest.approx(f1(preds["weak"], k, np.arange(len(label))))
        diffs = [f1(preds["good"], k, items) - f1(preds["weak"], k, items) for items in resampled]
        assert (row["low"], row["high"]) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])), abs=0.01)
    assert rows["tech"]["low"] > 0 and rows["tech"]["adjusted_p"] < 0.05
    assert h["class_sentence"].startswith("By class: weak is clearly weaker on tech (F1 ")
    assert h["class_sentence"] in capsys.readouterr().out


def test_two_class_tasks_have_no_per_class_table(tmp_path):
    label = labels()
    for name, wrong, valid in (("a", np.arange(100), 0.9), ("b", np.arange(100, 210), 0.8)):
        make_run(tmp_path / name, "bert", 0, predictions(label, wrong), label, pretrained=f"m/{name}", valid=valid)
    assert main([str(tmp_path)]) == 0
    h = json.loads((tmp_path / "comparison" / "comparison.json").read_text())["head_to_heads"][0]
    assert h["by_class"] == [] and h["class_sentence"] == ""


def test_examples_are_the_items_one_alone_got_right_most_confident_first(tmp_path):
    label = labels()
    texts = [f"review number {i}" for i in range(N)]
    prob = np.linspace(0.6, 0.99, N)  # the later the item, the more confident
    pred_a, pred_b = predictions(label, np.arange(0, 10)), predictions(label, np.arange(10, 30))
    make_run(tmp_path / "a", "bert", 0, pred_a, label, pretrained="m/a", texts=texts, valid=0.9,
             prob_pos=np.where(pred_a == 1, prob, 1 - prob))
    make_run(tmp_path / "b", "bert", 0, pred_b, label, pretrained="m/b", texts=texts, valid=0.8,
             prob_pos=np.where(pred_b == 1, prob, 1 - prob))
    assert main([str(tmp_path)]) == 0
    report = (tmp_path / "comparison" / "report.md").read_text()
    examples = json.loads((tmp_path / "comparison" / "comparison.json").read_text())["head_to_heads"][0]["examples"]
    # a alone right on items 10..29 (b wrong there), b alone on 0..9; the most confident: the highest index first
    assert [e["index"] for e in examples if e["encoder"] == "a"] == [29, 28, 27, 26, 25]
    assert [e["index"] for e in examples if e["encoder"] == "b"] == [9, 8, 7, 6, 5]
    first = examples[0]
    assert first["text"] == "review number 29" and first["label"] == str(label[29])
    assert first["prob"] == pytest.approx(prob[29], abs=1e-6)
    assert f"- a alone: [{label[29]}, p = {prob[29]:.2f}] review number 29" in report


def test_runs_without_texts_show_item_ids(tmp_path):
    label = labels()
    for name, wrong, valid in (("a", np.arange(0, 10), 0.9), ("b", np.arange(10, 30), 0.8)):
        make_run(tmp_path / name, "bert", 0, predictions(label, wrong), label, pretrained=f"m/{name}", valid=valid)
    assert main([str(tmp_path)]) == 0
    examples = json.loads((tmp_path / "comparison" / "comparison.json").read_text())["head_to_heads"][0]["examples"]
    assert len(examples) == 10 and all(e["text"] is None for e in examples)
    assert "] item 10" in (tmp_path / "comparison" / "report.md").read_text()
