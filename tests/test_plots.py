"""The comparison's figures: the Pareto frontier is the set of configurations no other beats on both axes."""

from bertcmp.compare.plots import frontier


def test_the_frontier_keeps_what_no_other_point_beats_on_both_axes():
    points = [(45.0, 0.80), (91.0, 0.50), (60.0, 0.70), (50.0, 0.60), (91.0, 0.40)]
    # more throughput is better: (50, 0.60) loses to (60, 0.70), (91, 0.40) to (91, 0.50)
    assert frontier(points, more_is_better=True) == [(45.0, 0.80), (60.0, 0.70), (91.0, 0.50)]
    # less cost is better: (45, 0.80) is the cheapest and scores best, so it beats every other point
    assert frontier(points, more_is_better=False) == [(45.0, 0.80)]
    assert frontier([(10.0, 0.5), (20.0, 0.9)], more_is_better=False) == [(10.0, 0.5), (20.0, 0.9)]
