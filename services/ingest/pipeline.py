"""One micro-batch: parse, collapse per asset, fetch, embed, write, dead-letter. Acking is the caller's job.

Returning normally means every record of the batch has its effect stored in Weaviate or its dead letter
confirmed by the broker, so the caller may ack them all. A retriable error (Weaviate down, a Kafka produce
timeout) propagates: the caller backs off and calls again with the same records; writes are idempotent
(uuid5 ids, replace semantics), so a retry never duplicates anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from schemas.asset_event import Op
from schemas.dead_letter import DeadLetter, Reason
from services.config import BatchSettings, FetchSettings
from services.embedding.runner import AsyncEmbedder
from services.fetch.fetcher import Fetcher
from services.ingest.collapse import candidates_by_asset, resolve
from services.ingest.content import Content, load_bytes, prepare
from services.ingest.embed import embed_isolating_poison
from services.ingest.parse import Rejected, parse
from services.ingest.records import BatchReport, DeadLetterSink, Parsed, Record
from services.monitoring import metrics
from services.monitoring.timing import observe_queue_wait
from services.store import AssetObject, AssetStore, StoredState

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class _Plan:
    """The decision for one asset in this batch."""

    parsed: Parsed
    content: Content | None = None  # None for a delete
    vector: list[float] | None = None  # reused (metadata-only) or computed
    reused: bool = False  # the stored vector was kept: same content, same model
    state: StoredState | None = None  # what Weaviate held before this batch


class IngestPipeline:
    def __init__(
        self,
        *,
        store: AssetStore,
        embedder: AsyncEmbedder,
        fetcher: Fetcher,
        dead_letters: DeadLetterSink,
        batch: BatchSettings,
        fetch: FetchSettings,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.fetcher = fetcher
        self.dead_letters = dead_letters
        self.batch = batch
        self.max_pixels = fetch.max_pixels
        self.now = now
        self._fetch_slots = asyncio.Semaphore(batch.fetch_concurrency)

    async def process(self, records: Sequence[Record]) -> BatchReport:
        t0 = time.perf_counter()
        observe_queue_wait(r.timestamp_ms for r in records)
        report = BatchReport()
        letters: list[tuple[Record, Rejected, int]] = []
        parsed: list[Parsed] = []
        for record in records:
            try:
                parsed.append(parse(record))
            except Rejected as rej:
                letters.append((record, rej, 1))
        groups = candidates_by_asset(parsed)
        stored = await _timed("lookup", self.store.states(list(groups), with_vectors=True))
        plans = await _timed("fetch", self._plan_all(groups, stored, report, letters))
        await _timed("embed", self._embed(plans, report, letters))
        await _timed("upsert", self._write(plans, report, letters))
        await _timed("dead_letter", self._send_letters(letters, report))
        metrics.BATCH_SIZE.observe(len(records))
        metrics.STAGE_SECONDS.labels("total").observe(time.perf_counter() - t0)
        return report

    async def _plan_all(
        self,
        groups: dict[str, list[Parsed]],
        stored: dict[str, StoredState],
        report: BatchReport,
        letters: list[tuple[Record, Rejected, int]],
    ) -> list[_Plan]:
        results = await asyncio.gather(
            *(self._plan_asset(cands, stored.get(aid), report, letters) for aid, cands in groups.items())
        )
        return [p for p in results if p is not None]

    async def _plan_asset(
        self,
        candidates: list[Parsed],
        state: StoredState | None,
        report: BatchReport,
        letters: list[tuple[Record, Rejected, int]],
    ) -> _Plan | None:
        """Resolve the asset's events as if applied one by one.

        Every upsert that would be applied is checked (fetched and decoded), not only the last one: a bad
        event is dead-lettered whether or not a later event in the same batch supersedes it, so what lands
        in the DLQ does not depend on how events were batched. An unusable upsert changes nothing, so the
        events are resolved again without it until every applied upsert is usable.
        """
        stored_time = state.event_time if state else None
        prepared: dict[int, _Plan] = {}
        unusable: set[int] = set()
        while True:
            res = resolve(candidates, stored_time=stored_time, skip=unusable)
            todo = [c for c in res.applied if c.event.op is Op.upsert and c.record.offset not in prepared]
            if not todo:
                break
            outcomes = await asyncio.gather(*(self._prepare_upsert(c, state) for c in todo),
                                            return_exceptions=True)
            for cand, out in zip(todo, outcomes, strict=True):
                if isinstance(out, Rejected):
                    letters.append((cand.record, out, 1))
                    unusable.add(cand.record.offset)
                elif isinstance(out, BaseException):
                    raise out
                else:
                    prepared[cand.record.offset] = out
        report.add("stale", len(res.stale))
        report.add("superseded", len(res.superseded))
        if res.final is None:
            return None
        return prepared[res.final.record.offset] if res.final.event.op is Op.upsert else _Plan(res.final)

    async def _prepare_upsert(self, cand: Parsed, state: StoredState | None) -> _Plan:
        async with self._fetch_slots:
            raw = await load_bytes(cand.event, self.fetcher)
        content = await asyncio.to_thread(prepare, cand.event, raw, max_pixels=self.max_pixels)
        plan = _Plan(cand, content, state=state)
        space = self.embedder.space
        if (
            state is not None
            and state.content_hash == content.content_hash
            and state.model_id == self.embedder.model_id
            and space in state.vectors
        ):
            plan.vector = state.vectors[space]  # metadata-only update: the model does not run
            plan.reused = True
        return plan

    async def _embed(
        self, plans: list[_Plan], report: BatchReport, letters: list[tuple[Record, Rejected, int]]
    ) -> None:
        todo = [p for p in plans if p.content is not None and p.vector is None]
        texts = [p for p in todo if p.content is not None and p.content.text is not None]
        images = [p for p in todo if p.content is not None and p.content.image is not None]
        for kind, group, run in (
            ("text", texts, self.embedder.embed_texts),
            ("image", images, self.embedder.embed_images),
        ):
            if not group:
                continue
            inputs = [getattr(p.content, kind) for p in group]
            vectors, poisoned = await embed_isolating_poison(run, inputs)
            for plan, vec in zip(group, vectors, strict=True):
                if vec is not None:
                    plan.vector = vec
            for idx, error in poisoned.items():
                letters.append((group[idx].parsed.record, Rejected(Reason.poison, error), 2))
            metrics.MODEL_RUNS.labels(kind).inc(len(group) - len(poisoned))
            report.embedded[kind] = report.embedded.get(kind, 0) + len(group) - len(poisoned)

    async def _write(
        self, plans: list[_Plan], report: BatchReport, letters: list[tuple[Record, Rejected, int]]
    ) -> None:
        indexed_at = self.now()
        upserts, deletes, by_id = [], [], {}
        for plan in plans:
            ev, rec = plan.parsed.event, plan.parsed.record
            by_id[ev.asset_id] = plan
            if plan.content is None:
                deletes.append(ev.asset_id)
            elif plan.vector is not None:
                upserts.append(AssetObject(
                    asset_id=ev.asset_id, modality=str(ev.modality), text=plan.content.text,
                    uri=ev.uri, metadata=dict(ev.metadata), content_hash=plan.content.content_hash,
                    model_id=self.embedder.model_id, event_time=ev.event_time,
                    source_partition=rec.partition, source_offset=rec.offset,
                    vectors=self._vectors(plan), thumbnail=plan.content.thumbnail,
                    indexed_at=indexed_at,
                ))
        if not upserts and not deletes:
            return
        failed = await self.store.write(upserts, deletes)
        for asset_id, error in failed.items():
            letters.append((by_id[asset_id].parsed.record, Rejected(Reason.invalid_event, str(error)), 1))
        for obj in upserts:
            if obj.asset_id in failed:
                continue
            plan = by_id[obj.asset_id]
            report.add("metadata_only" if plan.reused else "stored")
            ts = plan.parsed.record.timestamp_ms
            if ts is not None:
                metrics.FRESHNESS.observe(max(0.0, indexed_at.timestamp() - ts / 1000))
        report.add("deleted", sum(1 for a in deletes if a not in failed))

    def _vectors(self, plan: _Plan) -> dict[str, list[float]]:
        """This model's vector, plus other spaces' stored vectors while the content is unchanged (an upsert
        replaces the whole object, so dropping them would lose another model's work)."""
        assert plan.vector is not None
        assert plan.content is not None
        vectors = {self.embedder.space: plan.vector}
        state = plan.state
        if state is not None and state.content_hash == plan.content.content_hash:
            vectors = {**state.vectors, **vectors}
        return vectors

    async def _send_letters(self, letters: list[tuple[Record, Rejected, int]], report: BatchReport) -> None:
        built = [
            DeadLetter.build(reason=rej.reason, error=rej.error, value=rec.value or b"", attempts=attempts,
                             topic=rec.topic, partition=rec.partition, offset=rec.offset)
            for rec, rej, attempts in letters
        ]
        await asyncio.gather(*(self.dead_letters.send(rec.key, letter)
                               for (rec, _, _), letter in zip(letters, built, strict=True)))
        for letter in built:
            metrics.DEAD_LETTERS.labels(letter.reason.value).inc()
        report.dead_letters.extend(built)


async def _timed(stage: str, aw: Awaitable[T]) -> T:
    t0 = time.perf_counter()
    try:
        return await aw
    finally:
        metrics.STAGE_SECONDS.labels(stage).observe(time.perf_counter() - t0)
