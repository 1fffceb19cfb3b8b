"""Stage timings the pipeline cannot take with a stopwatch around an await.

``queue_wait`` is the time a batch's oldest record waited in Kafka before the batch started: the part of
freshness spent queued rather than working. It grows while a backlog drains, so it tells "slow" apart from
"behind".

Wiring (services/ingest/pipeline.py, first line of ``IngestPipeline.process``)::

    observe_queue_wait(r.timestamp_ms for r in records)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from services.monitoring import metrics


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
