"""Stage timings of the ingest pipeline, observed into ``xmodal_stage_seconds{stage}``.

:func:`timed` is the stopwatch around one awaited stage. ``queue_wait`` is the one a stopwatch cannot take: the
time a batch's oldest record waited in Kafka before the batch started, the part of freshness spent queued
rather than working. It grows while a backlog drains, so it tells "slow" apart from "behind". Both are wired
in services/ingest/prepare.py and services/ingest/protocol.py.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from services.monitoring import metrics

T = TypeVar("T")


def observe_queue_wait(timestamps_ms: Iterable[int | None], now: Callable[[], float] = time.time) -> float | None:
    """Observe ``now`` minus the oldest Kafka timestamp (ms) into the queue_wait stage; returns it, or None
    when no record had a timestamp. Clock skew between producer and worker never yields a negative wait.

    >>> observe_queue_wait([1_000_500, None, 1_000_000], now=lambda: 1_002.0)
    2.0
    """
    stamps = [ts for ts in timestamps_ms if ts is not None]
    if not stamps:
        return None
    wait = max(0.0, now() - min(stamps) / 1000)
    metrics.STAGE_SECONDS.labels("queue_wait").observe(wait)
    return wait


async def timed(stage: str, aw: Awaitable[T]) -> T:
    """Await ``aw`` and observe how long it took into ``stage`` (also when it raised)."""
    t0 = time.perf_counter()
    try:
        return await aw
    finally:
        metrics.STAGE_SECONDS.labels(stage).observe(time.perf_counter() - t0)
