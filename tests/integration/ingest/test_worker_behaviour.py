"""Worker behaviours on the real stack: shapes search, metadata-only updates, dead letters of bad events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.asset_event import AssetEvent
from services.config import WorkerSettings
from services.embedding.model import load_embedder
from services.publish import EventPublisher
from services.samples import shapes_sample
from services.store import AssetStore, SearchQuery
from tests.harness.lanes import Lane, WorkerProcess, wait_stored

pytestmark = pytest.mark.integration


@pytest.fixture
async def running(stack: Any, unique_name: str, tmp_path: Path) -> AsyncIterator[tuple[Lane, WorkerProcess]]:
    lane = Lane(unique_name, tmp_path)
    await lane.create_topics()
    worker = WorkerProcess(lane)
    worker.start()
    try:
        await worker.wait_ready()
        yield lane, worker
    finally:
        worker.stop()
        async with AssetStore(lane.weaviate, {"clip": 1}) as store:
            await store.drop_collection()


async def test_text_query_finds_red_circles_first(running: tuple[Lane, WorkerProcess]) -> None:
    lane, _ = running
    events = shapes_sample(per_class=3)
    async with EventPublisher(lane.kafka) as pub:
        await wait_stored(lane, await pub.publish_many(events))
    embedder = load_embedder(WorkerSettings().spaces["clip"])
    query = embedder.embed_texts(["a photo of a red circle"])[0].tolist()
    async with AssetStore(lane.weaviate, {embedder.space: embedder.dim}) as store:
        assert await store.count() == len(events)
        hits = await store.search(SearchQuery(vector=query, space=embedder.space, target="image", limit=3))
        assert [(h.metadata["color"], h.metadata["shape"]) for h in hits] == [("red", "circle")] * 3
        # image and text vectors share the space: the caption text is found from a red circle image's vector
        image_vec = await store.vector_of(hits[0].asset_id, embedder.space)
        assert image_vec is not None
        texts = await store.search(SearchQuery(vector=image_vec, space=embedder.space, target="text", limit=1))
        assert texts[0].asset_id == "text-red-circle"


async def test_metadata_only_update_does_not_run_the_model(running: tuple[Lane, WorkerProcess]) -> None:
    lane, worker = running
    t = datetime(2026, 11, 27, 10, tzinfo=UTC)
    first = AssetEvent.model_validate({"schema_version": 1, "asset_id": "sku-1", "modality": "text",
                                       "text": "red running shoes", "metadata": {"price": 89.5}, "event_time": t})
    second = first.model_copy(update={"metadata": {"price": 79.0, "sale": True},
                                      "event_time": t + timedelta(seconds=1)})
    async with EventPublisher(lane.kafka) as pub:
        await wait_stored(lane, [await pub.publish(first)])
        runs_before = worker.metric("xmodal_model_inputs_total", modality="text")
        await wait_stored(lane, [await pub.publish(second)])
    assert runs_before == 2  # a text is embedded in both spaces that take text: clip and clap
    assert worker.metric("xmodal_model_inputs_total", modality="text") == 2, "a model ran again"
    assert worker.metric("xmodal_events_total", outcome="metadata_only") == 1
    async with AssetStore(lane.weaviate, {"clip": 1}) as store:
        got = await store.get("sku-1")
    assert got is not None and got.metadata == {"price": 79.0, "sale": True}
