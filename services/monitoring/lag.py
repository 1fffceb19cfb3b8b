"""Stream lag of the worker group, read from Kafka itself, and waits on committed offsets.

Because the worker commits an offset only after the event's effect is stored (or dead-lettered),
"committed offset > X on partition P" means "everything up to X on P is searchable": read-your-writes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError, KafkaError

from services.config import KafkaSettings
from services.errors import TransientError
from services.lifecycle import AsyncResource
from services.monitoring import metrics


@dataclass(frozen=True)
class PartitionLag:
    partition: int
    end_offset: int
    committed: int | None  # None: the group never committed on this partition
    start_offset: int = 0  # log start: retention may have deleted what came before

    @property
    def position(self) -> int:
        """Where the group resumes: the committed offset, or the log start (auto_offset_reset=earliest) when
        there is none or retention deleted it."""
        return max(self.start_offset, self.committed if self.committed is not None else 0)

    @property
    def lag(self) -> int:
        return max(0, self.end_offset - self.position)


@dataclass
class LagSnapshot:
    topic: str
    group: str
    partitions: list[PartitionLag]
    members: int
    state: str
    taken_at: float = field(default_factory=time.time)

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def consumed(self) -> int:
        """Events the group is past, over all partitions (its growth is the consume rate)."""
        return sum(p.position for p in self.partitions)

    @property
    def produced(self) -> int:
        return sum(p.end_offset for p in self.partitions)

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic, "group": self.group, "members": self.members, "state": self.state,
            "taken_at": self.taken_at, "total_lag": self.total_lag,
            "partitions": [dict(asdict(p), lag=p.lag) for p in self.partitions],
        }


class LagReader(AsyncResource):
    """Reads end offsets and the group's committed offsets (no group membership of its own)."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                          request_timeout_ms=5000)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
        self._tps: list[TopicPartition] = []


    async def start(self) -> None:
        try:
            await self._admin.start()
            await self._consumer.start()
        except KafkaError as exc:
            raise TransientError(f"cannot reach Kafka at {self.settings.bootstrap_servers}: {exc}") from exc

    async def close(self) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def _partitions(self) -> list[TopicPartition]:
        if not self._tps:
            parts = self._consumer.partitions_for_topic(self.settings.topic)
            if parts is None:
                await self._consumer._client.force_metadata_update()
                parts = self._consumer.partitions_for_topic(self.settings.topic) or set()
            self._tps = [TopicPartition(self.settings.topic, p) for p in sorted(parts)]
        return self._tps

    async def committed(self) -> dict[int, int]:
        for attempt in range(20):
            try:
                offsets = await self._admin.list_consumer_group_offsets(self.settings.group_id)
                break
            except GroupCoordinatorNotAvailableError:
                # The first look-up of a group makes the broker create __consumer_offsets: a moment.
                if attempt == 19:
                    raise
                await asyncio.sleep(0.25)
        return {tp.partition: om.offset for tp, om in offsets.items()
                if tp.topic == self.settings.topic and om.offset >= 0}

    async def snapshot(self, *, export_metrics: bool = True) -> LagSnapshot:
        tps = await self._partitions()
        try:
            starts = await self._consumer.beginning_offsets(tps)
            ends = await self._consumer.end_offsets(tps)
            committed = await self.committed()
            groups = await self._admin.describe_consumer_groups([self.settings.group_id])
        except KafkaError as exc:
            metrics.LAG_READ_ERRORS.inc()
            raise TransientError(f"reading lag failed: {exc}") from exc
        members, state = _group_info(groups)
        parts = [PartitionLag(tp.partition, ends[tp], committed.get(tp.partition), starts[tp]) for tp in tps]
        snap = LagSnapshot(self.settings.topic, self.settings.group_id, parts, members, state)
        if export_metrics:  # the worker group's gauges; a migration's group is read without them
            export(snap)
        return snap

    async def wait_committed(self, targets: Mapping[int, int], *, timeout_s: float) -> tuple[bool, float]:
        """Wait until committed[p] > offset for every (p, offset); returns (satisfied, seconds waited)."""
        t0 = time.monotonic()
        delay = 0.005
        while True:
            committed = await self.committed()
            if all(committed.get(p, -1) > off for p, off in targets.items()):
                return True, time.monotonic() - t0
            if time.monotonic() - t0 >= timeout_s:
                return False, time.monotonic() - t0
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)


