"""The worker on the real stack: 500 mixed events leave exactly the expected state and dead letters."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.config import WorkerSettings
from services.embedding.model import load_embedder
from services.publish import EventPublisher
from services.store import AssetStore
from tests.harness.lanes import Lane, WorkerProcess, read_dead_letters, wait_stored
from tests.integration.ingest.scenario import SPACES_OF, mixed

pytestmark = pytest.mark.integration


@pytest.fixture
async def lane(stack: Any, unique_name: str, tmp_path: Path) -> AsyncIterator[Lane]:
    lane = Lane(unique_name, tmp_path, extra_env={
        "XMODAL_FETCH__FILE_ROOTS": f'["{tmp_path}"]', "XMODAL_FETCH__MAX_PIXELS": "1000000",
        "XMODAL_FETCH__MAX_AUDIO_SECONDS": "10",
    })
    await lane.create_topics()
    yield lane
    async with AssetStore(lane.weaviate, {"clip": 1}) as store:
        await store.drop_collection()


async def test_mixed_events_leave_exact_state_and_dead_letters(lane: Lane, tmp_path: Path) -> None:
    sc = mixed(seed=7, files_root=tmp_path)
    async with EventPublisher(lane.kafka) as pub:  # everything first: batches then hold same-asset pairs
        published = await pub.publish_many_raw([(e.key, e.value) for e in sc.events])
    worker = WorkerProcess(lane)
    worker.start()
    try:
        await worker.wait_ready()
        await wait_stored(lane, published)
        letters = await read_dead_letters(lane, expected=30)
        model_runs = worker.metric("xmodal_model_inputs_total")
        metadata_only = worker.metric("xmodal_events_total", outcome="metadata_only")
    finally:
        worker.stop()

    # dead letters: exactly the bad events, each with its reason and its source offset
    want = {(p.partition, p.offset): e.reason for p, e in zip(published, sc.events, strict=True) if e.reason}
    got = {(dl["source"]["partition"], dl["source"]["offset"]): dl["reason"] for dl in letters}
    assert len(letters) == 30 and got == want, Counter(got.values())
    assert all(dl["attempts"] >= 1 and dl["error"] and dl["source"]["topic"] == lane.kafka.topic for dl in letters)

    # Weaviate: the object set, metadata and vectors of the one-by-one model, nothing more; every asset has a
    # vector in each space its modality belongs to (a text in clip and clap), of that space's size, and no other
    dims = {name: load_embedder(space).dim for name, space in WorkerSettings().spaces.items()}
    assert set(dims) == {"clip", "clap"}
    async with AssetStore(lane.weaviate, dims) as store:
        assert await store.count() == len(sc.state)
        states = await store.states(list(sc.state), with_vectors=True)
        assert set(states) == set(sc.state)
        assert {ev["modality"] for ev in sc.state.values()} == {"image", "text", "audio"}
        for aid, ev in sc.state.items():
            stored = await store.get(aid)
            assert stored is not None
            assert stored.metadata == ev["metadata"], aid
            assert stored.modality == ev["modality"]
            vectors = states[aid].vectors
            assert set(vectors) == SPACES_OF[ev["modality"]], aid
            assert all(len(v) == dims[space] for space, v in vectors.items()), aid
        for aid in ("pair-up-del", "ghost-0"):
            assert await store.get(aid) is None
        assert await store.get("pair-del-up") is not None
    assert metadata_only > 0, "same-content updates must reuse the stored vector"
    assert model_runs > 0
