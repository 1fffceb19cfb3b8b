"""Fixtures of the gateway unit tests: the real app over real, offline dependencies.

- the model is a tiny random CLIP checkpoint made by the project (the real loading and inference code);
- the store is a real AssetStore that is never connected (StoreLink not started): every search that
  reaches it answers 503, exactly as when Weaviate is down; nothing here opens a network connection;
- the fetcher is the real, SSRF-guarded one: URLs of private addresses are refused before any connect;
- no StatusCollector unless a test passes one (``status=``), and none is ever started: nothing samples
  Kafka or the workers' metrics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.config import GatewaySettings, WeaviateSettings
from services.embedding.model import HFEmbedder
from services.fetch.fetcher import Fetcher
from services.gateway.backends import StoreLink
from services.gateway.deps import Deps
from services.gateway.encoder import QueryEncoder
from services.gateway.rerank import Reranker
from services.gateway.server import create_app
from services.monitoring.status import StatusCollector
from services.store.store import AssetStore
from tests.harness.tiny_models import save_tiny_random_model

ClientFactory = Callable[..., AbstractAsyncContextManager[TestClient[web.Request, web.Application]]]


@pytest.fixture(scope="session")
def tiny_embedder(tmp_path_factory: pytest.TempPathFactory) -> HFEmbedder:
    path: Path = save_tiny_random_model("clip", tmp_path_factory.mktemp("tiny-clip"))
    return HFEmbedder.from_pretrained(path, space="clip", device="cpu", model_id="tiny-clip")


@pytest.fixture
def make_client(tiny_embedder: HFEmbedder) -> ClientFactory:
    """``async with make_client(**settings_overrides) as client``: a test client of a fresh app.

    ``routes`` adds test-only routes to the app (e.g. one that raises) before it starts; ``status`` is the
    status page's collector (the caller's, not started here; None: the page is not configured); ``reranker``
    the app's reranker (None: `rerank: true` answers 400).
    """

    @asynccontextmanager
    async def factory(routes: Sequence[web.RouteDef] = (), status: StatusCollector | None = None,
                      reranker: Reranker | None = None, **overrides: Any
                      ) -> AsyncIterator[TestClient[web.Request, web.Application]]:
        overrides.setdefault("weaviate", WeaviateSettings(host="127.0.0.1", http_port=9, grpc_port=9))
        settings = GatewaySettings(**overrides)
        encoder = QueryEncoder.from_settings(settings, tiny_embedder)
        store = StoreLink(AssetStore(settings.weaviate, {tiny_embedder.space: tiny_embedder.dim}))
        async with Fetcher(settings.fetch) as fetcher:
            deps = Deps(encoders={encoder.space: encoder}, store=store, fetcher=fetcher, status=status,
                        reranker=reranker)
            app = create_app(settings, deps)
            app.router.add_routes(routes)
            try:
                async with TestClient(TestServer(app)) as client:
                    yield client
            finally:
                await encoder.close()

    return factory


@pytest.fixture
async def client(make_client: ClientFactory) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with make_client() as c:
        yield c
