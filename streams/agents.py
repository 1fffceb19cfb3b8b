"""The ingest agent: Faust's side of the batch protocol (services/ingest/protocol.py).

It takes micro-batches with ``noack_take`` (never Faust's ``take()``: it acks a batch even when the agent
body raised, faust-streaming issue 315), hands them to the protocol, and acks each event, then commits,
when the protocol says the batch's effect is stored. Agent concurrency stays 1 (issue 606); scale with
partitions and workers.

Backpressure: while a step fails transiently (Weaviate down, slow, overloaded) the batch in hand is retried
with backoff and the agent takes nothing more, so Faust fetches until its stream buffer is full
(``stream_buffer_maxsize``: XMODAL_BUFFER_MAX_EVENTS) and then stops fetching by itself; the flow only
reports the pause (/readyz, metrics). It never calls Faust's ``pause_partitions``: in faust-streaming 0.15.3
records already fetched for a partition paused mid-delivery are dropped and then committed past
(``Consumer.getmany``), which lost events when Weaviate came and went (streams/offsets.py watches for it). On
shutdown the batch in flight gets a share of the shutdown bound to finish; otherwise it is abandoned unacked
(delivered again).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import partial
from typing import Any

import faust

from schemas.dead_letter import DeadLetter
from services.config import WorkerSettings
from services.embedding.gpu import gpu_stats
from services.embedding.runner import AsyncEmbedder
from services.errors import ConfigError, TransientError
from services.fetch.fetcher import Fetcher
from services.ingest.prepare import Preparer
from services.ingest.protocol import Backoff, BatchProtocol, Flow, until_done
from services.ingest.records import Record
from services.ingest.write import Writer
from services.monitoring.exporter import export_loop
from services.store import AssetStore, vector_dims
from streams.app import assets_topic, dlq_topic
from streams.offsets import OffsetWatch
from streams.web import WorkerHealth

log = logging.getLogger("xmodal.worker")
#: Exit status when the collection in Weaviate disagrees with the settings in a way only the operator can settle
#: (multi-tenancy, an index setting fixed at creation): nothing is consumed yet, and restarting changes nothing.
CONFIG_EXIT = 5


class FaustDeadLetterSink:
    """Produces dead letters through the app's producer and waits for the broker's ack."""

    def __init__(self, topic: Any) -> None:
        self.topic = topic

    async def send(self, key: bytes | None, letter: DeadLetter) -> None:
        try:
            fut = await self.topic.send(key=key, value=letter.model_dump_json().encode())
            await fut
        except Exception as exc:
            raise TransientError(f"could not produce a dead letter: {exc!r}", cause="dead_letter") from exc


def gpu_stats_of(devices: Sequence[str]) -> list[Any]:
    return [sample for device in devices for sample in gpu_stats(device)]


def to_record(event: Any) -> Record:
    m = event.message
    return Record(key=m.key, value=m.value, topic=m.topic, partition=m.partition, offset=m.offset,
                  timestamp_ms=int(m.timestamp * 1000) if m.timestamp else None)


def register(app: faust.App, settings: WorkerSettings, embedders: Sequence[AsyncEmbedder],
             health: WorkerHealth | None = None) -> None:
    topic, dlq = assets_topic(app, settings), dlq_topic(app, settings)
    devices = sorted({e.device for e in embedders})
    health = health or WorkerHealth()
    # lag (and GPU) gauges refreshed in the background, so /metrics shows them even while idle
    app.task(lambda: export_loop(settings.kafka, gpu_stats=partial(gpu_stats_of, devices)))

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]
    async def partitions_held() -> None:  # for /readyz, read by the web server's thread
        health.partitions = sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment())

    @app.agent(topic, concurrency=1, name="ingest")
    async def ingest(stream: Any) -> None:
        async def ack(events: Sequence[Any]) -> None:
            for event in events:
                await stream.ack(event)
            await app.consumer.commit()  # the committed offset follows the store closely

        spaces = vector_dims(embedders)  # each space's vector, and its caption vector where it has one
        decoding = Preparer.decoding_for(embedders, settings.fetch)
        flow, backoff = Flow(), Backoff.of(settings.batch)
        # a migration's state names models as configured (the recorded model id may add "@<revision>")
        names = {e.space: settings.spaces[e.space].name for e in embedders}
        store = AssetStore(settings.weaviate, spaces, models=names)
        health.flow, health.phase = flow, "connecting to Weaviate"
        # Weaviate away at start is a transient failure like any other: paused, retried, reported on /readyz
        await until_done(store.start, backoff, what="connecting to Weaviate", flow=flow)
        try:
            async with Fetcher(settings.fetch) as fetcher:
                try:
                    await until_done(store.ensure_collection, backoff, what="creating the collection", flow=flow)
                except ConfigError as exc:
                    # Faust's supervisor would restart the agent at once, forever: stop the process instead.
                    log.error("the collection does not match the settings; stopping: %s", exc)
                    logging.shutdown()
                    os._exit(CONFIG_EXIT)
                protocol: BatchProtocol[Any] = BatchProtocol(
                    preparer=Preparer(embedders=embedders, fetcher=fetcher, batch=settings.batch,
                                      decoding=decoding, multi_tenant=settings.weaviate.multi_tenancy),
                    writer=Writer(store=store, dead_letters=FaustDeadLetterSink(dlq)),
                    store=store, ack=ack, backoff=backoff, flow=flow,
                )
                offsets = OffsetWatch()
                health.phase = "consuming"
                try:
                    async for events in stream.noack_take(settings.batch.max_events, settings.batch.max_wait_s):
                        records = [to_record(e) for e in events]
                        offsets.taken(((r.topic, r.partition, r.offset) for r in records),
                                      app.consumer_generation_id)
                        await protocol.submit(records, events)
                finally:
                    health.phase = "stopping"
                    # half the shutdown bound for the batch in flight; the rest is for committing and leaving
                    await protocol.close(grace_s=settings.shutdown_timeout_s / 2)
        finally:
            await store.close()
