"""The token bucket that paces a backfill, on an injected clock: no sleeping, no wall-clock assertions."""

from __future__ import annotations

import pytest

from services.publish.ratelimit import TokenBucket, Unlimited, chunk_size, pacer_for


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def drive(bucket: TokenBucket, clock: Clock, chunks: list[int]) -> float:
    """Send ``chunks`` one after another, each after the wait the bucket asks for; the time it took."""
    start = clock.t
    for n in chunks:
        clock.t += bucket.reserve(n)
    return clock.t - start


def test_the_long_run_rate_is_the_rate_whatever_the_chunk_sizes() -> None:
    clock = Clock()
    bucket = TokenBucket(300.0, capacity=30.0, clock=clock)
    took = drive(bucket, clock, [30] * 100 + [7, 1, 29, 13] * 25)
    sent = 30 * 100 + 50 * 25
    # a full bucket lets the first 30 go at once; every event after that waits its 1/300 s
    assert took == pytest.approx((sent - 30) / 300.0)


def test_a_full_bucket_allows_a_burst_of_its_capacity_and_no_more() -> None:
    clock = Clock()
    bucket = TokenBucket(100.0, capacity=10.0, clock=clock)
    assert bucket.reserve(10) == 0.0
    assert bucket.reserve(1) == pytest.approx(0.01)
    clock.t += 3600  # idle an hour: the bucket holds at most its capacity, not 360,000 tokens
    assert bucket.reserve(10) == 0.0
    assert bucket.reserve(10) == pytest.approx(0.1)


def test_waits_count_from_the_debt_not_from_the_last_call() -> None:
    clock = Clock()
    bucket = TokenBucket(10.0, capacity=1.0, clock=clock)
    assert [bucket.reserve(1) for _ in range(4)] == pytest.approx([0.0, 0.1, 0.2, 0.3])  # no one waited
    clock.t += 0.3
    assert bucket.reserve(1) == pytest.approx(0.1)


def test_a_rate_of_zero_is_unlimited_and_chunks_follow_the_rate() -> None:
    assert isinstance(pacer_for(0), Unlimited)
    assert Unlimited().reserve(10**9) == 0.0
    paced = pacer_for(50.0, clock=Clock())
    assert isinstance(paced, TokenBucket) and (paced.rate, paced.capacity) == (50.0, 25.0)  # half a second's worth
    slow = pacer_for(1.0)
    assert isinstance(slow, TokenBucket) and slow.capacity == 1.0  # never less than one event
    assert [chunk_size(r, largest=200) for r in (0, 0.5, 10, 300, 2000, 10**6)] == [200, 1, 1, 30, 200, 200]
    with pytest.raises(ValueError, match="0 or more"):
        pacer_for(-1)
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0, capacity=1)
