"""The ingest agent: Faust's side of the batch protocol (services/ingest/protocol.py).

It takes micro-batches with ``noack_take`` (never Faust's ``take()``: it acks a batch even when the agent
body raised, faust-streaming issue 315), hands them to the protocol, and acks each event, then commits,
when the protocol says the batch's effect is stored. Agent concurrency stays 1 (issue 606); scale with
partitions and workers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.dead_letter import DeadLetter
from services.config import WorkerSettings
from services.embedding.gpu import gpu_stats
from services.embedding.runner import AsyncEmbedder
from services.errors import TransientError
from services.fetch.fetcher import Fetcher
from services.ingest.prepare import Preparer
from services.ingest.protocol import Backoff, BatchProtocol
from services.ingest.records import Record
from services.ingest.write import Writer
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


def gpu_stats_of(devices: Sequence[str]) -> list[Any]:
    return [sample for device in devices for sample in gpu_stats(device)]


def to_record(event: Any) -> Record:
    m = event.message
    return Record(key=m.key, value=m.value, topic=m.topic, partition=m.partition, offset=m.offset,
                  timestamp_ms=int(m.timestamp * 1000) if m.timestamp else None)


def register(app: faust.App, settings: WorkerSettings, embedders: Sequence[AsyncEmbedder]) -> None:
    topic, dlq = assets_topic(app, settings), dlq_topic(app, settings)
    devices = sorted({e.device for e in embedders})
    # lag (and GPU) gauges refreshed in the background, so /metrics shows them even while idle
    app.task(lambda: export_loop(settings.kafka, gpu_stats=partial(gpu_stats_of, devices)))

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.agent(topic, concurrency=1, name="ingest")
    async def ingest(stream: Any) -> None:
        async def ack(events: Sequence[Any]) -> None:
            for event in events:
                await stream.ack(event)
            await app.consumer.commit()  # the committed offset follows the store closely

        spaces = {e.space: e.dim for e in embedders}
        decoding = Preparer.decoding_for(embedders, settings.fetch)
        async with AssetStore(settings.weaviate, spaces) as store, Fetcher(settings.fetch) as fetcher:
            await store.ensure_collection()
            protocol: BatchProtocol[Any] = BatchProtocol(
                preparer=Preparer(embedders=embedders, fetcher=fetcher, batch=settings.batch, decoding=decoding),
                writer=Writer(store=store, dead_letters=FaustDeadLetterSink(dlq)),
                store=store, ack=ack, backoff=Backoff.of(settings.batch),
            )
            try:
                async for events in stream.noack_take(settings.batch.max_events, settings.batch.max_wait_s):
                    await protocol.submit([to_record(e) for e in events], events)
            finally:
                await protocol.drain()
