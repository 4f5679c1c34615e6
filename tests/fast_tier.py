"""A pytest plugin (tests/conftest.py loads it): a test left out of the slow tier that runs longer than
`fast_tier_limit_s` (pyproject.toml) on its own fails, saying so, so `pytest -m "not slow"` stays a one-minute check."""

from typing import Optional

import pytest

DEFAULT_LIMIT_S = "20"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("fast_tier_limit_s", "seconds a test not marked slow may take (its call, fixtures apart)",
                  default=DEFAULT_LIMIT_S)


def too_slow(seconds: float, limit: float, marked_slow: bool) -> Optional[str]:
    """Why a test must move to the slow tier, or None."""
    if marked_slow or seconds <= limit:
        return None
    return (f"took {seconds:.1f} s, over the fast tier's {limit:g} s: mark it @pytest.mark.slow, or make it "
            "faster")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or not report.passed:
        return
    why = too_slow(call.duration, float(item.config.getini("fast_tier_limit_s")),
                   item.get_closest_marker("slow") is not None)
    if why:
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid} {why}"
