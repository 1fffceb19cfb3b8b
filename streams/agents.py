"""The ingest agent: noack_take micro-batches, process, ack each event only after its effect is stored.

Never Faust's take(): it acks a batch even when the agent body raised (faust-streaming issue 315). Agent
concurrency stays 1 (issue 606); scale with partitions and workers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.dead_letter import DeadLetter
from services.config import WorkerSettings
from services.embedding.gpu import gpu_stats
from services.embedding.runner import AsyncEmbedder
from services.errors import TransientError, XmodalError
from services.fetch.fetcher import Fetcher
from services.ingest.pipeline import Committed, IngestPipeline, Prepared
from services.ingest.records import BatchReport, Record
from services.monitoring import metrics
from services.monitoring.exporter import export_loop
from services.store import AssetStore
from streams.app import assets_topic, dlq_topic

log = logging.getLogger("xmodal.worker")
T = TypeVar("T")


class FaustDeadLetterSink:
    """Produces dead letters through the app's producer and waits for the broker's ack."""

    def __init__(self, topic: Any) -> None:
        self.topic = topic

    async def send(self, key: bytes | None, letter: DeadLetter) -> None:
        try:
            fut = await self.topic.send(key=key, value=letter.model_dump_json().encode())
            await fut
        except Exception as exc:
            raise TransientError(f"could not produce a dead letter: {exc!r}") from exc


def to_record(event: Any) -> Record:
    m = event.message
    return Record(key=m.key, value=m.value, topic=m.topic, partition=m.partition, offset=m.offset,
                  timestamp_ms=int(m.timestamp * 1000) if m.timestamp else None)


async def until_done(what: Callable[[], Awaitable[T]], settings: WorkerSettings, size: int) -> T:
    """Retry transient failures with exponential backoff; meanwhile nothing new is acked."""
    delay = settings.batch.retry_backoff_s
    while True:
        try:
            result = await what()
        except XmodalError as exc:
            if not exc.retriable:
                raise
            metrics.RETRIES.labels(type(exc).__name__).inc()
            metrics.IN_BACKOFF.set(1)
            log.warning("transient failure, retrying a batch of %d in %.1fs: %s", size, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, settings.batch.retry_backoff_max_s)
            continue
        metrics.IN_BACKOFF.set(0)
        return result


class Committer:
    """Writes batch N (and acks it) while the agent prepares batch N+1: the model and Weaviate work at once.

    Batches are written and acked strictly in order: the next commit starts only after the previous one
    finished, and each event is acked only after its batch's write and dead letters are confirmed.
    """

    def __init__(self, app: faust.App, stream: Any, pipeline: IngestPipeline, settings: WorkerSettings) -> None:
        self.app, self.stream, self.pipeline, self.settings = app, stream, pipeline, settings
        self._inflight: asyncio.Task[Committed] | None = None

    async def submit(self, events: list[Any], records: list[Record], prep: Prepared) -> None:
        if self._inflight is not None:
            done = await self._inflight
            self._inflight = None
            if done.refused & prep.assets:  # prep read states that batch did not manage to write
                self.pipeline.discard(prep)
                prep = await until_done(partial(self.pipeline.prepare, records), self.settings, len(records))
        self._inflight = asyncio.create_task(self._commit(events, prep))

    async def _commit(self, events: list[Any], prep: Prepared) -> Committed:
        done = await until_done(partial(self.pipeline.commit, prep), self.settings, len(events))
        t1 = time.perf_counter()
        for event in events:
            await self.stream.ack(event)
        await self.app.consumer.commit()  # the committed offset follows the store closely
        metrics.STAGE_SECONDS.labels("commit").observe(time.perf_counter() - t1)
        _count(done.report)
        return done

    async def drain(self) -> None:
        if self._inflight is not None:
            await self._inflight
            self._inflight = None


def register(app: faust.App, settings: WorkerSettings, embedder: AsyncEmbedder) -> None:
    topic, dlq = assets_topic(app, settings), dlq_topic(app, settings)
    # lag (and GPU) gauges refreshed in the background, so /metrics shows them even while idle
    app.task(lambda: export_loop(settings.kafka, gpu_stats=partial(gpu_stats, embedder.device)))

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.agent(topic, concurrency=1, name="ingest")
    async def ingest(stream: Any) -> None:
        spaces = {embedder.space: embedder.dim}
        async with AssetStore(settings.weaviate, spaces) as store, Fetcher(settings.fetch) as fetcher:
            await store.ensure_collection()
            pipeline = IngestPipeline(store=store, embedder=embedder, fetcher=fetcher,
                                      dead_letters=FaustDeadLetterSink(dlq), batch=settings.batch,
                                      fetch=settings.fetch)
            committer = Committer(app, stream, pipeline, settings)
            try:
                async for events in stream.noack_take(settings.batch.max_events, settings.batch.max_wait_s):
                    records = [to_record(e) for e in events]
                    prep = await until_done(partial(pipeline.prepare, records), settings, len(records))
                    await committer.submit(events, records, prep)
            finally:
                await committer.drain()


def _count(report: BatchReport) -> None:
    for outcome in ("stored", "deleted", "metadata_only", "stale", "superseded"):
        n = getattr(report, outcome)
        if n:
            metrics.EVENTS.labels(outcome).inc(n)
    if report.dead_letters:
        metrics.EVENTS.labels("dead_letter").inc(len(report.dead_letters))
