"""Safety: API keys, admission control (429 with Retry-After), body and upload limits, CORS."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image
from pydantic import SecretStr

from services.gateway.encoder import QueryEncoder
from services.gateway.middleware import LIMITER, keys_match
from services.gateway.routes import DEPS
from services.monitoring import metrics

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., AbstractAsyncContextManager[Client]]
KEYS = [SecretStr("first-key"), SecretStr("second-key")]
TEXT_SEARCH = {"text": "a red circle"}


def counter(c: Any, *labels: str) -> float:
    value: float = c.labels(*labels)._value.get()
    return value


# -- API keys ------------------------------------------------------------------------------------------


def test_keys_match() -> None:
    assert keys_match("first-key", KEYS)
    assert keys_match("second-key", KEYS)
    assert not keys_match("first-ke", KEYS)
    assert not keys_match("", KEYS)
    assert not keys_match("first-key ", KEYS)


@pytest.fixture
async def keyed(make_client: ClientFactory) -> AsyncIterator[Client]:
    async with make_client(api_keys=KEYS) as c:
        yield c


async def test_missing_or_wrong_key_is_401(keyed: Client) -> None:
    before = counter(metrics.REJECTED, "unauthorized")
    resp = await keyed.post("/v1/search", json=TEXT_SEARCH)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"
    assert "X-API-Key" in (await resp.json())["error"]["message"]
    for path in ("/v1/assets/a", "/v1/assets/a/thumbnail", "/v1/search?q=x"):
        assert (await keyed.get(path, headers={"X-API-Key": "nope"})).status == 401
    assert counter(metrics.REJECTED, "unauthorized") == before + 4


async def test_a_valid_key_passes(keyed: Client) -> None:
    for key in ("first-key", "second-key"):
        resp = await keyed.post("/v1/search", json=TEXT_SEARCH, headers={"X-API-Key": key})
        assert resp.status == 503  # past auth: the (unconnected) store answers


async def test_probes_metrics_docs_and_page_stay_open(keyed: Client) -> None:
    for path in ("/healthz", "/metrics", "/openapi.json", "/", "/static/app.js", "/static/app.css"):
        assert (await keyed.get(path)).status == 200, path
    assert (await keyed.get("/readyz")).status == 503  # open, and honest: the store is down


async def test_no_keys_configured_means_no_auth(client: Client) -> None:
    assert (await client.post("/v1/search", json=TEXT_SEARCH)).status == 503


# -- concurrency limit ----------------------------------------------------------------------------------


async def test_full_limiter_answers_429_at_once(make_client: ClientFactory) -> None:
    async with make_client(max_concurrency=2, max_queue_wait_s=0) as c:
        limiter = c.app[LIMITER]
        assert limiter.try_acquire()
        assert limiter.try_acquire()  # every permit held: the gateway is "full"
        before = counter(metrics.REJECTED, "overloaded")
        try:
            for call in (c.post("/v1/search", json=TEXT_SEARCH), c.get("/v1/search?q=red"),
                         c.post("/v1/assets", json={})):
                resp = await call
                assert resp.status == 429
                assert resp.headers["Retry-After"] == "1"
                error = (await resp.json())["error"]
                assert error["code"] == "overloaded"
                assert error["details"][0]["reason"] == "expected_wait"
            # probes and asset reads are not limited
            assert (await c.get("/healthz")).status == 200
            assert (await c.get("/v1/assets/a")).status == 503
        finally:
            limiter.release()
        assert counter(metrics.REJECTED, "overloaded") == before + 3
        resp = await c.post("/v1/search", json=TEXT_SEARCH)
        assert resp.status == 503  # one permit free again: admitted (then the store is down)
        limiter.release()
        assert limiter.in_flight == 0  # permits of finished requests were given back


async def test_a_search_that_waited_its_bound_is_shed_as_queue_timeout(make_client: ClientFactory) -> None:
    async with make_client(max_concurrency=1, max_queue_wait_s=0.02) as c:
        limiter = c.app[LIMITER]
        assert limiter.try_acquire()  # the one slot is held: searches join the line and wait 20 ms
        before = counter(metrics.REJECTED, "queue_timeout")
        try:
            resp = await c.post("/v1/search", json=TEXT_SEARCH)
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "1"
            error = (await resp.json())["error"]
            assert (error["code"], error["details"][0]["reason"]) == ("overloaded", "queue_timeout")
        finally:
            limiter.release()
        assert counter(metrics.REJECTED, "queue_timeout") == before + 1
        assert (limiter.in_flight, limiter.queued) == (0, 0)


# -- body limits ------------------------------------------------------------------------------------------


def png_bytes(size: int) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((size, size), 64).convert("RGB").save(buf, "PNG")
    return buf.getvalue()


async def test_large_json_body_is_413(make_client: ClientFactory) -> None:
    async with make_client(max_body_bytes=4096) as c:
        resp = await c.post("/v1/search", json={"text": "x", "image": {"data": "A" * 10_000}})
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "too_large"


async def test_chunked_body_past_the_limit_is_413(make_client: ClientFactory) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "x", "image": {"data": "'
        for _ in range(20):
            yield b"A" * 1024
        yield b'"}}'

    async with make_client(max_body_bytes=4096) as c:
        resp = await c.post("/v1/search", data=chunks(), headers={"Content-Type": "application/json"})
        assert resp.status == 413


async def test_large_upload_is_413(make_client: ClientFactory) -> None:
    image = png_bytes(128)
    assert len(image) > 4096
    async with make_client(max_body_bytes=4096) as c:
        form = aiohttp.FormData()
        form.add_field("image", image, filename="a.png", content_type="image/png")
        resp = await c.post("/v1/search/upload", data=form)
        assert resp.status == 413

        async def chunked_form() -> AsyncIterator[bytes]:
            yield (b"--B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
                   b"Content-Type: image/png\r\n\r\n")
            for i in range(0, len(image), 1024):
                yield image[i : i + 1024]
            yield b"\r\n--B--\r\n"

        resp = await c.post("/v1/search/upload", data=chunked_form(),
                            headers={"Content-Type": "multipart/form-data; boundary=B"})
        assert resp.status == 413


async def test_image_past_max_pixels_is_413(make_client: ClientFactory) -> None:
    async with make_client(fetch={"max_pixels": 100}) as c:
        form = aiohttp.FormData()
        form.add_field("image", png_bytes(32), filename="a.png", content_type="image/png")
        resp = await c.post("/v1/search/upload", data=form)
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "too_large"


# -- CORS -----------------------------------------------------------------------------------------------------


async def test_cors_preflight_and_headers(make_client: ClientFactory) -> None:
    async with make_client(cors_origins=["https://app.example"], api_keys=KEYS) as c:
        pre = await c.options("/v1/search", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-api-key"})
        assert pre.status == 204  # a preflight carries no key and must not need one
        assert pre.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "X-API-Key" in pre.headers["Access-Control-Allow-Headers"]
        assert "POST" in pre.headers["Access-Control-Allow-Methods"]
        err = await c.post("/v1/search", json=TEXT_SEARCH, headers={"Origin": "https://app.example"})
        assert err.status == 401
        assert err.headers["Access-Control-Allow-Origin"] == "https://app.example"  # errors are readable
        other = await c.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in other.headers


async def test_cors_wildcard_and_off(make_client: ClientFactory) -> None:
    async with make_client(cors_origins=["*"]) as c:
        resp = await c.get("/healthz", headers={"Origin": "https://any.example"})
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    async with make_client() as c:
        resp = await c.get("/healthz", headers={"Origin": "https://any.example"})
        assert "Access-Control-Allow-Origin" not in resp.headers
        pre = await c.options("/v1/search", headers={
            "Origin": "https://any.example", "Access-Control-Request-Method": "POST"})
        assert pre.status == 405


# -- page, probes, metrics -------------------------------------------------------------------------------------


async def test_page_and_static_files(client: Client) -> None:
    page = await client.get("/")
    assert page.status == 200
    assert page.content_type == "text/html"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    html = await page.text()
    assert '<script src="/static/app.js"' in html
    for path, kind in (("/static/app.js", "javascript"), ("/static/app.css", "text/css")):
        resp = await client.get(path)
        assert resp.status == 200
        assert kind in resp.content_type
    assert (await client.get("/static/../server.py")).status in (403, 404)


async def test_healthz_and_metrics(client: Client) -> None:
    assert await (await client.get("/healthz")).json() == {"status": "ok"}
    await client.get("/v2/unknown")
    text = await (await client.get("/metrics")).text()
    assert "xmodal_http_requests_total" in text
    assert 'route="/healthz",status="200"' in text
    assert 'route="unmatched",status="404"' in text


# -- query embedding: cache and queue ------------------------------------------------------------------------


async def test_repeated_text_queries_hit_the_cache(client: Client) -> None:
    hits, misses = counter(metrics.QUERY_CACHE, "hit"), counter(metrics.QUERY_CACHE, "miss")
    body = {"text": f"a cached query {id(client)}"}
    for _ in range(3):
        assert (await client.post("/v1/search", json=body)).status == 503  # embedded, then the store is down
    assert counter(metrics.QUERY_CACHE, "miss") == misses + 1
    assert counter(metrics.QUERY_CACHE, "hit") == hits + 2


async def test_full_query_queue_answers_429(make_client: ClientFactory) -> None:
    import asyncio

    # One queued query fills the queue; it waits for its batch to fill (30 s), so it stays queued.
    async with make_client(query_queue_max=1, query_batch_wait_s=30, request_timeout_s=60) as c:
        encoder = c.app[DEPS].encoders["clip"]
        assert isinstance(encoder, QueryEncoder)
        first = asyncio.create_task(c.post("/v1/search", json={"text": "the first query"}))
        for _ in range(1000):
            if encoder.texts.depth == 1:
                break
            await asyncio.sleep(0.01)
        assert encoder.texts.depth == 1
        assert metrics.QUERY_QUEUE_DEPTH.labels("text")._value.get() == 1
        overloaded = counter(metrics.QUERY_FAILURES, "overloaded")
        resp = await c.post("/v1/search", json={"text": "the second query"})
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1
        assert (await resp.json())["error"]["code"] == "overloaded"
        assert counter(metrics.QUERY_FAILURES, "overloaded") == overloaded + 1
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first


async def test_a_query_cut_short_by_the_deadline_counts_a_timeout(make_client: ClientFactory) -> None:
    import asyncio

    # The query waits for its batch to fill (30 s); the request's deadline (0.05 s) passes first.
    async with make_client(query_batch_wait_s=30, request_timeout_s=0.05) as c:
        encoder = c.app[DEPS].encoders["clip"]
        timeouts = counter(metrics.QUERY_FAILURES, "timeout")
        resp = await c.post("/v1/search", json={"text": "a query that waits too long"})
        assert resp.status == 504
        assert (await resp.json())["error"]["code"] == "timeout"
        assert counter(metrics.QUERY_FAILURES, "timeout") == timeouts + 1
        for _ in range(100):  # the batcher drops the caller that went away, without waiting for its batch
            if encoder.texts.depth == 0:
                break
            await asyncio.sleep(0)
        assert encoder.texts.depth == 0
        assert metrics.QUERY_QUEUE_DEPTH.labels("text")._value.get() == 0
