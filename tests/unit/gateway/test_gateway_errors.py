"""Every failure is a JSON error with the right status: validation, dependencies down, fetch refusals,
unknown routes, deadlines, and unexpected exceptions (500, generic message, no traceback)."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image

from schemas.dead_letter import Reason
from services.config import RerankSettings
from services.embedding.model import HFEmbedder
from services.errors import ConfigError, Overloaded, TransientError
from services.fetch.errors import FetchError
from services.gateway.errors import BadRequest, NotFound, classify
from services.gateway.rerankers import BiEncoderReranker
from services.store.errors import InvalidFilter, InvalidQuery, StoreError, StoreUnavailable

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., AbstractAsyncContextManager[Client]]


def png(color: tuple[int, int, int] = (0, 160, 60), size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, "PNG")
    return buf.getvalue()


async def error_of(resp: Any) -> dict[str, Any]:
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    result: dict[str, Any] = body["error"]
    return result


@pytest.mark.parametrize(("exc", "status", "code"), [
    (BadRequest("x"), 400, "invalid_request"),
    (NotFound("x"), 404, "not_found"),
    (InvalidFilter("unknown field"), 400, "invalid_query"),
    (InvalidQuery("bad space"), 400, "invalid_query"),
    (FetchError(Reason.fetch_forbidden, "private address"), 422, "fetch_forbidden"),
    (FetchError(Reason.undecodable, "not an image"), 422, "undecodable"),
    (FetchError(Reason.fetch_not_found, "404"), 422, "fetch_not_found"),
    (FetchError(Reason.too_large, "big"), 413, "too_large"),
    (FetchError(Reason.invalid_event, "bad base64"), 400, "invalid_image"),
    (Overloaded("full", retry_after=0.2), 429, "overloaded"),
    (StoreUnavailable("down"), 503, "unavailable"),
    (TransientError("kafka down"), 503, "unavailable"),
    (ConfigError("no model"), 503, "misconfigured"),
    (TimeoutError(), 504, "timeout"),
    (StoreError("weird"), 500, "internal"),
    (RuntimeError("bug"), 500, "internal"),
])
def test_classify(exc: BaseException, status: int, code: str) -> None:
    c = classify(exc)
    assert (c.status, c.code) == (status, code)
    if status == 429:
        assert c.retry_after is not None
        assert c.retry_after >= 1


async def test_validation_error_names_the_field(client: Client) -> None:
    resp = await client.post("/v1/search", json={"text": "x", "filters": {"and": [{"field": "n", "gt": "5"}]}})
    assert resp.status == 400
    err = await error_of(resp)
    assert err["code"] == "invalid_request"
    assert [d["path"] for d in err["details"]] == ["body.filters.and[0].gt"]
    assert err["message"].startswith("body.filters.and[0].gt: ")


@pytest.mark.parametrize(("body", "path"), [
    ({"text": "x", "limit": 500}, "body.limit"),
    ({"image": {"data": "aGk=", "extra": 1}}, "body.image.extra"),
    ({"text": "x", "modifier": {"text": "g", "weight": 2}}, "body.modifier.weight"),
    ({"text": "x", "asset_id": "a"}, "body"),
])
async def test_validation_paths(client: Client, body: dict[str, Any], path: str) -> None:
    resp = await client.post("/v1/search", json=body)
    assert resp.status == 400
    assert path in [d["path"] for d in (await error_of(resp))["details"]]


async def test_malformed_json_and_empty_body_are_400(client: Client) -> None:
    headers = {"Content-Type": "application/json"}
    for data in ("{bad", "", "[1, 2]", "null"):
        resp = await client.post("/v1/search", data=data, headers=headers)
        assert resp.status == 400, data
        await error_of(resp)


async def test_wrong_content_type_is_415(client: Client) -> None:
    resp = await client.post("/v1/search", data="text=x", headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    assert (await error_of(resp))["code"] == "unsupported_media_type"
    resp = await client.post("/v1/search/upload", json={"text": "x"})
    assert resp.status == 415


async def test_unknown_route_404_and_wrong_method_405(client: Client) -> None:
    resp = await client.get("/v2/nothing")
    assert resp.status == 404
    assert (await error_of(resp))["code"] == "not_found"
    resp = await client.delete("/v1/search")
    assert resp.status == 405
    assert (await error_of(resp))["code"] == "method_not_allowed"
    assert set(resp.headers["Allow"].split(",")) == {"GET", "POST"}


async def test_store_down_is_503(client: Client) -> None:
    for resp in (await client.post("/v1/search", json={"text": "a red circle"}),
                 await client.get("/v1/search", params={"q": "red"}),
                 await client.get("/v1/assets/a")):
        assert resp.status == 503
        assert (await error_of(resp))["code"] == "unavailable"
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["checks"] == {"store": False, "model": True}


async def test_publish_without_kafka_is_503(client: Client) -> None:
    event = {"schema_version": 1, "asset_id": "a", "modality": "text", "text": "hi",
             "event_time": "2026-01-01T00:00:00Z"}
    resp = await client.post("/v1/assets", json=event)
    assert resp.status == 503
    resp = await client.post("/v1/assets", json={**event, "modality": "hologram"})
    assert resp.status == 400
    assert (await error_of(resp))["details"][0]["path"] == "body.modality"


async def test_image_problems_are_4xx_with_the_fetch_reason(client: Client) -> None:
    cases = [
        ({"image": {"uri": "http://127.0.0.1/a.png"}}, 422, "fetch_forbidden"),
        ({"image": {"uri": "http://10.1.2.3/a.png"}}, 422, "fetch_forbidden"),
        ({"image": {"uri": "file:///etc/passwd"}}, 422, "fetch_forbidden"),
        ({"image": {"data": base64.b64encode(b"not an image").decode()}}, 422, "undecodable"),
        ({"image": {"data": "%%%"}}, 400, "invalid_image"),
        ({"image": {"uri": "data:image/png;base64," + base64.b64encode(b"GIF8").decode()}}, 422, "undecodable"),
    ]
    for body, status, code in cases:
        resp = await client.post("/v1/search", json=body)
        err = await error_of(resp)
        assert (resp.status, err["code"]) == (status, code), (body, err)


async def test_rerank_without_a_reranker_is_400(client: Client) -> None:
    resp = await client.post("/v1/search", json={"text": "x", "rerank": True})
    assert resp.status == 400
    err = await error_of(resp)
    assert err["code"] == "rerank_unavailable"
    assert "no reranker (XMODAL_RERANK__KIND is none" in err["message"]
    assert (await client.post("/v1/search", json={"text": "x", "rerank": False})).status == 503  # store down


async def test_rerank_top_n_is_bounded_by_the_settings(make_client: ClientFactory,
                                                       tiny_embedder: HFEmbedder) -> None:
    reranker = BiEncoderReranker(tiny_embedder, max_batch=8, cache_size=8)
    async with make_client(reranker=reranker, rerank=RerankSettings(max_top_n=30)) as client:
        resp = await client.post("/v1/search", json={"text": "x", "rerank": True, "rerank_top_n": 31})
        err = await error_of(resp)
        assert (resp.status, err["code"]) == (400, "invalid_request")
        assert "at most 30 results (XMODAL_RERANK__MAX_TOP_N)" in err["message"]
        assert err["details"] == [{"path": "body.rerank_top_n", "message": "must be <= 30"}]
        for bad in (0, 1001, "5"):
            resp = await client.post("/v1/search", json={"text": "x", "rerank": True, "rerank_top_n": bad})
            assert resp.status == 400, bad
            assert (await error_of(resp))["details"][0]["path"] == "body.rerank_top_n"
        # valid: the first stage runs, and the store is down here
        resp = await client.post("/v1/search", json={"text": "x", "rerank": True, "rerank_top_n": 30})
        assert (resp.status, (await error_of(resp))["code"]) == (503, "unavailable")


async def test_hybrid_needs_text(client: Client) -> None:
    resp = await client.post("/v1/search", json={"asset_id": "a", "mode": "hybrid"})
    assert resp.status == 400
    assert "hybrid" in (await error_of(resp))["message"]


async def test_upload_needs_an_image_field(client: Client) -> None:
    resp = await client.post("/v1/search/upload", data={"target": "image"})  # urlencoded: not multipart
    assert resp.status == 415
    form = {"query": '{"limit": 3}', "other": "x"}
    resp = await client.post("/v1/search/upload", data=form, headers={"Content-Type": "multipart/form-data"})
    assert resp.status == 400


async def test_upload_form_errors(client: Client) -> None:
    import aiohttp

    def form(**fields: str) -> aiohttp.FormData:
        f = aiohttp.FormData()
        f.add_field("image", png(), filename="a.png", content_type="image/png")
        for k, v in fields.items():
            f.add_field(k, v)
        return f

    cases = [({"query": "{not json"}, "form.query"), ({"query": "[1]"}, "form.query"),
             ({"limit": "0"}, "form.limit"), ({"filters": "{"}, "form.filters"),
             ({"query": '{"text": "x"}'}, "form.text")]
    for fields, path in cases:
        resp = await client.post("/v1/search/upload", data=form(**fields))
        assert resp.status == 400, fields
        assert path in [d["path"] for d in (await error_of(resp))["details"]], fields
    resp = await client.post("/v1/search/upload", data=form(query='{"limit": 3}', target="image"))
    assert resp.status == 503  # valid: it reaches the (unconnected) store


async def test_unexpected_exception_is_a_generic_500_and_logged(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals /etc/xmodal")

    async with make_client(routes=[web.get("/boom", boom)]) as c:
        with caplog.at_level(logging.ERROR, logger="services.gateway.middleware"):
            resp = await c.get("/boom")
        text = await resp.text()
    assert resp.status == 500
    assert "secret" not in text
    assert "Traceback" not in text
    assert (await error_of(resp))["code"] == "internal"
    assert any("RuntimeError" in (r.exc_text or "") for r in caplog.records)


async def test_deadline_is_504(make_client: ClientFactory) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(60)
        return web.Response()

    async with make_client(routes=[web.get("/slow", slow)], request_timeout_s=0.05) as c:
        resp = await c.get("/slow")
        assert resp.status == 504
        assert (await error_of(resp))["code"] == "timeout"


def test_fetch_messages_lose_python_object_reprs() -> None:
    c = classify(FetchError(Reason.undecodable, "cannot identify image file <_io.BytesIO object at 0x7f00ab>"))
    assert c.message == "cannot identify image file"
