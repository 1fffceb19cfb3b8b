"""The shapes sample written straight into the store: a searchable catalogue without Kafka or a worker.

For the gateway's tests, its latency runs and quick demos of the search page; production data arrives
through Kafka and the worker. Each asset gets two extra metadata fields so every filter kind has
something to work on: ``n`` (its index, a number) and an ``event_time`` of ``start + n minutes``.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cli.samples import shapes_sample
from schemas.asset_event import AssetEvent
from services.embedding.model import Embedder
from services.ingest.content import content_hash, prepare
from services.store.models import AssetObject
from services.store.store import AssetStore

SAMPLE_START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
SAMPLE_PARTITIONS = 2  # source_partition = n % 2, source_offset = n: looks like two Kafka partitions


def sample_objects(embedder: Embedder, events: Sequence[AssetEvent], *, max_pixels: int) -> list[AssetObject]:
    """Embed ``events`` (upserts with inline content) into objects for AssetStore.write. Blocks (the model)."""
    prepared = []
    for ev in events:
        raw = ev.text.encode() if ev.text is not None else base64.b64decode(ev.data or "")
        prepared.append(prepare(ev, raw, max_pixels=max_pixels))
    image_rows = iter(embedder.embed_images([c.image for c in prepared if c.image is not None]).tolist())
    text_rows = iter(embedder.embed_texts([c.text for c in prepared if c.text is not None]).tolist())
    objects = []
    for n, (ev, content) in enumerate(zip(events, prepared, strict=True)):
        if ev.modality is None:
            raise ValueError(f"{ev.asset_id}: the sample holds upserts only")
        vector = next(image_rows) if content.image is not None else next(text_rows)
        objects.append(AssetObject(
            asset_id=ev.asset_id, modality=ev.modality.value, text=ev.text, uri=None,
            metadata={**ev.metadata, "n": n}, content_hash=content_hash(ev.modality, str(n).encode()),
            model_id=embedder.model_id, event_time=SAMPLE_START + timedelta(minutes=n),
            source_partition=n % SAMPLE_PARTITIONS, source_offset=n, vectors={embedder.space: vector},
            thumbnail=content.thumbnail,
        ))
    return objects


async def index_shapes_sample(store: AssetStore, embedder: Embedder, *, per_class: int = 4,
                              max_pixels: int = 40_000_000) -> list[AssetObject]:
    """Write the shapes sample (``per_class`` images per colour/shape plus one text each) into ``store``."""
    events = shapes_sample(per_class=per_class)
    objects = await asyncio.to_thread(sample_objects, embedder, events, max_pixels=max_pixels)
    await store.ensure_collection()
    failures = await store.write(objects, [])
    if failures:
        raise RuntimeError(f"the sample could not be stored: {failures}")
    return objects
