"""Offsets the consumer skipped: a jump between two records of a partition that the agent took in a row.

Our topic has neither compaction nor transaction markers (publishers are idempotent, not transactional),
so its offsets are consecutive and a jump means records that never reached the agent: Faust still commits
past them (it takes a jump for a compacted gap). That is how faust-streaming 0.15.3 lost events when the
worker paused partitions with ``Consumer.pause_partitions``: records already fetched for a partition paused
mid-delivery are dropped (``Consumer.getmany``), and the next ones arrive after the jump. The worker no
longer pauses that way (streams/agents.py); this watch makes any such loss loud: a warning naming the
offsets and ``xmodal_consumer_skipped_offsets_total``. Records seen again (a rebalance or a seek back to
the committed offset) are expected and not counted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from services.monitoring import metrics

log = logging.getLogger("xmodal.worker")


class OffsetWatch:
    """The last offset taken per (topic, partition), within one consumer-group generation."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, int], int] = {}
        self._generation: object = None

    def taken(self, records: Iterable[tuple[str, int, int]], generation: object = None) -> int:
        """Note the (topic, partition, offset) of records the agent took, in the order it took them; return how
        many offsets were skipped. A new ``generation`` (a rebalance) starts afresh: a partition may come back
        at an offset another worker committed meanwhile."""
        if generation != self._generation:
            self._generation, self._last = generation, {}
        skipped = 0
        for topic, partition, offset in records:
            tp = (topic, partition)
            last = self._last.get(tp)
            if last is not None and offset > last + 1:
                n = offset - last - 1
                skipped += n
                metrics.SKIPPED_OFFSETS.labels(topic, str(partition)).inc(n)
                log.warning("offsets %d..%d of %s/%d never reached the worker (the consumer skipped them; they "
                            "will be committed past): events lost unless the topic is compacted or transactional",
                            last + 1, offset - 1, topic, partition)
            self._last[tp] = offset
        return skipped
