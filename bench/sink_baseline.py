"""The peer: a sink like Weaviate's Kafka connector, vectors given in the records, no model at all.

An aiokafka consumer reads records carrying a vector, writes them to Weaviate in batches of up to 500 and
commits: the work xmodal's worker does minus parsing, fetching, decoding and embedding.
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer

from services.config import WorkerSettings
from services.embedding.model import load_embedder
from services.publish import EventPublisher
from services.store import AssetObject, AssetStore
from tests.harness.lanes import Lane


async def run_sink(lane: Lane, n: int) -> dict[str, Any]:
    embedder = load_embedder(WorkerSettings().spaces["clip"])
    dim, space = embedder.dim, embedder.space
    rng = random.Random(5)
    records = []
    for i in range(n):
        vec = [rng.gauss(0, 1) for _ in range(dim)]
        records.append((f"a{i % (n // 2)}".encode(), json.dumps(
            {"asset_id": f"a{i % (n // 2)}", "vector": vec, "metadata": {"i": i}}).encode()))
    async with EventPublisher(lane.kafka) as pub:
        await pub.publish_many_raw(records)
    consumer = AIOKafkaConsumer(lane.kafka.topic, bootstrap_servers=lane.kafka.bootstrap_servers,
                                group_id=lane.kafka.group_id, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    done = 0
    try:
        async with AssetStore(lane.weaviate, {space: dim}) as store:
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
                await store.write([_obj(m, space, now) for m in latest.values()], [])
                await consumer.commit()
                done += len(msgs)
            took = time.perf_counter() - (t0 or time.perf_counter())
            await store.drop_collection()
    finally:
        await consumer.stop()
    return {"events": n, "seconds": round(took, 2), "events_per_s": round(n / max(took, 1e-9), 1), "dim": dim}


def _obj(m: Any, space: str, now: datetime) -> AssetObject:
    v = json.loads(m.value)
    return AssetObject(asset_id=v["asset_id"], modality="text", text=None, uri=None, metadata=v["metadata"],
                       content_hash="-", model_id="given", event_time=now, source_partition=m.partition,
                       source_offset=m.offset, vectors={space: v["vector"]}, indexed_at=now)
