"""Read-your-writes through the whole system: POST /v1/assets on the gateway, a real worker stores it, and a
search with consistent_with finds it every time: 200 times, 0 misses, waits reported.

Each search bounds its wait at 2 s (``consistency_timeout_s``): "satisfied" every time is the end-to-end
freshness promise (searchable within 2 s of publishing), checked by the product's own bounded wait rather
than by timing the test. One warm-up round first: the worker's first fetch after joining its group."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.config import GatewaySettings
from services.gateway.server import create_app, started_deps
from services.store import AssetStore
from tests.harness.lanes import Lane, WorkerProcess

pytestmark = pytest.mark.e2e
ROUNDS = 200


@pytest.fixture
async def system(stack: Any, unique_name: str, tmp_path: Path) -> AsyncIterator[tuple[TestClient, Lane]]:
    lane = Lane(unique_name, tmp_path)
    await lane.create_topics()
    worker = WorkerProcess(lane)
    worker.start()
    settings = GatewaySettings(kafka=lane.kafka, weaviate=lane.weaviate, consistency_timeout_s=10.0,
                               worker_metrics_urls=[f"http://127.0.0.1:{lane.web_port}/metrics"])
    try:
        await worker.wait_ready()
        async with started_deps(settings) as deps, TestClient(TestServer(create_app(settings, deps))) as client:
            yield client, lane
    finally:
        worker.stop()
        async with AssetStore(lane.weaviate, {"clip": 1}) as store:
            await store.drop_collection()


async def test_every_published_asset_is_found_by_the_next_search(
    system: tuple[TestClient, Lane], capsys: pytest.CaptureFixture[str]
) -> None:
    client, _ = system
    misses, waits, unsatisfied = [], [], 0
    for i in range(-1, ROUNDS):  # round -1 warms up and is not counted
        text = f"a photo of a red circle, item {i}"
        event = {"schema_version": 1, "asset_id": f"ryw-{i}", "op": "upsert", "modality": "text", "text": text,
                 "metadata": {"round": i}, "event_time": datetime.now(UTC).isoformat()}
        resp = await client.post("/v1/assets", json=event)
        where = await resp.json()
        assert resp.status == 202, where
        t0 = time.perf_counter()
        found = await client.post("/v1/search", json={
            "text": text, "target": "text", "limit": 5, "consistent_with": [where],
            "consistency_timeout_s": 10.0 if i < 0 else 2.0,
            "filters": {"field": "asset_id", "eq": f"ryw-{i}"},
        })
        body = await found.json()
        assert found.status == 200, body
        if i < 0:
            continue
        waits.append(body["consistency"]["waited_ms"])
        unsatisfied += not body["consistency"]["satisfied"]
        if [r["asset_id"] for r in body["results"]] != [f"ryw-{i}"]:
            misses.append((i, (time.perf_counter() - t0) * 1000))
    waits.sort()
    report = (f"{ROUNDS} rounds: {len(misses)} misses, consistency unsatisfied {unsatisfied}; waited p50 "
              f"{waits[len(waits) // 2]:.0f} ms, p99 {waits[int(len(waits) * 0.99)]:.0f} ms, max {waits[-1]:.0f} ms")
    with capsys.disabled():  # the waits are part of what this test reports: always in the output
        print(f"\n  read-your-writes: {report}")
    assert unsatisfied == 0, report
    assert misses == [], report
