"""Fixtures of the fault tests: a real Toxiproxy between the worker (or gateway) and the real Weaviate.

Each test runs at one of two sizes: the short one in `make test`, the long one (the issue's figures: 2,000
events and a 30 s outage, a 20,000-event backlog behind a slow store, ...) under `make soak`
(XMODAL_SOAK=1).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.localstack import LocalStack
from services.localstack.toxiproxy import Proxy, ToxiproxyServer
from services.store import AssetStore
from tests.harness.lanes import Lane, free_port

SOAK = os.environ.get("XMODAL_SOAK") == "1"


def sized(short: Any, soak: Any) -> Any:
    return soak if SOAK else short


@pytest.fixture(scope="session")
def toxiproxy(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToxiproxyServer]:
    server = ToxiproxyServer(stack.s, free_port(), tmp_path_factory.mktemp("toxiproxy"))
    server.start()  # builds it first when `make install-stack` has not; a failure fails the tests
    yield server
    server.stop()


@dataclass
class WeaviateProxies:
    """Toxiproxy in front of Weaviate's REST and gRPC ports; ``env`` points a worker or gateway at them."""

    http: Proxy
    grpc: Proxy

    @property
    def both(self) -> tuple[Proxy, Proxy]:
        return self.http, self.grpc

    def env(self) -> dict[str, str]:
        return {"XMODAL_WEAVIATE__HTTP_PORT": str(self.http.port), "XMODAL_WEAVIATE__GRPC_PORT": str(self.grpc.port)}

    def down(self) -> None:
        for p in self.both:
            p.disable()

    def up(self) -> None:
        for p in self.both:
            p.enable()

    def add_toxic(self, kind: str, **attributes: int) -> None:
        for p in self.both:
            for stream in ("upstream", "downstream"):
                p.add_toxic(kind, stream=stream, **attributes)


@pytest.fixture
def weaviate_proxies(stack: LocalStack, toxiproxy: ToxiproxyServer, unique_name: str) -> Iterator[WeaviateProxies]:
    w = stack.s.weaviate
    proxies = WeaviateProxies(
        toxiproxy.api.create(f"{unique_name}-http", f"127.0.0.1:{free_port()}", f"{w.host}:{w.http_port}"),
        toxiproxy.api.create(f"{unique_name}-grpc", f"127.0.0.1:{free_port()}", f"{w.host}:{w.grpc_port}"),
    )
    yield proxies
    for p in proxies.both:
        p.delete()


@pytest.fixture
async def lane(stack: LocalStack, unique_name: str, tmp_path: Path) -> AsyncIterator[Lane]:
    lane = Lane(unique_name, tmp_path)
    await lane.create_topics()
    yield lane
    async with AssetStore(lane.weaviate, {"clip": 1}) as store:
        await store.drop_collection()


async def eventually(check: Any, what: str, timeout_s: float = 60.0) -> None:
    """Poll ``check()`` (sync) until true; generous bound, the failure says what did not happen."""
    import asyncio

    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError as exc:
            last = exc
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout_s:g}s (last error: {last!r})")
