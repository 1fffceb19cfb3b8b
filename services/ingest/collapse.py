"""Collapse a micro-batch to one decision per asset, keeping per-key order and event_time semantics.

Kafka keeps the events of one asset in order on one partition, so within a batch the candidates of an asset
are ordered by (event_time, offset): the newest event wins, ties go to the later offset. The older candidates
are kept as fallbacks: if the winner turns out to be unusable (its image is a 404, say) it is dead-lettered
and the next newest candidate is applied instead, exactly as if the events had been applied one by one.

>>> from datetime import datetime, UTC
>>> from schemas.asset_event import AssetEvent
>>> from services.ingest.records import Parsed, Record
>>> def ev(op, off, t):
...     e = AssetEvent(schema_version=1, asset_id="a", op=op, modality="text", text="x" if op == "upsert" else None,
...                    event_time=datetime(2026, 1, 1, 0, 0, t, tzinfo=UTC))
...     return Parsed(Record(b"a", b"", "assets", 0, off), e)
>>> [p.event.op.value for p in candidates_by_asset([ev("upsert", 1, 0), ev("delete", 2, 0)])["a"]]
['delete', 'upsert']
"""

from __future__ import annotations

from collections.abc import Iterable

from services.ingest.records import Parsed


def candidates_by_asset(parsed: Iterable[Parsed]) -> dict[str, list[Parsed]]:
    """asset_id -> its events in this batch, the one to apply first (newest) first."""
    groups: dict[str, list[Parsed]] = {}
    for p in parsed:
        groups.setdefault(p.event.asset_id, []).append(p)
    for group in groups.values():
        group.sort(key=lambda p: p.order, reverse=True)
    return groups
