"""Publishing a stream of events in chunks: paced, each chunk acknowledged before the next, memory bounded.

The caller hears of every acknowledged chunk (``on_acked``), which is where a checkpoint is advanced and a
progress bar moves; at most one chunk of events is held at a time, whatever the size of the source.

Why pacing and not a second topic for backfills: one topic keeps per-asset order (a live update and a backfill
event of the same asset land on the same partition, in the order they were sent) and needs no change in the
worker; live freshness depends on the headroom the worker has, which ``--rate`` keeps. A second, lower-priority
topic would need the consumer to prefer one topic over another, which Faust does not offer, and the events of
one asset on two topics would have no order between them (only their event_time would decide).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol

from schemas.asset_event import AssetEvent
from services.publish.producer import Published
from services.publish.ratelimit import Pacer, pace


@dataclass
class Tally:
    """What one run sent and Kafka acknowledged."""

    events: int = 0
    kinds: Counter[str] = field(default_factory=Counter)  # "upsert image", "delete", ...
    partitions: Counter[int] = field(default_factory=Counter)
    targets: dict[int, int] = field(default_factory=dict)  # highest offset per partition

    def add(self, events: Sequence[AssetEvent], published: Sequence[Published]) -> None:
        self.events += len(published)
        self.kinds.update(kind_of(e) for e in events)
        for p in published:
            self.partitions[p.partition] += 1
            self.targets[p.partition] = max(self.targets.get(p.partition, -1), p.offset)


def kind_of(event: AssetEvent) -> str:
    return f"{event.op.value} {event.modality.value if event.modality else ''}".strip()


class Sender(Protocol):
    """What sends a chunk and returns once Kafka acknowledged all of it (services.publish.EventPublisher)."""

    async def publish_many(self, events: Iterable[AssetEvent]) -> list[Published]: ...


OnAcked = Callable[[Sequence[AssetEvent], Sequence[Published]], None]


async def send_in_chunks(pub: Sender, events: Iterable[AssetEvent], *, pacer: Pacer, chunk: int,
                         on_acked: OnAcked) -> Tally:
    """Send ``events`` ``chunk`` at a time, each chunk waiting for ``pacer`` and then for all its acks."""
    tally = Tally()
    it = iter(events)
    while batch := list(islice(it, chunk)):
        await pace(pacer, len(batch))
        published = await pub.publish_many(batch)
        tally.add(batch, published)
        on_acked(batch, published)
    return tally
