"""The three verdicts, each produced from crafted seed scores or predictions written as run dirs."""

import json

import numpy as np
import pytest
from scipy import stats

from bertcmp.compare import build_report, main
from test_compare import N, labels, make_run, predictions


def seeded(tmp_path, wrong: dict[str, list[int]]):
    """Runs of each family, one per seed, wrong on the first k test items for each k listed."""
    label = labels()
    for model, counts in wrong.items():
        for seed, k in enumerate(counts):
            make_run(tmp_path / "s" / f"{model}_{seed}", model, seed, predictions(label, np.arange(k)), label)
    return build_report([str(tmp_path / "s")])


def test_better_over_seeds(tmp_path):
    (h,) = seeded(tmp_path, {"bert": [200, 210, 190], "modernbert": [100, 108, 95]}).head_to_heads
    assert h.verdict == "better" and h.winner == "ModernBERT" and h.evidence == "seeds" and h.low > 0
    assert h.sentence.startswith("ModernBERT is better than BERT by 4.9 points (95 % CI")  # (100 + 102 + 95) / 3
    assert h.sentence.endswith("over seeds).")


def test_practically_equivalent_over_seeds(tmp_path):
    (h,) = seeded(tmp_path, {"bert": [200, 204, 198], "modernbert": [201, 203, 199]}).head_to_heads
    diffs = np.array([1, -1, 1]) / N  # per seed, BERT (the leader on validation) - ModernBERT, in [0, 1]
    half90 = stats.t.ppf(0.95, 2) * diffs.std(ddof=1) / np.sqrt(3)
    assert h.verdict == "equivalent" and (h.low90, h.high90) == pytest.approx((diffs.mean() - half90,
                                                                               diffs.mean() + half90))
    assert -0.005 < h.low90 and h.high90 < 0.005
    assert h.sentence == (f"{h.encoder_a} and {h.encoder_b} are practically equivalent: the difference is within "
                          f"±0.5 points (90 % CI {h.low90 * 100:.1f} to {h.high90 * 100:.1f} over seeds).")


def test_inconclusive_over_seeds_says_how_many_seeds_would_decide(tmp_path):
    (h,) = seeded(tmp_path, {"bert": [200, 240, 180], "modernbert": [190, 250, 150]}).head_to_heads
    assert h.verdict == "inconclusive" and h.low < 0 < h.high and h.high90 > 0.005
    diffs = np.array([10, -10, 30]) / N  # ModernBERT - BERT per seed
    mean, sd = diffs.mean(), diffs.std(ddof=1)
    half = lambda n, level: stats.t.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n)  # noqa: E731
    to_decide = next(n for n in range(2, 1000) if half(n, 0.95) < abs(mean) or abs(mean) + half(n, 0.90) < 0.005)
    for_margin = next(n for n in range(2, 1000) if 2 * half(n, 0.95) < 0.005)
    assert h.seeds_needed == {"to_decide": to_decide, "for_margin": for_margin} and to_decide < for_margin
    assert h.sentence.startswith("Inconclusive: ModernBERT minus BERT is +0.5 points (95 % CI")
    assert h.sentence.endswith(f"over seeds), which spans both no difference and a difference larger than 0.5 "
                               f"points; if the difference and its spread stay what these 3 seeds per side show, "
                               f"about {to_decide} seeds per side would decide it, and about {for_margin} would make "
                               "the interval narrower than the margin, which decides it whatever the difference "
                               "(rough estimates).")


def test_equivalent_on_the_items_of_one_run_each_says_so(tmp_path):
    label = labels()
    make_run(tmp_path / "s" / "0_bert", "bert", 0, predictions(label, np.arange(0, 100)), label)
    make_run(tmp_path / "s" / "1_modernbert", "modernbert", 0, predictions(label, np.arange(1, 101)), label)
    (h,) = build_report([str(tmp_path / "s")]).head_to_heads
    assert h.evidence == "items" and h.verdict == "equivalent" and h.difference == 0
    assert h.sentence.endswith(", from one run each, so training noise is not counted: add seed=0,1,2.")


def test_a_real_difference_inside_the_margin_is_equivalent(tmp_path):
    """Significant (the interval excludes 0) but smaller than a wide margin: equivalent, and the lead is said."""
    seeded(tmp_path, {"bert": [200, 210, 190], "modernbert": [100, 108, 95]})
    out = tmp_path / "wide"
    assert main([str(tmp_path / "s"), "--margin", "8", "--out", str(out)]) == 0
    h = json.loads((out / "comparison.json").read_text())["head_to_heads"][0]
    assert h["verdict"] == "equivalent" and h["low"] > 0
    assert "within ±8 points" in h["sentence"] and "ModernBERT is ahead by 4.9 points" in h["sentence"]
    assert "more than noise, less than the margin" in h["sentence"]
    assert json.loads((out / "comparison.json").read_text())["margin"] == 8


@pytest.mark.parametrize("margin", ["0", "-1", "abc", "nan", "inf"])
def test_a_margin_that_is_not_a_positive_number_is_one_line(tmp_path, capsys, margin):
    label = labels()
    make_run(tmp_path / "s" / "0_bert", "bert", 0, label, label)
    assert main([str(tmp_path / "s"), f"--margin={margin}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: --margin '{margin}' is not a positive number of points")
    assert not (tmp_path / "s" / "comparison").exists()


def test_when_the_validation_leader_loses_the_interval_is_the_winners_lead(tmp_path):
    """The leader on validation is `a`; when `b` wins on test the sentence's interval is b's lead, positive."""
    label = labels()
    for model, seed_valid, wrong in (("bert", 0.95, 300), ("modernbert", 0.90, 100)):
        for seed in range(3):
            make_run(tmp_path / "s" / f"{model}_{seed}", model, seed,
                     predictions(label, np.arange(wrong + 5 * seed)), label, valid=seed_valid)
    (h,) = build_report([str(tmp_path / "s")]).head_to_heads
    assert h.encoder_a == "BERT" and h.winner == "ModernBERT" and h.high < 0
    assert h.sentence.startswith(f"ModernBERT is better than BERT by {-h.difference * 100:.1f} points "
                                 f"(95 % CI {-h.high * 100:.1f} to {-h.low * 100:.1f} over seeds")
