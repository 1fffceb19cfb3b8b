"""What the pipeline consumes and what it needs from outside, independent of any Kafka client or store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from schemas.asset_event import AssetEvent
from schemas.dead_letter import DeadLetter
from services.store import AssetObject, StoredState, StoreError


@dataclass(frozen=True)
class Record:
    """One Kafka record as consumed."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


@dataclass(frozen=True, order=True)
class AssetKey:
    """Which asset an event is about: its asset_id within its tenant (None: a single-tenant deployment).
    Everything that must be exact per asset (collapse, state lookup, pending writes, writes) keys on this, so
    one asset_id in two tenants is two assets."""

    tenant: str | None
    asset_id: str


@dataclass(frozen=True)
class Parsed:
    """A record whose value is a valid event."""

    record: Record
    event: AssetEvent

    @property
    def key(self) -> AssetKey:
        return AssetKey(self.event.tenant, self.event.asset_id)


class DeadLetterSink(Protocol):
    """Produces a dead letter and returns only once the broker has confirmed it."""

    async def send(self, key: bytes | None, letter: DeadLetter) -> None: ...


class IngestStore(Protocol):
    """The part of services.store.AssetStore the pipeline uses (tests pass an in-memory one)."""

    async def states(self, asset_ids: Sequence[str], *, with_vectors: bool = False, tenant: str | None = None
                     ) -> dict[str, StoredState]: ...

    async def write(self, upserts: Sequence[AssetObject], deletes: Sequence[str], *, tenant: str | None = None
                    ) -> Mapping[str, StoreError]:
        """Apply the upserts and deletes in ``tenant``; return the assets Weaviate refused (permanent, per object).
        Raises a retriable error when nothing could be applied (Weaviate down or slow)."""
        ...
