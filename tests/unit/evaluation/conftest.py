"""A small in-process HTTP server that answers like a gateway: a fake for the unit tests of the runner and
the CLI (tests/integration/evaluation runs the real gateway over the real store)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer


class FakeGateway:
    """Answers /v1/search from the body: a text query ranks two assets, an image one is undecodable,
    ``rerank`` needs ``self.reranker``, ``space`` must be "clip"; the first ``busy`` searches get 429."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.busy = 0
        self.reranker = False

    async def search(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        if self.busy:
            self.busy -= 1
            return web.json_response({"error": {"code": "overloaded", "message": "full"}}, status=429,
                                     headers={"Retry-After": "0"})
        if body.get("rerank") and not self.reranker:
            return _error("rerank_unavailable", "no reranker")
        if body.get("space", "clip") != "clip":
            return _error("no_space", "space 'clap' cannot answer it")
        if "image" in body:
            return _error("undecodable", "the image cannot be decoded")
        rerank = {"name": "large", "took_ms": 2.5, "candidates": 20, "degraded": False, "reason": None}
        return web.json_response({
            "results": [{"asset_id": "b", "score": 0.9, "modality": "image", "metadata": {}},
                        {"asset_id": "a", "score": 0.8, "modality": "image", "metadata": {}}],
            "model": "builtin:shapes-clip", "space": "clip", "took_ms": 1.25,
            **({"rerank": rerank} if body.get("rerank") else {})})

    async def readyz(self, request: web.Request) -> web.Response:
        return web.json_response({"ready": True, "checks": {"store": True, "model": True},
                                  "model": "m", "spaces": {"clip": "m", "clap": "c"}})


def _error(code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=400)


async def locked(request: web.Request) -> web.Response:
    return web.json_response({}, status=401)


async def html(request: web.Request) -> web.Response:
    return web.Response(text="<html>")


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeGateway, str]]:
    gw = FakeGateway()
    app = web.Application()
    app.router.add_post("/v1/search", gw.search)
    app.router.add_get("/readyz", gw.readyz)
    app.router.add_get("/locked", locked)
    app.router.add_get("/html", html)
    async with TestServer(app) as server:
        yield gw, str(server.make_url("")).rstrip("/")



