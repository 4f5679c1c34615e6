"""The recommendation never claims more than the verdict and the cost show."""

import math

import pytest

from bertcmp.compare.cost import CostRatio
from bertcmp.compare.recommend import across_advice, pair_advice, task_advice
from bertcmp.compare.verdict import HeadToHead, decide

CPU = {"device_name": "AMD EPYC", "device_count": 1, "precision": "fp32", "shared_with": 1, "threads": 2}


def head_to_head(difference: float, low: float, high: float, a: str = "BERT", b: str = "ModernBERT",
                 evidence: str = "seeds") -> HeadToHead:
    """A head-to-head over 3 seeds a side, with its verdict decided as the comparison decides it."""
    h = HeadToHead(a="x", b="y", encoder_a=a, encoder_b=b, family_a="bert", family_b="modernbert",
                   metric="test.accuracy", margin=0.005, difference=difference, low=low, high=high,
                   low90=low + (high - low) * 0.08, high90=high - (high - low) * 0.08, evidence=evidence,
                   p_value=0.01 if low > 0 or high < 0 else 0.5,
                   seeds={"n_a": 3, "n_b": 3}, seeds_needed={"to_decide": 7, "for_margin": 20})
    decide(h)
    return h


def speeds(train: float, infer: float, low: float | None = None, high: float | None = None, a: str = "BERT",
           b: str = "ModernBERT") -> list[CostRatio]:
    """b over a: training and inference throughput; the interval (a factor around each ratio) if given."""
    def ratio(measure: str, value: float) -> CostRatio:
        spread = (value * low, value * high) if low is not None else (None, None)
        return CostRatio(a, b, measure, value, *spread, compared=True, runs=(3, 3) if low else (1, 1), hardware=CPU)

    return [ratio("train_tokens_per_s", train), ratio("infer_examples_per_s", infer)]


def test_better_and_cheaper_is_one_clear_pick():
    advice = pair_advice(head_to_head(-0.02, -0.03, -0.01), speeds(2.0, 1.5, 0.9, 1.1))
    assert advice.pick == "ModernBERT"
    assert advice.text.startswith("Pick ModernBERT: it is better by 2.0 points (95 % CI 1.0 to 3.0), and cheaper: "
                                  "ModernBERT trains 2.00x as fast as BERT (1.80 to 2.20 over 3 seeds) and classifies "
                                  "1.50x as many texts per second as BERT (1.35 to 1.65 over 3 seeds)")
    assert advice.text.endswith("on AMD EPYC (2 threads), fp32.")


def test_better_but_dearer_says_what_the_other_saves():
    advice = pair_advice(head_to_head(0.02, 0.01, 0.03), speeds(2.0, 2.0, 0.9, 1.1))
    assert advice.pick == "BERT" and advice.text.startswith("Pick BERT for accuracy: it is better by 2.0 points")
    assert "ModernBERT trains 2.00x as fast as BERT" in advice.text
    assert "where training or serving cost rules" in advice.text


def test_equivalent_picks_the_cheaper_and_mixed_costs_pick_neither():
    equivalent = head_to_head(0.0005, -0.002, 0.003)
    assert equivalent.verdict == "equivalent"
    cheaper = pair_advice(equivalent, speeds(0.5, 0.4, 0.9, 1.1))
    assert cheaper.pick == "BERT" and cheaper.text.startswith(
        "Pick BERT, the cheaper: BERT and ModernBERT are practically equivalent in accuracy (within ±0.5 points)")
    mixed = pair_advice(equivalent, speeds(2.0, 0.5, 0.9, 1.1))
    assert mixed.pick == "either" and mixed.text.startswith("Either, by what costs you more:")
    unclear = pair_advice(equivalent, speeds(1.2, 1.1, 0.5, 2.0))  # intervals that include 1
    assert unclear.pick == "either" and "neither is clearly faster" in unclear.text


