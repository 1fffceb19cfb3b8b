"""The Kafka broker stopped and started again mid-stream: the worker and the gateway reconnect by themselves,
the final state is exact; and a worker told to stop while the broker is gone exits within its bound."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.config import GatewaySettings, ModelSettings
from services.embedding.model import load_embedder
from services.gateway.server import create_app, started_deps
from services.localstack import LocalStack
from services.localstack.process import stop
from services.store import AssetStore
from streams.worker import FORCED_EXIT
from tests.harness.lanes import Lane, WorkerProcess, wait_stored
from tests.integration.resilience.checks import assert_exact, churn, committed_total, publish
from tests.integration.resilience.conftest import sized

pytestmark = pytest.mark.integration
N_EVENTS = sized(800, 3000)
BOUND_S = 5.0
SLACK_S = 15.0


@pytest.fixture
async def gateway(lane: Lane) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    settings = GatewaySettings(kafka=lane.kafka, weaviate=lane.weaviate, spaces={"clip": ModelSettings(device="cpu")})
    async with started_deps(settings, [load_embedder(ModelSettings(device="cpu"))]) as deps, \
            TestClient(TestServer(create_app(settings, deps))) as client:
        yield client


async def test_broker_restart_mid_stream(lane: Lane, stack: LocalStack, gateway: TestClient) -> None:  # type: ignore[type-arg]
    sc = churn(N_EVENTS, seed=31)
    half = len(sc.events) // 2
    published = await publish(lane, sc.events[:half])
    worker = WorkerProcess(lane)
    leaving = WorkerProcess(lane, name="leaving", env={"XMODAL_SHUTDOWN_TIMEOUT_S": str(BOUND_S)})
    try:
        for w in (worker, leaving):
            w.start()
        for w in (worker, leaving):
            await w.wait_ready()
        while await committed_total(lane) < half // 3:  # noqa: ASYNC110 (polls Kafka)
            await asyncio.sleep(0.05)

        await asyncio.to_thread(stop, stack.kafka.pid_file, timeout_s=45)  # the broker goes away
        await asyncio.sleep(2)
        t0 = time.monotonic()
        leaving.sigterm()
        while leaving.proc is not None and leaving.proc.poll() is None and time.monotonic() - t0 < 90:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        took = time.monotonic() - t0
        assert leaving.proc is not None and leaving.proc.returncode in (0, FORCED_EXIT), leaving.tail()
        assert took < BOUND_S + SLACK_S, f"SIGTERM with the broker gone took {took:.1f}s (bound {BOUND_S}s)"

        await asyncio.to_thread(stack.up)  # the same broker, same data, back on the same port
        published += await publish(lane, sc.events[half:])
        await wait_stored(lane, published, timeout_s=300)
        assert worker.alive, f"the worker died instead of reconnecting:\n{worker.tail()}"

        # the gateway's producer and lag reader reconnect too: publishing through it works again
        event = {"schema_version": 1, "asset_id": "after-restart", "op": "upsert", "modality": "text",
                 "text": "published after the broker came back", "metadata": {},
                 "event_time": datetime.now(UTC).isoformat()}
        statuses: list[int] = []

        async def publishes() -> bool:
            resp = await gateway.post("/v1/assets", data=json.dumps(event),
                                      headers={"Content-Type": "application/json"})
            statuses.append(resp.status)
            assert resp.status in (202, 503), f"{resp.status}: {await resp.text()}"
            return resp.status == 202

        deadline = time.monotonic() + 120
        while not await publishes() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(1)
        assert statuses[-1] == 202, f"the gateway did not publish again after the restart: {statuses}"
        assert all(s in (202, 503) for s in statuses), f"only 503 (with a reason) while Kafka was back: {statuses}"
        sc.good(event)
        search = await gateway.post("/v1/search", json={"text": "published after", "limit": 5})
        assert search.status == 200, await search.text()
        async with AssetStore(lane.weaviate, {"clip": 1}) as store:  # the worker stores the gateway's event
            deadline = time.monotonic() + 120
            while await store.get("after-restart") is None and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.5)
    finally:
        leaving.stop()
        worker.stop()
        await asyncio.to_thread(stack.up)  # never leave the shared broker down for the next tests
    await assert_exact(lane, sc)
