"""Recurring problems are logged once, then at most once per interval, counting what was not logged."""

from __future__ import annotations

import logging

import pytest

from crdtmem.runtime.notices import Notices


def test_a_recurring_problem_is_logged_once_per_interval_with_the_skipped_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    now = [0.0]
    notices = Notices(logging.getLogger("test.notices"), interval=60, clock=lambda: now[0])
    assert notices.warn("a", "cannot reach a")
    for t in (1, 10, 59):
        now[0] = t
        assert not notices.warn("a", "cannot reach a")
    assert notices.warn("b", "cannot reach b"), "another problem has its own budget"
    now[0] = 60
    assert notices.warn("a", "cannot reach a")
    assert [r.getMessage() for r in caplog.records] == [
        "cannot reach a", "cannot reach b", "cannot reach a (3 more like this since the last report)",
    ]


def test_distinct_problems_cost_bounded_memory() -> None:
    notices = Notices(logging.getLogger("test.notices"), interval=60, clock=lambda: 0.0, max_keys=3)
    for i in range(100):
        notices.warn(i, f"problem {i}")
    assert notices.warn(0, "problem 0"), "forgotten keys are logged again"
    assert not notices.warn(99, "problem 99")
