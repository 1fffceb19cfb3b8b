"""The seed's naive loop: consume one event, embed it, insert one object, commit, repeat.

What a first version of the worker would do, built from the project's own parts (the event contract's parser,
``services.ingest.content.prepare`` for decoding and thumbnails, the shipped models through ``load_embedder``,
``AssetStore.write`` with one object per call) but with none of the pipeline's batching, overlap or
concurrency: one record from Kafka, one model call per space the event belongs to (a text goes through clip and
clap, as in the worker), one Weaviate insert, one offset commit, and only then the next record. The model runs
on the event loop's thread, as a naive loop would. It stops at the first record it cannot use (the bench only
feeds it valid events).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.asset_event import AssetEvent, Modality, Op
from services.config import WorkerSettings, enabled_spaces
from services.embedding.model import Embedder, load_embedder
from services.ingest.content import Content, Decoding, prepare
from services.ingest.parse import parse
from services.ingest.records import Record
from services.publish import EventPublisher
from services.store import AssetObject, AssetStore, format_model_ids
from tests.harness.lanes import Lane


def load_spaces(settings: WorkerSettings) -> dict[str, Embedder]:
    """The worker's enabled spaces, each loaded once (the same models as the worker's)."""
    return {name: load_embedder(m) for name, m in enabled_spaces(settings.spaces).items()}


def spaces_by_modality(embedders: Mapping[str, Embedder]) -> dict[Modality, list[str]]:
    return {m: [name for name, e in embedders.items() if m.value in e.modalities] for m in Modality}


def embed_one(embedder: Embedder, content: Content) -> list[float]:
    """One model call for one input."""
    if content.image is not None:
        return [float(x) for x in embedder.embed_images([content.image])[0]]
    if content.audio is not None:
        return [float(x) for x in embedder.embed_audio([content.audio])[0]]
    assert content.text is not None
    return [float(x) for x in embedder.embed_texts([content.text])[0]]


async def run_naive(lane: Lane, events: Sequence[AssetEvent], embedders: Mapping[str, Embedder]) -> dict[str, Any]:
    """Publish ``events`` to the lane's topic, then store them one at a time; the timing starts at the first
    record consumed (models loaded and connections open before it, as for the worker)."""
    settings = WorkerSettings()
    async with EventPublisher(lane.kafka) as pub:
        await pub.publish_many(list(events))
    spaces_of = spaces_by_modality(embedders)
    audio_rate = next((e.sampling_rate for e in embedders.values() if "audio" in e.modalities), None)
    decoding = Decoding(max_pixels=settings.fetch.max_pixels, audio_rate=audio_rate)
    consumer = AIOKafkaConsumer(lane.kafka.topic, bootstrap_servers=lane.kafka.bootstrap_servers,
                                group_id=lane.kafka.group_id, auto_offset_reset="earliest",
                                enable_auto_commit=False, max_poll_records=1)
    await consumer.start()
    model_calls = 0
    try:
        async with AssetStore(lane.weaviate, {n: e.dim for n, e in embedders.items()}) as store:
            await store.ensure_collection()
            t0: float | None = None
            for _ in range(len(events)):
                msg = await consumer.getone()
                t0 = t0 or time.perf_counter()
                record = Record(msg.key, msg.value, msg.topic, msg.partition, msg.offset, msg.timestamp)
                event = parse(record, spaces_of).event
                if event.op is Op.delete:
                    await store.write([], [event.asset_id])
                else:
                    raw = event.text.encode() if event.text is not None else base64.b64decode(event.data or "")
                    content = prepare(event, raw, decoding)
                    assert event.modality is not None
                    names = spaces_of[event.modality]
                    vectors = {n: embed_one(embedders[n], content) for n in names}
                    model_calls += len(names)
                    await store.write([_object(record, event, content, vectors, embedders)], [])
                await consumer.commit({TopicPartition(msg.topic, msg.partition): msg.offset + 1})
            took = time.perf_counter() - (t0 or time.perf_counter())
    finally:
        await consumer.stop()
    n = len(events)
    return {"events": n, "seconds": round(took, 2), "events_per_s": round(n / max(took, 1e-9), 1),
            "model_calls": model_calls, "store_calls": n}


def _object(record: Record, event: AssetEvent, content: Content, vectors: dict[str, list[float]],
            embedders: Mapping[str, Embedder]) -> AssetObject:
    return AssetObject(
        asset_id=event.asset_id, modality=str(event.modality), text=content.text, uri=event.uri,
        metadata=dict(event.metadata), content_hash=content.content_hash,
        model_id=format_model_ids({n: embedders[n].model_id for n in vectors}), event_time=event.event_time,
        source_partition=record.partition, source_offset=record.offset, vectors=vectors,
        thumbnail=content.thumbnail,
    )
