"""The peer: a sink like Weaviate's Kafka connector, vectors given in the records, no model at all.

An aiokafka consumer reads records carrying a vector, writes them to Weaviate in batches of up to 500 and
commits: the work xmodal's worker does minus parsing, fetching, decoding and embedding.

By default each record carries one clip vector (what a connector fed by an upstream embedder writes). With
``same_vectors`` the records carry what the worker writes for the bench's events: half are "images" (a clip
vector) and half "texts" (a clip and a clap vector, and the text). Weaviate's cost is mostly the HNSW insert
of each vector (about 0.5 ms of CPU per 64-d vector here), so that sink is the like-for-like floor.
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer

from services.config import WorkerSettings, enabled_spaces
from services.embedding.model import load_embedder
from services.publish import EventPublisher
from services.store import AssetObject, AssetStore, vector_dims
from tests.harness.lanes import Lane


async def run_sink(lane: Lane, n: int, *, same_vectors: bool = False) -> dict[str, Any]:
    settings = WorkerSettings()
    names = list(enabled_spaces(settings.spaces)) if same_vectors else ["clip"]
    embedders = [load_embedder(settings.spaces[name]) for name in names]
    dims = vector_dims(embedders) if same_vectors else {embedders[0].space: embedders[0].dim}
    # a text gets a vector in every space that takes texts; an "image" only in the image spaces
    text_spaces = [e.space for e in embedders if "text" in e.modalities]
    image_spaces = [e.space for e in embedders if "image" in e.modalities]
    rng = random.Random(5)
    records = []
    written = 0  # vectors in all the records
    for i in range(n):
        text = same_vectors and i % 2 == 1
        spaces = text_spaces if text else image_spaces
        written += len(spaces)
        vectors = {space: [rng.gauss(0, 1) for _ in range(dims[space])] for space in spaces}
        records.append((f"a{i % (n // 2)}".encode(), json.dumps(
            {"asset_id": f"a{i % (n // 2)}", "vectors": vectors, "metadata": {"i": i},
             "text": f"a text {i}" if text else None}).encode()))
    async with EventPublisher(lane.kafka) as pub:
        await pub.publish_many_raw(records)
    consumer = AIOKafkaConsumer(lane.kafka.topic, bootstrap_servers=lane.kafka.bootstrap_servers,
                                group_id=lane.kafka.group_id, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    done = 0
    try:
        async with AssetStore(lane.weaviate, dims) as store:
            await store.ensure_collection()
            t0 = None
            while done < n:
                batch = await consumer.getmany(timeout_ms=200, max_records=500)
                msgs = [m for ms in batch.values() for m in ms]
                if not msgs:
                    continue
                t0 = t0 or time.perf_counter()
                latest = {}
                for m in msgs:  # like the connector: last record per key within the flush
                    latest[m.key] = m
                now = datetime.now(UTC)
                await store.write([_obj(m, now) for m in latest.values()], [])
                await consumer.commit()
                done += len(msgs)
            took = time.perf_counter() - (t0 or time.perf_counter())
            await store.drop_collection()
    finally:
        await consumer.stop()
    return {"events": n, "seconds": round(took, 2), "events_per_s": round(n / max(took, 1e-9), 1),
            "dims": {space: dims[space] for space in sorted({*text_spaces, *image_spaces})},
            "vectors_per_event": round(written / n, 2)}


def _obj(m: Any, now: datetime) -> AssetObject:
    v = json.loads(m.value)
    return AssetObject(asset_id=v["asset_id"], modality="text" if v["text"] else "image", text=v["text"], uri=None,
                       metadata=v["metadata"], content_hash="-", model_id="given", event_time=now,
                       source_partition=m.partition, source_offset=m.offset, vectors=v["vectors"], indexed_at=now)
