"""Building and running the gateway: ``create_app`` (also for tests) and ``run_gateway`` (`xmodal gateway`).

Tests and tools build the app over their own dependencies::

    async with started_deps(settings) as deps, serving(create_app(settings, deps)) as base_url:
        ...  # http requests to base_url
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from aiohttp import web

from services.config import GatewaySettings, ModelSettings, enabled_spaces
from services.embedding.model import Embedder, load_embedder, set_cpu_threads
from services.fetch.fetcher import Fetcher
from services.fetch.images import preload_codecs
from services.gateway.admission import Admission
from services.gateway.backends import KafkaLink, StoreLink
from services.gateway.deps import Deps
from services.gateway.encoder import QueryEncoder
from services.gateway.golden import add_golden
from services.gateway.live import LiveCollection
from services.gateway.middleware import (
    LIMITER,
    auth_middleware,
    cors_middleware,
    errors_middleware,
    limit_middleware,
)
from services.gateway.openapi import build_openapi
from services.gateway.query import Searcher
from services.gateway.rerankers import started_reranker
from services.gateway.routes import DEPS, OPENAPI, SEARCHER, add_routes
from services.gateway.status_page import TenantStatus, add_status_routes
from services.monitoring.status import StatusCollector
from services.store.models import vector_dims
from services.store.store import AssetStore

log = logging.getLogger(__name__)

#: Seconds in-flight requests get to finish after SIGTERM/SIGINT before connections are closed.
SHUTDOWN_GRACE_S = 10.0


def create_app(settings: GatewaySettings, deps: Deps) -> web.Application:
    """The aiohttp application over started dependencies (the caller owns and closes them)."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            cors_middleware(settings.cors_origins),  # outermost: error answers carry CORS headers too
            errors_middleware(settings),
            auth_middleware(settings),
            limit_middleware,
        ],
    )
    app[DEPS] = deps
    app[SEARCHER] = Searcher(settings, deps)
    add_golden(app, settings, app[SEARCHER])  # golden_file set: runs them in the background from startup
    app[LIMITER] = Admission(settings.search_slots, max_wait_s=settings.max_queue_wait_s)
    app[OPENAPI] = build_openapi(settings)
    add_routes(app)
    tenants = TenantStatus(deps.store, settings.status_all_tenants) if settings.weaviate.multi_tenancy else None
    add_status_routes(app, deps.status, tenants, deps.live)  # /status + /v1/status, over the caller's collector
    return app


@asynccontextmanager
async def started_deps(settings: GatewaySettings, embedders: Sequence[Embedder] | None = None) -> AsyncIterator[Deps]:
    """Load the spaces' models (unless given) and the reranker (settings.rerank; one that fails to load is
    logged and left out), connect to Weaviate, Kafka and the fetcher, and start sampling the status page's
    figures (which exports the lag gauges too); close all on exit.

    Weaviate and Kafka may still be down: the gateway starts anyway, answers 503 where it needs them and
    reports it on /readyz (StoreLink and KafkaLink connect when they can; the collector reports them down).
    """
    set_cpu_threads(settings.cpu_threads)
    async with AsyncExitStack() as stack:
        if embedders is None:
            spaces = enabled_spaces(settings.spaces)
            log.info("loading models: %s", ", ".join(f"{n} = {m.name}" for n, m in spaces.items()))
            embedders = [await asyncio.to_thread(load_embedder, m) for m in spaces.values()]
            await asyncio.to_thread(preload_codecs)  # the first image query should not pay for imports
        encoders = {e.space: QueryEncoder.from_settings(settings, e) for e in embedders}

        async def load_encoder(model: ModelSettings) -> QueryEncoder:
            return QueryEncoder.from_settings(settings, await asyncio.to_thread(load_embedder, model))

        reranker = await started_reranker(settings.rerank)
        for encoder in encoders.values():
            stack.push_async_callback(encoder.close)
        store = StoreLink(AssetStore(settings.weaviate, vector_dims(embedders)))
        await store.start()
        stack.push_async_callback(store.close)
        fetcher = Fetcher(settings.fetch)
        await fetcher.start()
        stack.push_async_callback(fetcher.close)
        kafka = KafkaLink(settings.kafka)
        stack.push_async_callback(kafka.close)
        live = LiveCollection(settings, encoders, load_encoder)
        await live.start()
        stack.push_async_callback(live.close)
        status = StatusCollector(settings)
        await status.start()
        stack.push_async_callback(status.stop)
        yield Deps(encoders=encoders, store=store, fetcher=fetcher, events=kafka, offsets=kafka, reranker=reranker,
                   status=status, live=live)


@asynccontextmanager
async def serving(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve ``app`` on this event loop (port 0: a free one) and yield its base URL (tests, latency runs)."""
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield f"http://{bound_host}:{bound_port}"
    finally:
        await runner.cleanup()


async def _app(settings: GatewaySettings, stack: AsyncExitStack) -> web.Application:
    deps = await stack.enter_async_context(started_deps(settings))
    app = create_app(settings, deps)

    async def close_deps(_: web.Application) -> None:
        await stack.aclose()

    app.on_cleanup.append(close_deps)
    return app


def run_gateway(settings: GatewaySettings) -> None:
    """Serve until SIGINT/SIGTERM, then stop accepting, let in-flight requests finish, close everything."""
    stack = AsyncExitStack()
    log.info("xmodal gateway on http://%s:%d", settings.host, settings.port)
    web.run_app(
        _app(settings, stack), host=settings.host, port=settings.port, shutdown_timeout=SHUTDOWN_GRACE_S,
        print=None, access_log=None,
    )