async def copy_committed(settings: KafkaSettings, source_group: str, target_group: str) -> dict[int, int]:
    """Commit ``source_group``'s offsets on the topic as ``target_group``'s (which must have no members: Kafka
    refuses commits from outside a group's generation otherwise); returns them."""
    async with LagReader(settings.model_copy(update={"group_id": source_group})) as reader:
        offsets = await reader.committed()
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=target_group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = {TopicPartition(settings.topic, p): off for p, off in offsets.items()}
        consumer.assign(list(tps))
        await consumer.commit(tps)
    except KafkaError as exc:
        raise TransientError(f"committing {target_group}'s offsets failed: {exc}") from exc
    finally:
        await consumer.stop()
    return offsets


async def open_reader(settings: KafkaSettings) -> LagReader:
    """A started LagReader; when Kafka cannot be reached, its clients are closed and TransientError raised."""
    reader = LagReader(settings)
    try:
        await reader.start()
    except TransientError:
        await reader.close()
        raise
    return reader


def _group_info(responses: list[Any]) -> tuple[int, str]:
    """(members, state) from DescribeGroups responses; state 'Dead'/'Empty' means no worker is consuming."""
    for resp in responses:
        for group in getattr(resp, "groups", []):
            # response tuples: (error_code, group, state, protocol_type, protocol, members, ...)
            return len(group[5]), str(group[2])
    return 0, "unknown"


def export(snap: LagSnapshot) -> None:
    for p in snap.partitions:
        labels = (snap.topic, str(p.partition))
        metrics.LAG.labels(*labels).set(p.lag)
        metrics.END_OFFSET.labels(*labels).set(p.end_offset)
        metrics.COMMITTED_OFFSET.labels(*labels).set(p.position)
    metrics.GROUP_MEMBERS.labels(snap.group).set(snap.members)


class ConsumeRate:
    """The group's recent consume rate (committed events/s) over a sliding window of snapshots, and the
    time to drain the lag at that rate. A window (not the last two snapshots) keeps the estimate steady
    while commits arrive in bursts.

    >>> r = ConsumeRate(window_s=30)
    >>> r.add(LagSnapshot("t", "g", [PartitionLag(0, 100, 10)], 1, "Stable", taken_at=0.0))
    >>> r.add(LagSnapshot("t", "g", [PartitionLag(0, 120, 50)], 1, "Stable", taken_at=2.0))
    >>> r.rate(), r.drain_seconds(70)
    (20.0, 3.5)
    """

    def __init__(self, window_s: float = 30.0, max_points: int = 256) -> None:
        self.window_s = window_s
        self._points: deque[tuple[float, int]] = deque(maxlen=max_points)

    def add(self, snap: LagSnapshot) -> None:
        self._points.append((snap.taken_at, snap.consumed))
        while len(self._points) > 2 and self._points[-1][0] - self._points[1][0] >= self.window_s:
            self._points.popleft()

    def rate(self) -> float | None:
        """Events/s over the window; None until two snapshots exist."""
        if len(self._points) < 2:
            return None
        (t0, c0), (t1, c1) = self._points[0], self._points[-1]
        return max(0.0, c1 - c0) / max(t1 - t0, 1e-6)

    def drain_seconds(self, lag: int) -> float | None:
        """Seconds to drain ``lag`` at the current rate: 0 when there is none, inf when not consuming."""
        if lag <= 0:
            return 0.0
        rate = self.rate()
        if rate is None:
            return None
        return math.inf if rate <= 0 else lag / rate

    def export(self, snap: LagSnapshot) -> None:
        """Add ``snap`` and set the rate and drain gauges."""
        self.add(snap)
        rate, drain = self.rate(), self.drain_seconds(snap.total_lag)
        if rate is not None:
            metrics.CONSUME_RATE.labels(snap.topic).set(rate)
        if drain is not None:
            metrics.DRAIN_SECONDS.labels(snap.topic).set(drain)
