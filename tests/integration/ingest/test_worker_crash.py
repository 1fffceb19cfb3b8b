"""kill -9 the worker three times while it ingests 2,000 events: the final state is still exact."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.monitoring.lag import LagReader
from services.publish import EventPublisher
from services.store import AssetStore
from tests.harness.lanes import Lane, WorkerProcess, wait_stored
from tests.integration.ingest.scenario import churn

pytestmark = pytest.mark.integration
N_EVENTS = 2000


@pytest.fixture
async def lane(stack: Any, unique_name: str, tmp_path: Path) -> AsyncIterator[Lane]:
    lane = Lane(unique_name, tmp_path)
    await lane.create_topics()
    yield lane
    async with AssetStore(lane.weaviate, {"clip": 1}) as store:
        await store.drop_collection()


async def committed_total(lane: Lane) -> int:
    async with LagReader(lane.kafka) as reader:
        return sum((await reader.committed()).values())


async def test_kill_9_three_times_then_exact_state(lane: Lane) -> None:
    rng = random.Random(11)
    sc = churn(N_EVENTS, seed=3)
    async with EventPublisher(lane.kafka) as pub:
        published = await pub.publish_many_raw([(e.key, e.value) for e in sc.events])
    worker = WorkerProcess(lane)
    kills = []
    try:
        for k in (1, 2, 3):  # die at about a quarter, a half and three quarters of the work, never at its end
            worker.start()
            await worker.wait_ready()
            target = k * N_EVENTS // 4 + rng.randrange(-100, 100)
            while await committed_total(lane) < target:  # noqa: ASYNC110 (polls Kafka)
                await asyncio.sleep(rng.uniform(0.005, 0.03))  # and not just at a commit boundary
            worker.kill9()
            kills.append(await committed_total(lane))
        worker.start()
        await worker.wait_ready()
        await wait_stored(lane, published, timeout_s=300)
    finally:
        worker.stop()
    assert len(kills) == 3 and kills[-1] < N_EVENTS, f"the kills happened too late to mean anything: {kills}"

    async with AssetStore(lane.weaviate, {"clip": 1}) as store:
        assert await store.count() == len(sc.state), "an object is missing or duplicated"
        states = await store.states(list(sc.state))
        assert set(states) == set(sc.state)
        for aid, ev in sc.state.items():
            got = await store.get(aid)
            assert got is not None and got.metadata == ev["metadata"], aid
    assert json.loads(sc.events[-1].value)["asset_id"]  # the scenario is not empty
