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
from dataclasses import dataclass, field
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


@dataclass
class Prepared:
    """A batch with every decision made and every vector computed, not yet written."""

    records: Sequence[Record]
    t0: float
    report: BatchReport = field(default_factory=BatchReport)
    letters: list[tuple[Record, Rejected, int]] = field(default_factory=list)
    letters_sent: set[int] = field(default_factory=set)
    plans: list[_Plan] = field(default_factory=list)
    assets: set[str] = field(default_factory=set)
    written: bool = False
    refused: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Committed:
    report: BatchReport
    refused: set[str]  # assets whose write Weaviate refused (dead-lettered); a batch prepared meanwhile
    # that touches them must be prepared again, its reads assumed these writes


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
        # asset_id -> (batch, the state it will write; None = deleted) for batches not yet committed
        self._expected: dict[str, tuple[Prepared, StoredState | None]] = {}

    async def process(self, records: Sequence[Record]) -> BatchReport:
        """Prepare and commit one batch (the simple, sequential way; the agent overlaps the two)."""
        return (await self.commit(await self.prepare(records))).report

    async def prepare(self, records: Sequence[Record]) -> Prepared:
        """Everything up to the write: parse, resolve per asset, fetch, decode, embed.

        Reads see the writes of a batch still being committed (its expected states overlay the store's),
        so preparing batch N+1 while batch N is written gives the same decisions as doing them in turn.
        """
        t0 = time.perf_counter()
        observe_queue_wait(r.timestamp_ms for r in records)
        prep = Prepared(records=records, t0=t0)
        parsed: list[Parsed] = []
        for record in records:
            try:
                parsed.append(parse(record))
            except Rejected as rej:
                prep.letters.append((record, rej, 1))
        groups = candidates_by_asset(parsed)
        prep.assets = set(groups)
        stored = await _timed("lookup", self._states(list(groups)))
        prep.plans = await _timed("fetch", self._plan_all(groups, stored, prep.report, prep.letters))
        await _timed("embed", self._embed(prep.plans, prep.report, prep.letters))
        self._expect(prep)
        return prep

    async def commit(self, prep: Prepared) -> Committed:
        """Write, then dead-letter; returns the assets whose write was refused (their letters are sent).

        Safe to call again after a retriable error: writes are idempotent and letters already confirmed
        are not sent twice.
        """
        if not prep.written:
            prep.refused = await _timed("upsert", self._write(prep.plans, prep.report, prep.letters))
            prep.written = True
        await _timed("dead_letter", self._send_letters(prep))
        self.discard(prep)
        metrics.BATCH_SIZE.observe(len(prep.records))
        metrics.STAGE_SECONDS.labels("total").observe(time.perf_counter() - prep.t0)
        return Committed(prep.report, set(prep.refused))

    def discard(self, prep: Prepared) -> None:
        """Forget the states ``prep`` expected to write (after its commit, or to prepare it again)."""
        for asset_id in prep.assets:
            if self._expected.get(asset_id, (None, None))[0] is prep:
                del self._expected[asset_id]

    def _expect(self, prep: Prepared) -> None:
        for plan in prep.plans:
            ev = plan.parsed.event
            state = None  # a delete: nothing will be stored
            if plan.content is not None:
                if plan.vector is None:
                    continue  # poison: dead-lettered, nothing written, the stored state stays
                state = StoredState(asset_id=ev.asset_id, event_time=ev.event_time,
                                    content_hash=plan.content.content_hash, model_id=self.embedder.model_id,
                                    vectors=self._vectors(plan))
            self._expected[ev.asset_id] = (prep, state)

    async def _states(self, asset_ids: list[str]) -> dict[str, StoredState]:
        # Snapshot the overlay before awaiting: a commit finishing meanwhile removes its entries, and the
        # store read below did not include them.
        overlay = {a: self._expected[a][1] for a in asset_ids if a in self._expected}
        missing = [a for a in asset_ids if a not in overlay]
        states = await self.store.states(missing, with_vectors=True) if missing else {}
        states.update({a: st for a, st in overlay.items() if st is not None})
        return states

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
    ) -> set[str]:
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
            return set()
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
        return set(failed)

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

    async def _send_letters(self, prep: Prepared) -> None:
        todo = [i for i in range(len(prep.letters)) if i not in prep.letters_sent]
        built = {}
        for i in todo:
            rec, rej, attempts = prep.letters[i]
            built[i] = DeadLetter.build(reason=rej.reason, error=rej.error, value=rec.value or b"",
                                        attempts=attempts, topic=rec.topic, partition=rec.partition,
                                        offset=rec.offset)

        async def send(i: int) -> None:
            await self.dead_letters.send(prep.letters[i][0].key, built[i])
            prep.letters_sent.add(i)  # a retry of the batch sends only what is not confirmed yet
            metrics.DEAD_LETTERS.labels(built[i].reason.value).inc()
            prep.report.dead_letters.append(built[i])

        results = await asyncio.gather(*(send(i) for i in todo), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r


async def _timed(stage: str, aw: Awaitable[T]) -> T:
    t0 = time.perf_counter()
    try:
        return await aw
    finally:
        metrics.STAGE_SECONDS.labels(stage).observe(time.perf_counter() - t0)
