"""Fixtures shared by the integration tests: a real Toxiproxy (built by `make install-stack`) in front of Weaviate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.localstack import LocalStack
from services.localstack.toxiproxy import ToxiproxyServer
from tests.harness.faults import WeaviateProxies
from tests.harness.lanes import free_port


@pytest.fixture(scope="session")
def toxiproxy(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToxiproxyServer]:
    server = ToxiproxyServer(stack.s, free_port(), tmp_path_factory.mktemp("toxiproxy"))
    server.start()  # builds it first when `make install-stack` has not; a failure fails the tests
    yield server
    server.stop()


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
