"""Fixtures for the store against the real local Weaviate: one collection per test, dropped afterwards.

Helpers are handed out as fixtures (``make_asset``, ``proxy``) rather than imported: the tests folders are
not packages, so fixtures are the one sharing mechanism that works however pytest is started.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import weaviate

from services.config import WeaviateSettings
from services.localstack import LocalStack
from services.store import AssetObject, AssetStore

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


@dataclass
class Proxy:
    """A TCP relay in front of Weaviate's ports, so a test can cut the network the way an outage does."""

    targets: dict[int, int] = field(default_factory=dict)  # local port -> Weaviate port
    servers: list[asyncio.Server] = field(default_factory=list)
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self, host: str, ports: list[int]) -> None:
        for port in ports:
            server = await asyncio.start_server(self._relay_to(host, port), "127.0.0.1", 0)
            self.servers.append(server)
            self.targets[server.sockets[0].getsockname()[1]] = port

    def port_for(self, target: int) -> int:
        return next(local for local, t in self.targets.items() if t == target)

    def _relay_to(
        self, host: str, port: int
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection(host, port)
            self.writers |= {writer, up_writer}
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

        return relay

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        for server in self.servers:
            server.close()
        for writer in self.writers:
            writer.close()
        for server in self.servers:
            await server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@pytest.fixture
async def through_proxy(
    settings: WeaviateSettings,
) -> AsyncIterator[tuple[WeaviateSettings, Callable[[], Awaitable[None]]]]:
    """Settings that reach Weaviate through a relay, and the coroutine function that cuts the relay."""
    relay = Proxy()
    await relay.start(settings.host, [settings.http_port, settings.grpc_port])
    relayed = settings.model_copy(update={
        "http_port": relay.port_for(settings.http_port), "grpc_port": relay.port_for(settings.grpc_port),
        "timeout_s": 1.0,
    })
    yield relayed, relay.cut
    await relay.cut()
