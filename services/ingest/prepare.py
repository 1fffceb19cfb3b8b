"""Preparing a batch: everything before the write. Parse, resolve each asset's events, fetch, decode, embed.

The result, :class:`Prepared`, holds one plan per asset (services.ingest.plans) and the dead letters found so
far. Nothing here writes or acks; the order of prepare and commit is services.ingest.protocol's job, which
also decides what "the stored state" is while an earlier batch is still being written (``read_states``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.asset_event import Op
from schemas.dead_letter import Reason
from services.config import BatchSettings, FetchSettings
from services.embedding.runner import AsyncEmbedder
from services.fetch.fetcher import Fetcher
from services.ingest.collapse import candidates_by_asset, resolve
from services.ingest.content import load_bytes, prepare
from services.ingest.embed import EmbedFn, embed_isolating_poison
from services.ingest.parse import Rejected, parse
from services.ingest.plans import (
    BatchReport,
    Delete,
    Embeddable,
    Letter,
    Outcome,
    Plan,
    Poisoned,
    Upsert,
)
from services.ingest.records import Parsed, Record
from services.monitoring import metrics
from services.monitoring.timing import observe_queue_wait, timed
from services.store import StoredState

#: asset ids -> their stored states (absent: nothing stored). The protocol's overlay-aware read.
ReadStates = Callable[[list[str]], Awaitable[dict[str, StoredState]]]


@dataclass
class Prepared:
    """A batch with every decision made and every vector computed, not yet written."""

    records: Sequence[Record]
    started: float  # perf_counter at the start, for the batch's total time
    assets: frozenset[str] = frozenset()  # every asset whose state this batch read (it has events here)
    plans: list[Plan] = field(default_factory=list)
    letters: list[Letter] = field(default_factory=list)
    report: BatchReport = field(default_factory=BatchReport)

    def expected_states(self, model_id: str) -> dict[str, StoredState | None]:
        """asset_id -> the state this batch's write leaves (None: deleted). Poisoned assets keep theirs."""
        out: dict[str, StoredState | None] = {}
        for plan in self.plans:
            if isinstance(plan, Upsert):
                out[plan.parsed.event.asset_id] = plan.expected_state(model_id)
            elif isinstance(plan, Delete):
                out[plan.parsed.event.asset_id] = None
        return out


class Preparer:
    """Turns records into a :class:`Prepared` batch with the configured model."""

    def __init__(self, *, embedder: AsyncEmbedder, fetcher: Fetcher, batch: BatchSettings,
                 fetch: FetchSettings) -> None:
        self.embedder = embedder
        self.fetcher = fetcher
        self.max_pixels = fetch.max_pixels
        self._fetch_slots = asyncio.Semaphore(batch.fetch_concurrency)

    async def prepare(self, records: Sequence[Record], read_states: ReadStates) -> Prepared:
        prep = Prepared(records=records, started=time.perf_counter())
        observe_queue_wait(r.timestamp_ms for r in records)
        parsed: list[Parsed] = []
        for record in records:
            try:
                parsed.append(parse(record))
            except Rejected as rej:
                prep.letters.append(Letter(record, rej.reason, rej.error))
        groups = candidates_by_asset(parsed)
        prep.assets = frozenset(groups)
        stored = await timed("lookup", read_states(list(groups)))
        planned = await timed("fetch", asyncio.gather(
            *(self._plan_asset(prep, cands, stored.get(aid)) for aid, cands in groups.items())
        ))
        await timed("embed", self._embed(prep, [p for p in planned if p is not None]))
        return prep

    async def _plan_asset(
        self, prep: Prepared, candidates: list[Parsed], state: StoredState | None
    ) -> Embeddable | Upsert | Delete | None:
        """Resolve the asset's events as if applied one by one; None: the stored state stays.

        Every upsert that would be applied is checked (fetched and decoded), not only the last one: a bad
        event is dead-lettered whether or not a later event in the same batch supersedes it, so what lands
        in the DLQ does not depend on how events were batched. An unusable upsert changes nothing, so the
        events are resolved again without it until every applied upsert is usable.
        """
        stored_time = state.event_time if state else None
        loaded: dict[int, Embeddable | Upsert] = {}  # offset -> the loaded upsert
        unusable: set[int] = set()
        while True:
            res = resolve(candidates, stored_time=stored_time, skip=unusable)
            todo = [c for c in res.applied if c.event.op is Op.upsert and c.record.offset not in loaded]
            if not todo:
                break
            outcomes = await asyncio.gather(*(self._load(c, state) for c in todo), return_exceptions=True)
            for cand, out in zip(todo, outcomes, strict=True):
                if isinstance(out, Rejected):
                    prep.letters.append(Letter(cand.record, out.reason, out.error))
                    unusable.add(cand.record.offset)
                elif isinstance(out, BaseException):
                    raise out
                else:
                    loaded[cand.record.offset] = out
        prep.report.add(Outcome.stale, len(res.stale))
        prep.report.add(Outcome.superseded, len(res.superseded))
        if res.final is None:
            return None
        if res.final.event.op is Op.delete:
            return Delete(res.final)
        return loaded[res.final.record.offset]

    async def _load(self, cand: Parsed, state: StoredState | None) -> Embeddable | Upsert:
        """Fetch and decode an upsert's content; reuse the stored vector when only metadata changed."""
        async with self._fetch_slots:
            raw = await load_bytes(cand.event, self.fetcher)
        content = await asyncio.to_thread(prepare, cand.event, raw, max_pixels=self.max_pixels)
        item = Embeddable(cand, content, state)
        space = self.embedder.space
        if (
            state is not None
            and state.content_hash == content.content_hash
            and state.model_id == self.embedder.model_id
            and space in state.vectors
        ):
            return Upsert.of(item, space=space, vector=state.vectors[space], reused=True)
        return item

    async def _embed(self, prep: Prepared, planned: list[Embeddable | Upsert | Delete]) -> None:
        """Run the model over the embeddable upserts, texts and images in one call each; fill prep.plans."""
        prep.plans = [p for p in planned if not isinstance(p, Embeddable)]
        todo = [p for p in planned if isinstance(p, Embeddable)]
        texts = [(p, p.content.text) for p in todo if p.content.text is not None]
        images = [(p, p.content.image) for p in todo if p.content.image is not None]
        if texts:
            await self._embed_group(prep, "text", [p for p, _ in texts], [t for _, t in texts],
                                    self.embedder.embed_texts)
        if images:
            await self._embed_group(prep, "image", [p for p, _ in images], [im for _, im in images],
                                    self.embedder.embed_images)

    async def _embed_group(self, prep: Prepared, kind: str, group: list[Embeddable], inputs: Sequence[Any],
                           run: EmbedFn) -> None:
        vectors, poisoned = await embed_isolating_poison(run, inputs)
        for item, vec in zip(group, vectors, strict=True):
            if vec is not None:
                prep.plans.append(Upsert.of(item, space=self.embedder.space, vector=vec))
        for idx, error in poisoned.items():
            prep.plans.append(Poisoned(group[idx].parsed, error))
            prep.letters.append(Letter(group[idx].parsed.record, Reason.poison, error, attempts=2))
        metrics.MODEL_RUNS.labels(kind).inc(len(group) - len(poisoned))
        prep.report.embedded[kind] += len(group) - len(poisoned)
