"""The gateway while Weaviate is away (Toxiproxy down): 503 with a reason, never a 500, and answers again by
itself when Weaviate is back."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.config import GatewaySettings, ModelSettings
from services.embedding.model import load_embedder
from services.gateway.server import create_app, started_deps
from services.store import AssetStore
from tests.harness.catalogue import index_shapes_sample
from tests.harness.faults import WeaviateProxies
from tests.harness.lanes import Lane

pytestmark = pytest.mark.integration


async def test_gateway_answers_503_while_weaviate_is_away_then_recovers(
    lane: Lane, weaviate_proxies: WeaviateProxies
) -> None:
    embedder = load_embedder(ModelSettings(device="cpu"))
    async with AssetStore(lane.weaviate, {embedder.space: embedder.dim}) as store:
        await index_shapes_sample(store, embedder, per_class=1)
    through_proxy = lane.weaviate.model_copy(update={"http_port": weaviate_proxies.http.port,
                                                     "grpc_port": weaviate_proxies.grpc.port, "timeout_s": 2.0})
    settings = GatewaySettings(kafka=lane.kafka, weaviate=through_proxy, spaces={"clip": ModelSettings(device="cpu")},
                               request_timeout_s=8.0)
    query = {"text": "a red circle", "limit": 3}
    async with started_deps(settings, [embedder]) as deps, TestClient(TestServer(create_app(settings, deps))) as c:
        ok = await c.post("/v1/search", json=query)
        assert ok.status == 200, await ok.text()

        weaviate_proxies.down()
        statuses, bodies = [], []
        for _ in range(4):
            resp = await c.post("/v1/search", json=query)
            statuses.append(resp.status)
            bodies.append(await resp.json())
        assert set(statuses) == {503}, (statuses, bodies)
        for body in bodies:
            assert body["error"]["message"], body  # a reason, not an empty 503
        ready = await c.get("/readyz")
        assert ready.status == 503, await ready.text()

        weaviate_proxies.up()
        deadline, status = time.monotonic() + 90, 0
        while time.monotonic() < deadline:
            resp = await c.post("/v1/search", json=query)
            status = resp.status
            assert status in (200, 503), await resp.text()
            if status == 200:
                break
            await asyncio.sleep(0.5)
        assert status == 200, "the gateway did not recover by itself"
