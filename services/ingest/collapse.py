"""Collapse a micro-batch to one write per asset, with the result of applying its events one by one.

The rule for one event, applied in Kafka order (one asset's events share a partition, so offsets order them):
an event older (``event_time``) than the stored state is ignored (``stale``); an upsert replaces the state; a
delete clears it. There are no tombstones: after a delete nothing is stored, so a later upsert applies
whatever its event_time. Simulating that rule over the batch gives the same final state however the events
were cut into batches, which is what makes redelivery after a crash and any batch size safe.

>>> from datetime import datetime, UTC
>>> from schemas.asset_event import AssetEvent
>>> from services.ingest.records import Parsed, Record
>>> def ev(op, off, t):
...     e = AssetEvent(schema_version=1, asset_id="a", op=op, modality="text", text="x" if op == "upsert" else None,
...                    event_time=datetime(2026, 1, 1, 0, 0, t, tzinfo=UTC))
...     return Parsed(Record(b"a", b"", "assets", 0, off), e)
>>> out = resolve([ev("upsert", 1, 5), ev("delete", 2, 5), ev("upsert", 3, 1)], stored_time=None)
>>> out.final.record.offset, [p.record.offset for p in out.superseded], out.stale
(3, [1, 2], [])
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from schemas.asset_event import Op
from services.ingest.records import AssetKey, Parsed


def candidates_by_asset(parsed: Iterable[Parsed]) -> dict[AssetKey, list[Parsed]]:
    """(tenant, asset_id) -> its events in this batch, in Kafka order. The same asset_id in two tenants is two
    assets (their events share a partition, as the Kafka key is the asset_id, but never a resolution)."""
    groups: dict[AssetKey, list[Parsed]] = {}
    for p in parsed:
        groups.setdefault(p.key, []).append(p)
    for group in groups.values():
        group.sort(key=lambda p: p.record.offset)
    return groups


@dataclass
class Resolution:
    final: Parsed | None  # the upsert or delete to write; None: the stored state stays as it is
    superseded: list[Parsed] = field(default_factory=list)  # applied, then overwritten within the batch
    stale: list[Parsed] = field(default_factory=list)  # older than the state they met: ignored

    @property
    def applied(self) -> list[Parsed]:
        """Every event that changes the state when applied in order (the final one last)."""
        return [*self.superseded, self.final] if self.final is not None else []


def resolve(
    candidates: list[Parsed], *, stored_time: datetime | None, skip: Collection[int] = ()
) -> Resolution:
    """Apply ``candidates`` (Kafka order) one by one to a state last written at ``stored_time``.

    ``skip`` holds offsets of events that turned out unusable (dead-lettered): they change nothing.
    """
    state_time = stored_time
    applied: list[Parsed] = []
    stale: list[Parsed] = []
    for cand in candidates:
        if cand.record.offset in skip:
            continue
        if state_time is not None and cand.event.event_time < state_time:
            stale.append(cand)
            continue
        applied.append(cand)
        state_time = cand.event.event_time if cand.event.op is Op.upsert else None
    if not applied:
        return Resolution(None, [], stale)
    return Resolution(applied[-1], applied[:-1], stale)
