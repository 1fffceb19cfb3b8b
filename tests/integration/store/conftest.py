"""Fixtures for the store against the real local Weaviate: one collection per test, dropped afterwards.

Helpers are handed out as fixtures (``make_asset``, ``through_proxy``) rather than imported: the tests folders are
not packages, so fixtures are the one sharing mechanism that works however pytest is started.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import weaviate

from services.config import WeaviateSettings
from services.localstack import LocalStack
from services.store import AssetObject, AssetStore
from tests.harness.faults import WeaviateProxies

SPACES = {"clip": 4, "clap": 3}
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


@pytest.fixture
async def settings(stack: LocalStack, unique_name: str) -> AsyncIterator[WeaviateSettings]:
    """The stack's Weaviate with a collection of this test's own, dropped after the test."""
    own = stack.s.weaviate.model_copy(update={"collection": "T" + unique_name[1:]})  # classes are capitalised
    yield own
    async with weaviate.use_async_with_custom(
        http_host=own.host, http_port=own.http_port, http_secure=False,
        grpc_host=own.host, grpc_port=own.grpc_port, grpc_secure=False,
    ) as client:
        await client.collections.delete(own.collection)


@pytest.fixture
def spaces() -> dict[str, int]:
    return dict(SPACES)


@pytest.fixture
async def store(settings: WeaviateSettings) -> AsyncIterator[AssetStore]:
    async with AssetStore(settings, SPACES) as st:
        await st.ensure_collection()
        yield st


def _make_asset(
    asset_id: str, *, modality: str = "image", vectors: dict[str, list[float]] | None = None,
    metadata: dict[str, str | bool | int | float | list[str]] | None = None, text: str | None = None,
    minutes: int = 0, thumbnail: bytes | None = None, offset: int = 0,
) -> AssetObject:
    return AssetObject(
        asset_id=asset_id, modality=modality, text=text,
        uri=None if text is not None else f"https://img.example/{asset_id}.png",
        metadata=metadata or {}, content_hash=f"hash-{asset_id}", model_id="shapes-clip-v1",
        event_time=T0 + timedelta(minutes=minutes), source_partition=1, source_offset=offset,
        vectors={"clip": [1.0, 0.0, 0.0, 0.0]} if vectors is None else vectors, thumbnail=thumbnail,
    )


@pytest.fixture
def make_asset() -> Callable[..., AssetObject]:
    """``make_asset(asset_id, modality=, vectors=, metadata=, text=, minutes=, thumbnail=, offset=)``."""
    return _make_asset


@pytest.fixture
async def through_proxy(
    settings: WeaviateSettings, weaviate_proxies: WeaviateProxies,
) -> tuple[WeaviateSettings, Callable[[], Awaitable[None]]]:
    """Settings that reach Weaviate through Toxiproxy, and the coroutine function that takes the proxy down
    (it stops listening and drops the open connections, the way a dead node's network does)."""
    relayed = settings.model_copy(update={
        "http_port": weaviate_proxies.http.port, "grpc_port": weaviate_proxies.grpc.port, "timeout_s": 1.0,
    })

    async def cut() -> None:
        await asyncio.to_thread(weaviate_proxies.down)

    return relayed, cut
