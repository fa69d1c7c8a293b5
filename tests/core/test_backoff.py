"""The one backoff (pumpwatch.core.backoff): the jittered reconnect wait and the doubling retry wait."""

from __future__ import annotations

import random

import pytest

from pumpwatch.core.backoff import Backoff, exponential, jittered


def test_jittered_waits_stay_under_the_cap_and_the_growing_ceiling() -> None:
    rng = random.Random(7)
    for attempt in range(1, 30):
        ceiling = 1.5 ** min(10, attempt)
        waits = [jittered(attempt, 60.0, rng) for _ in range(200)]
        assert all(0 <= w <= min(60.0, ceiling) for w in waits)
    # spread, not one value: a fleet that lost its broker does not come back in the same second
    waits = [jittered(8, 60.0, rng) for _ in range(200)]
    assert max(waits) - min(waits) > 10
    assert all(jittered(20, 2.0, rng) <= 2.0 for _ in range(100))
    assert all(jittered(0, 60.0, rng) <= 1.0 for _ in range(50))


def test_jittered_is_reproducible_with_a_seeded_generator() -> None:
    a, b = random.Random(3), random.Random(3)
    assert [jittered(n, 10.0, a) for n in range(1, 12)] == [jittered(n, 10.0, b) for n in range(1, 12)]


def test_exponential_doubles_from_the_first_wait_up_to_the_cap() -> None:
    assert [exponential(n, 5, 60) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 60]
    assert exponential(0, 0.5, 10) == 0.5  # no failure counted yet: the first wait
    assert exponential(10_000, 0.5, 10) == 10  # no overflow on a very long outage


def test_backoff_counts_failures_and_starts_over_after_a_success() -> None:
    b = Backoff(0.5, 3.0)
    assert b.current_s == 0.0
    assert [b.failed() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert b.attempts == 5 and b.current_s == 3.0
    b.reset()
    assert (b.attempts, b.current_s) == (0, 0.0)
    assert b.failed() == 0.5
    b.cap_s = 0.2  # the cap may be lowered while running (tests shorten an outage's retries)
    assert b.failed() == 0.2


def test_jittered_backoff_draws_from_its_generator() -> None:
    b = Backoff(1.0, 60.0, jitter=True, rng=random.Random(1))
    waits = [b.failed() for _ in range(20)]
    assert all(0 <= w <= 60.0 for w in waits) and len(set(waits)) == 20
    assert b.attempts == 20


@pytest.mark.parametrize(("first", "cap"), [(0, 1), (1, 0), (-1, 5)])
def test_backoff_refuses_times_that_are_not_positive(first: float, cap: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        Backoff(first, cap)
