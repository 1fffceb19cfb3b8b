"""Fixtures of the gateway integration tests: the shapes sample indexed in the real Weaviate, and the real
app in front of it (a test client, or a real port for schemathesis).

The sample is embedded with the shipped model and written through AssetStore directly (the Kafka -> worker
pipeline is tested elsewhere); see tests.harness.catalogue. Each test module gets its own collection,
topic and consumer group, all removed afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import pytest
import weaviate
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.admin import AIOKafkaAdminClient

from services.config import BUILTIN_MODEL, GatewaySettings, ModelSettings, RerankSettings
from services.embedding.model import HFEmbedder, load_embedder
from services.gateway.server import create_app, started_deps
from services.localstack import LocalStack
from services.localstack.kafka import ensure_topics
from services.store import AssetStore
from tests.harness.catalogue import SAMPLE_PARTITIONS, index_shapes_sample

Client = TestClient[web.Request, web.Application]
AppFactory = Callable[[GatewaySettings], AbstractAsyncContextManager[web.Application]]


@dataclass(frozen=True)
class Indexed:
    """The settings of one module's gateway and what its collection holds."""

    settings: GatewaySettings
    metadata: dict[str, dict[str, object]]  # asset_id -> stored metadata (the event's, plus n)


@dataclass(frozen=True)
class Gateway:
    client: Client
    indexed: Indexed


@pytest.fixture(scope="session")
def shapes_embedder() -> HFEmbedder:
    return load_embedder(ModelSettings(device="cpu"))


@pytest.fixture(scope="module")
async def indexed(stack: LocalStack, shapes_embedder: HFEmbedder) -> AsyncIterator[Indexed]:
    tag = uuid.uuid4().hex[:10]
    settings = GatewaySettings(
        weaviate=stack.s.weaviate.model_copy(update={"collection": f"Gw{tag}"}),
        kafka=stack.s.kafka.model_copy(update={"topic": f"gw-{tag}", "group_id": f"gw-{tag}-workers"}),
        spaces={"clip": ModelSettings(device="cpu")},
        # A real reranker that is cheap to load: the shipped small model (the default is its large sibling),
        # with a budget a busy test machine never runs past (test_gateway_rerank.py tests a tiny one).
        rerank=RerankSettings(kind="biencoder", model=BUILTIN_MODEL, device="cpu", budget_s=30.0),
    )
    await ensure_topics(settings.kafka.bootstrap_servers, {settings.kafka.topic: SAMPLE_PARTITIONS})
    try:
        async with AssetStore(settings.weaviate, {shapes_embedder.space: shapes_embedder.dim}) as store:
            objects = await index_shapes_sample(store, shapes_embedder)
        yield Indexed(settings, {o.asset_id: dict(o.metadata) for o in objects})
    finally:
        await _drop(settings)


async def _drop(settings: GatewaySettings) -> None:
    w = settings.weaviate
    async with weaviate.use_async_with_custom(
        http_host=w.host, http_port=w.http_port, http_secure=False,
        grpc_host=w.host, grpc_port=w.grpc_port, grpc_secure=False,
    ) as client:
        await client.collections.delete(w.collection)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([settings.kafka.topic])
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def app_for(shapes_embedder: HFEmbedder) -> AppFactory:
    """``async with app_for(settings) as app``: the real app over real, started dependencies."""

    @asynccontextmanager
    async def factory(settings: GatewaySettings) -> AsyncIterator[web.Application]:
        async with started_deps(settings, [shapes_embedder]) as deps:
            yield create_app(settings, deps)

    return factory


@pytest.fixture(scope="module")
async def gateway(indexed: Indexed, app_for: AppFactory) -> AsyncIterator[Gateway]:
    async with app_for(indexed.settings) as app, TestClient(TestServer(app)) as client:
        yield Gateway(client, indexed)
