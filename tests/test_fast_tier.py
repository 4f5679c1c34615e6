"""The check that keeps the fast tier fast (tests/fast_tier.py), run on a small suite of its own."""

import fast_tier

SUITE = """
import time
import pytest

def test_quick():
    pass

def test_slow_but_unmarked():
    time.sleep(0.3)

@pytest.mark.slow
def test_slow_and_marked():
    time.sleep(0.3)
"""


def test_a_long_test_outside_the_slow_tier_fails_and_says_what_to_do(pytester):
    pytester.makeini("[pytest]\nmarkers = slow\nfast_tier_limit_s = 0.2\n")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", plugins=[fast_tier])
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_slow_but_unmarked took 0.3 s, over the fast tier's 0.2 s: mark it "
                                 "@pytest.mark.slow, or make it faster*"])


def test_the_limit_is_twenty_seconds_unless_set():
    assert fast_tier.too_slow(19.9, 20, marked_slow=False) is None
    assert fast_tier.too_slow(20.5, 20, marked_slow=True) is None
    assert fast_tier.too_slow(20.5, 20, marked_slow=False).startswith("took 20.5 s, over the fast tier's 20 s")
    assert fast_tier.DEFAULT_LIMIT_S == "20"
