"""The receive budget: a token bucket over messages and bytes, driven by injected time."""

from __future__ import annotations

import pytest

from crdtmem.runtime.ratelimit import RateLimit


def test_a_burst_of_one_seconds_worth_passes_then_reading_pauses():
    limit = RateLimit(messages_per_s=10, bytes_per_s=None)
    assert [limit.charge(1, 0.0) for _ in range(10)] == [0.0] * 10
    assert limit.charge(1, 0.0) == pytest.approx(0.1)
    assert limit.charge(1, 0.0) == pytest.approx(0.2)  # the debt grows with every message


def test_the_budget_refills_with_time_up_to_one_second():
    limit = RateLimit(messages_per_s=10, bytes_per_s=None)
    for _ in range(12):
        limit.charge(1, 0.0)
    assert limit.charge(1, 0.3) == pytest.approx(0.0)  # 0.3 s refilled the 2-message debt and 1 more
    assert limit.charge(1, 100.0) == 0.0
    assert [limit.charge(1, 100.0) for _ in range(9)] == [0.0] * 9  # refilled to 10, not to 1000
    assert limit.charge(1, 100.0) > 0


def test_bytes_are_limited_on_their_own():
    limit = RateLimit(messages_per_s=None, bytes_per_s=1000)
    assert limit.charge(1000, 0.0) == 0.0
    assert limit.charge(500, 0.0) == pytest.approx(0.5)


def test_the_larger_of_the_two_pauses_wins():
    limit = RateLimit(messages_per_s=1, bytes_per_s=1000)
    limit.charge(0, 0.0)
    assert limit.charge(3000, 0.0) == pytest.approx(2.0)  # bytes owe 2 s, messages 1 s


def test_no_limits_never_pause_and_bad_rates_are_refused():
    limit = RateLimit(None, None)
    assert all(limit.charge(10**9, 0.0) == 0.0 for _ in range(1000))
    with pytest.raises(ValueError):
        RateLimit(0, None)
    with pytest.raises(ValueError):
        RateLimit(None, -1)
