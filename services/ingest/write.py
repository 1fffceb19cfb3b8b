"""Committing a prepared batch: write its plans to the store, then produce its dead letters.

Both steps may be retried after a transient failure (services.ingest.protocol does): :class:`Progress`
remembers what is already confirmed, so a retry never writes a confirmed batch again and never sends a
confirmed dead letter twice. Writes are idempotent anyway (uuid5 ids, replace semantics).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas.dead_letter import DeadLetter, Reason
from services.ingest.plans import Delete, Letter, Outcome, Upsert
from services.ingest.prepare import Prepared
from services.ingest.records import AssetKey, DeadLetterSink, IngestStore
from services.monitoring import metrics
from services.monitoring.timing import timed
from services.store import AssetObject, StoreError, UnknownTenant, VideoSegments, format_model_ids

_TENANT_WRITES = 4  # tenants of one batch written at once (a multi-tenant batch: one Weaviate batch per tenant)


@dataclass
class Progress:
    """What of one batch's commit is confirmed."""

    written: bool = False
    refused: frozenset[AssetKey] = frozenset()  # assets whose write the store refused (now dead letters)
    sent: set[int] = field(default_factory=set)  # indexes into Prepared.letters confirmed by the broker


class Writer:
    def __init__(self, *, store: IngestStore, dead_letters: DeadLetterSink,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.dead_letters = dead_letters
        self.now = now

    async def commit(self, prep: Prepared, progress: Progress) -> None:
        """Write (once), then send every letter not yet confirmed. Raises retriable errors as they come."""
        if not progress.written:
            progress.refused = await timed("upsert", self._write(prep))
            progress.written = True
        await timed("dead_letter", self._send_letters(prep, progress))

    async def _write(self, prep: Prepared) -> frozenset[AssetKey]:
        indexed_at = self.now()
        upserts = {p.parsed.key: p for p in prep.plans if isinstance(p, Upsert)}
        deletes = [p.parsed.key for p in prep.plans if isinstance(p, Delete)]
        if not upserts and not deletes:
            return frozenset()
        failed = await self._write_per_tenant(upserts, deletes, indexed_at)
        records = {p.parsed.key: p.parsed.record for p in prep.plans}
        for key, error in failed.items():
            reason = Reason.unknown_tenant if isinstance(error, UnknownTenant) else Reason.invalid_event
            prep.letters.append(Letter(records[key], reason, str(error)))
        for key, plan in upserts.items():
            if key in failed:
                continue
            prep.report.add(Outcome.metadata_only if plan.reused else Outcome.stored)
            ts = plan.parsed.record.timestamp_ms
            if ts is not None:
                metrics.FRESHNESS.observe(max(0.0, indexed_at.timestamp() - ts / 1000))
        prep.report.add(Outcome.deleted, sum(1 for a in deletes if a not in failed))
        return frozenset(failed)

    async def _write_per_tenant(self, upserts: dict[AssetKey, Upsert], deletes: list[AssetKey],
                                indexed_at: datetime) -> dict[AssetKey, StoreError]:
        """One store write per tenant (a Weaviate batch names one tenant), up to ``_TENANT_WRITES`` at once. A
        retry after a transient failure writes every tenant again: writes are idempotent, so the ones done are
        harmless. When one tenant's write fails the others are cancelled and awaited before the error is
        raised, so none of this attempt is still in flight when the retry (or the next batch) writes."""
        by_tenant: dict[str | None, tuple[list[AssetObject], list[str]]] = {}
        for key, plan in upserts.items():
            by_tenant.setdefault(key.tenant, ([], []))[0].append(self._object(plan, indexed_at))
        for key in deletes:
            by_tenant.setdefault(key.tenant, ([], []))[1].append(key.asset_id)
        failed: dict[AssetKey, StoreError] = {}
        gate = asyncio.Semaphore(_TENANT_WRITES)

        async def write(tenant: str | None) -> None:
            objects, gone = by_tenant[tenant]
            async with gate:
                refused = await self.store.write(objects, gone, tenant=tenant)
            failed.update({AssetKey(tenant, asset_id): error for asset_id, error in refused.items()})

        if len(by_tenant) == 1:  # the single-tenant case: no task at all
            await write(next(iter(by_tenant)))
            return failed
        try:
            async with asyncio.TaskGroup() as group:
                for tenant in sorted(by_tenant, key=lambda t: t or ""):
                    group.create_task(write(tenant))
        except BaseExceptionGroup as eg:  # the first error, as a sequential write would have raised it
            raise eg.exceptions[0] from None
        return failed

    def _object(self, plan: Upsert, indexed_at: datetime) -> AssetObject:
        ev, rec = plan.parsed.event, plan.parsed.record
        return AssetObject(
            asset_id=ev.asset_id, modality=str(ev.modality), text=plan.content.text, uri=ev.uri,
            metadata=dict(ev.metadata), content_hash=plan.content.content_hash,
            model_id=format_model_ids(plan.model_ids),
            event_time=ev.event_time, source_partition=rec.partition, source_offset=rec.offset,
            vectors=plan.vectors, thumbnail=plan.content.thumbnail, indexed_at=indexed_at,
            caption=plan.content.caption, caption_hash=plan.content.caption_hash,
            segments=_segments_of(plan),
        )

    async def _send_letters(self, prep: Prepared, progress: Progress) -> None:
        async def send(i: int, letter: Letter) -> None:
            rec = letter.record
            built = DeadLetter.build(reason=letter.reason, error=letter.error, value=rec.value or b"",
                                     attempts=letter.attempts, topic=rec.topic, partition=rec.partition,
                                     offset=rec.offset)
            await self.dead_letters.send(rec.key, built)
            progress.sent.add(i)  # a retry of the batch sends only what is not confirmed yet
            metrics.DEAD_LETTERS.labels(built.reason.value).inc()
            prep.report.dead_letters.append(built)
            prep.report.add(Outcome.dead_letter)

        todo = [(i, letter) for i, letter in enumerate(prep.letters) if i not in progress.sent]
        results = await asyncio.gather(*(send(i, letter) for i, letter in todo), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r


def _segments_of(plan: Upsert) -> VideoSegments | None:
    video = plan.content.video
    if video is None:
        return None
    return VideoSegments(
        starts=tuple(s.start_s for s in video.segments), ends=tuple(s.end_s for s in video.segments),
        vectors=plan.segments, duration_s=video.duration_s, playback=plan.content.playback,
        playback_mime=plan.content.playback_mime,
    )
