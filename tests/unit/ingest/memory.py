"""In-memory stand-ins for the pipeline's two outside parties, for unit tests of the batch protocol.

- :class:`MemoryStore` keeps objects in a dict with the real store's write semantics (an upsert replaces the
  object, a delete removes it), refuses objects whose metadata has ``refuse`` (as Weaviate refuses a metadata
  value of the wrong type), can fail whole writes transiently, and can hold each write until the test hands
  it a ticket, so that the next batch is prepared while the write is pending.
- :class:`MemoryLetters` records dead letters and can fail chosen ones transiently, once.

The model, the content decoding and the fetcher in these tests are the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from schemas.dead_letter import DeadLetter
from services.errors import TransientError
from services.ingest.prepare import Prepared, Preparer, ReadStates
from services.ingest.records import Record
from services.store import AssetObject, MetadataTypeConflict, StoredState, StoreError, StoreUnavailable


class MemoryStore:
    """Objects per tenant (None: single-tenant), as Weaviate keeps a shard per tenant: ``objects`` is tenant
    None's, ``tenant(t)`` another's."""

    def __init__(self, *, hold_writes: bool = False) -> None:
        self.by_tenant: dict[str | None, dict[str, AssetObject]] = {None: {}}
        self.objects = self.by_tenant[None]
        self.tenant_writes: list[str | None] = []  # the tenant of each applied write, in order
        self.reads: list[list[str]] = []
        self.writes = 0
        self.log: list[tuple[list[tuple[str, int]], list[str]]] = []  # each applied write: upserts, deletes
        self.fail_writes = 0  # this many of the next writes raise StoreUnavailable, storing nothing
        self.tickets: asyncio.Semaphore | None = asyncio.Semaphore(0) if hold_writes else None

    def tenant(self, tenant: str | None) -> dict[str, AssetObject]:
        return self.by_tenant.setdefault(tenant, {})

    async def states(self, asset_ids: Sequence[str], *, with_vectors: bool = False, tenant: str | None = None
                     ) -> dict[str, StoredState]:
        self.reads.append(list(asset_ids))
        objects = self.tenant(tenant)
        return {
            a: StoredState(asset_id=a, event_time=o.event_time, content_hash=o.content_hash, model_id=o.model_id,
                           vectors=dict(o.vectors) if with_vectors else {}, caption_hash=o.caption_hash)
            for a in asset_ids if (o := objects.get(a)) is not None
        }

    async def write(self, upserts: Sequence[AssetObject], deletes: Sequence[str], *, tenant: str | None = None
                    ) -> dict[str, StoreError]:
        if self.tickets is not None:
            await self.tickets.acquire()
        self.writes += 1
        if self.fail_writes:
            self.fail_writes -= 1
            raise StoreUnavailable("Weaviate is down (a test said so)")
        self.log.append((sorted((o.asset_id, o.source_offset) for o in upserts), sorted(deletes)))
        self.tenant_writes.append(tenant)
        objects = self.tenant(tenant)
        failed: dict[str, StoreError] = {}
        for obj in upserts:
            if "refuse" in obj.metadata:
                failed[obj.asset_id] = MetadataTypeConflict(obj.asset_id, "metadata `refuse` has another type")
            else:
                objects[obj.asset_id] = obj
        for asset_id in deletes:
            objects.pop(asset_id, None)
        return failed

    def release(self, n: int = 1) -> None:
        """Let ``n`` held writes go ahead."""
        assert self.tickets is not None
        for _ in range(n):
            self.tickets.release()

    def summary(self) -> dict[str, tuple[Any, ...]]:
        """What a search could see of each asset (no write times)."""
        return {a: (o.event_time, o.content_hash, o.caption_hash, tuple(sorted(o.metadata.items())),
                    o.source_offset, tuple(sorted(o.vectors)))
                for a, o in sorted(self.objects.items())}


class MemoryLetters:
    def __init__(self) -> None:
        self.sent: list[DeadLetter] = []
        self.attempts = 0
        self.fail_once: set[int] = set()  # source offsets whose first send fails transiently

    async def send(self, key: bytes | None, letter: DeadLetter) -> None:
        self.attempts += 1
        await asyncio.sleep(0)
        if letter.source.offset in self.fail_once:
            self.fail_once.discard(letter.source.offset)
            raise TransientError("the broker did not confirm the dead letter (a test said so)")
        self.sent.append(letter)

    def reasons(self) -> list[tuple[int, str]]:
        return sorted((d.source.offset, d.reason.value) for d in self.sent)


class WatchedPreparer(Preparer):
    """The real Preparer, keeping every batch it prepared so tests can look at the decisions and wait for them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prepared: list[Prepared] = []
        self._changed = asyncio.Event()

    async def prepare(self, records: Sequence[Record], read_states: ReadStates) -> Prepared:
        prep = await super().prepare(records, read_states)
        self.prepared.append(prep)
        self._changed.set()
        return prep

    async def wait_for(self, n: int) -> None:
        """Until ``n`` batches have been prepared in all."""
        while len(self.prepared) < n:
            self._changed.clear()
            await self._changed.wait()
