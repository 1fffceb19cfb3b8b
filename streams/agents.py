"""The ingest agent: noack_take micro-batches, process, ack each event only after its effect is stored.

Never Faust's take(): it acks a batch even when the agent body raised (faust-streaming issue 315). Agent
concurrency stays 1 (issue 606); scale with partitions and workers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.dead_letter import DeadLetter
from services.config import WorkerSettings
from services.embedding.gpu import gpu_stats
from services.embedding.runner import AsyncEmbedder
from services.errors import TransientError, XmodalError
from services.fetch.fetcher import Fetcher
from services.ingest.pipeline import IngestPipeline
from services.ingest.records import BatchReport, Record
from services.monitoring import metrics
from services.monitoring.exporter import export_loop
from services.store import AssetStore
from streams.app import assets_topic, dlq_topic

log = logging.getLogger("xmodal.worker")


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


async def process_until_done(
    pipeline: IngestPipeline, records: list[Record], settings: WorkerSettings
) -> BatchReport:
    """Retry transient failures with exponential backoff; meanwhile nothing new is taken or acked."""
    delay = settings.batch.retry_backoff_s
    while True:
        try:
            report = await pipeline.process(records)
        except XmodalError as exc:
            if not exc.retriable:
                raise
            metrics.RETRIES.labels(type(exc).__name__).inc()
            metrics.IN_BACKOFF.set(1)
            log.warning("transient failure, retrying the batch of %d in %.1fs: %s", len(records), delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, settings.batch.retry_backoff_max_s)
            continue
        metrics.IN_BACKOFF.set(0)
        return report


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
            async for events in stream.noack_take(settings.batch.max_events, settings.batch.max_wait_s):
                t0 = time.perf_counter()
                report = await process_until_done(pipeline, [to_record(e) for e in events], settings)
                t1 = time.perf_counter()
                for event in events:
                    await stream.ack(event)
                await app.consumer.commit()  # the committed offset follows the store closely
                t2 = time.perf_counter()
                metrics.STAGE_SECONDS.labels("commit").observe(t2 - t1)
                _count(report)
                log.debug("batch of %d: processed in %.3fs, acked+committed in %.3fs", len(events), t1 - t0, t2 - t1)


def _count(report: BatchReport) -> None:
    for outcome in ("stored", "deleted", "metadata_only", "stale", "superseded"):
        n = getattr(report, outcome)
        if n:
            metrics.EVENTS.labels(outcome).inc(n)
    if report.dead_letters:
        metrics.EVENTS.labels("dead_letter").inc(len(report.dead_letters))