def test_a_ratio_from_one_run_a_side_counts_only_past_ten_percent():
    equivalent = head_to_head(0.0005, -0.002, 0.003)
    assert pair_advice(equivalent, speeds(1.05, 1.05)).pick == "either"
    one_run = pair_advice(equivalent, speeds(1.5, 1.5))
    assert one_run.pick == "ModernBERT" and "one run a side: no interval" in one_run.text


def test_inconclusive_makes_no_pick_and_says_what_would_decide():
    h = head_to_head(0.01, -0.02, 0.04)
    assert h.verdict == "inconclusive"
    advice = pair_advice(h, speeds(2.0, 2.0, 0.9, 1.1))
    assert advice.pick is None and advice.text.startswith("No pick on accuracy yet: BERT minus ModernBERT is +1.0 "
                                                          "points (95 % CI -2.0 to 4.0), inconclusive; ")
    assert "about 7 seeds per side would decide it" in advice.text
    assert advice.text.endswith("ModernBERT is the pick if accuracy turns out equivalent.")


def test_a_cost_not_compared_is_never_used():
    h = head_to_head(0.0005, -0.002, 0.003)
    why = "BERT ran on NVIDIA A100-SXM4-80GB, bf16, ModernBERT on NVIDIA H100 80GB HBM3, bf16: not compared on cost"
    costs = [CostRatio("BERT", "ModernBERT", m, None, None, None, compared=False, why=why)
             for m in ("train_tokens_per_s", "infer_examples_per_s")]
    advice = pair_advice(h, costs)
    assert advice.pick == "either" and "x as fast" not in advice.text
    assert advice.text.endswith("cost was not compared: BERT ran on NVIDIA A100-SXM4-80GB, bf16, ModernBERT on NVIDIA "
                                "H100 80GB HBM3, bf16.")


def test_the_task_paragraph_adds_where_a_longer_context_pays():
    h = head_to_head(-0.02, -0.03, -0.01)
    h.length_sentence = "A longer context pays: on the 300 test items longer than BERT's 512 tokens ..."
    advice = task_advice([h], {"ModernBERT": speeds(1.0, 1.0, 0.9, 1.1)})
    assert advice.pick == "ModernBERT" and advice.text.endswith(h.length_sentence)


def test_across_tasks_counts_the_picks_and_averages_the_speed_whoever_leads():
    imdb = task_advice([head_to_head(-0.02, -0.03, -0.01)], {"ModernBERT": speeds(2.0, 1.0, 0.9, 1.1)})
    # on sst2 ModernBERT leads: its ratios are BERT over ModernBERT
    sst2_h = head_to_head(0.0005, -0.002, 0.003, a="ModernBERT", b="BERT")
    sst2_costs = speeds(1 / 8, 1.0, 0.9, 1.1, a="ModernBERT", b="BERT")
    sst2 = task_advice([sst2_h], {"BERT": sst2_costs})
    text = across_advice([("imdb", imdb, speeds(2.0, 1.0, 0.9, 1.1)), ("sst2", sst2, sst2_costs)])
    assert text.startswith("Pick ModernBERT: it is the pick on 2 of 2 tasks and no other encoder is the pick on any.")
    assert f"ModernBERT trains {math.sqrt(16):.2f}x as fast as BERT (geometric mean over the 2 tasks" in text


@pytest.mark.parametrize("picks, start", [(["BERT", None], "Pick BERT: it is the pick on 1 of 2 tasks"),
                                          (["BERT", "ModernBERT"], "No single pick: BERT on 1 (t0), ModernBERT on 1"),
                                          ([None, "either"], "No encoder is the pick on any of the 2 tasks")])
def test_across_tasks_never_claims_a_pick_the_tasks_do_not_make(picks, start):
    from bertcmp.compare.recommend import Advice

    text = across_advice([(f"t{i}", Advice(p, ""), []) for i, p in enumerate(picks)])
    assert text.startswith(start)
