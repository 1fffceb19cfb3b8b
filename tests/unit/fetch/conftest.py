"""Fixtures of the fetch tests: a real aiohttp server on 127.0.0.1 and a loopback-only network.

The network rule of these tests: no packet to a non-loopback address and no real DNS lookup. The autouse
``network`` fixture wraps the event loop's ``getaddrinfo`` and ``sock_connect`` (the two calls every aiohttp
client connection goes through), records them, serves made-up DNS answers for names a test registers, and
refuses -- before any socket connects -- whatever breaks the rule; a test that tried fails at teardown.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from services.config import FetchSettings
from services.fetch.guard import parse_ip_literal

LOCAL_ONLY = ["127.0.0.1/32"]  # the test server; nothing else is allowed by default
MAX_BYTES = 64 * 1024


@dataclass
class Network:
    """What the code under test asked of the network.

    ``dns[name]``: successive made-up answers (the last one repeats; an empty one means "no such name").
    """

    dns: dict[str, list[list[str]]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)
    connects: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def answer(self, name: str) -> list[str]:
        answers = self.dns[name]
        return answers.pop(0) if len(answers) > 1 else answers[0]


def _is_loopback_literal(host: str) -> bool:
    ip = parse_ip_literal(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip is not None and ip.is_loopback


@pytest.fixture(autouse=True)
async def network(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Network]:
    loop = asyncio.get_running_loop()
    net = Network()
    real_getaddrinfo = loop.getaddrinfo
    real_sock_connect = loop.sock_connect

    async def getaddrinfo(host: Any, port: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        net.lookups.append(name)
        if name in net.dns:
            answer = net.answer(name)
            if not answer:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [_addrinfo(addr, int(port or 0)) for addr in answer]
        if name == "localhost" or parse_ip_literal(name) is not None:
            return list(await real_getaddrinfo(host, port, **kwargs))  # /etc/hosts or numeric: no traffic
        net.violations.append(f"real DNS lookup of {name!r}")
        raise socket.gaierror(socket.EAI_NONAME, "refused by the test's network fixture")

    async def sock_connect(sock: socket.socket, address: Any) -> None:
        host = str(address[0])
        net.connects.append(host)
        if not _is_loopback_literal(host.split("%", maxsplit=1)[0]):
            net.violations.append(f"connect to {host}")
            raise ConnectionRefusedError(f"the test's network fixture refused a connect to {host}")
        await real_sock_connect(sock, address)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(loop, "sock_connect", sock_connect)
    yield net
    assert not net.violations, net.violations


def _addrinfo(addr: str, port: int) -> tuple[Any, ...]:
    if ipaddress.ip_address(addr).version == 6:
        return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (addr, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (addr, port))


@dataclass
class Server:
    port: int
    hits: Counter[str]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _routes(hits: Counter[str], payloads: dict[str, bytes]) -> list[web.RouteDef]:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(body=b"hello")

    async def sized(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.match_info["n"]))

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]))

    async def flaky(request: web.Request) -> web.Response:
        # The first `fails` requests of a key fail with 503, later ones succeed.
        if hits[request.path] <= int(request.match_info["fails"]):
            return web.Response(status=503)
        return web.Response(body=b"recovered")

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()  # no Content-Length: chunked, ends only when the client goes away
        await resp.prepare(request)
        chunk = b"z" * 16384
        try:
            while True:
                await resp.write(chunk)
        except ConnectionError:  # the client stopped reading and closed: what the test wants
            return resp

    async def redirect(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])  # n redirects in all, the last one to /ok
        raise web.HTTPFound("/ok" if n <= 1 else f"/redirect/{n - 1}")

    async def redirect_to(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["url"])

    async def relative(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("../ok")

    async def no_location(request: web.Request) -> web.Response:
        return web.Response(status=302)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(60)  # cancelled when the client gives up (handler_cancellation)
        return web.Response(body=b"late")

    async def payload(request: web.Request) -> web.Response:
        return web.Response(body=payloads[request.match_info["name"]])

    return [
        web.get("/ok", ok), web.get("/bytes/{n}", sized), web.get("/status/{code}", status),
        web.get("/flaky/{key}/{fails}", flaky), web.get("/endless", endless),
        web.get("/redirect/{n}", redirect), web.get("/redirect-to", redirect_to),
        web.get("/a/relative", relative), web.get("/no-location", no_location), web.get("/slow", slow),
        web.get("/payload/{name}", payload),
    ]


@pytest.fixture(scope="session")
def payloads() -> dict[str, bytes]:
    """Bodies tests put up for GET /payload/{name}."""
    return {}


@pytest.fixture(scope="session")
async def server(payloads: dict[str, bytes]) -> AsyncIterator[Server]:
    hits: Counter[str] = Counter()

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        hits[request.path] += 1
        return await handler(request)

    app = web.Application(middlewares=[count])
    app.add_routes(_routes(hits, payloads))
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield Server(port=port, hits=hits)
    await runner.cleanup()


@pytest.fixture
def settings() -> FetchSettings:
    """Small limits and the test server allow-listed; tests copy it with model_copy(update=...)."""
    return FetchSettings(
        allow_networks=LOCAL_ONLY, max_bytes=MAX_BYTES, retries=2, max_redirects=3,
        connect_timeout_s=2.0, read_timeout_s=5.0,
    )
