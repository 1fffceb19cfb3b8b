"""The status page in the gateway app: the page and its assets, the JSON of the collector it was given, "not
configured" without one, what the API keys leave open, and that the app never starts a collector itself.

The collectors here are never started, so nothing samples Kafka or a worker: no network at all.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from services.config import GatewaySettings
from services.gateway.middleware import is_open
from services.gateway.routes import DEPS
from services.gateway.status_page import OPEN_PATHS
from services.monitoring.status import Point, StatusCollector

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., AbstractAsyncContextManager[Client]]
KEY = SecretStr("status-key")


def idle_collector() -> StatusCollector:
    """A real collector that is never started (its settings name no reachable Kafka or worker)."""
    return StatusCollector(GatewaySettings(worker_metrics_urls=[]), window_s=60)


async def test_page_assets_and_json(make_client: ClientFactory) -> None:
    collector = idle_collector()
    collector.points.append(Point(t=100.0, lag={0: 3, 1: 4}, throughput=12.5, incoming=10.0, freshness=None))
    async with make_client(status=collector) as c:
        resp = await c.get("/status")
        assert resp.status == 200 and resp.content_type == "text/html"
        assert resp.headers["Cache-Control"] == "no-cache"
        html = await resp.text()
        for asset in ("/static/status.js", "/static/status.css"):
            assert asset in html
            assert (await c.get(asset)).status == 200, asset
        assert 'id="paused-pill"' in html and "Retries by cause" in html
        script = await (await c.get("/static/status.js")).text()
        assert "workers_paused" in script and "retries_interval" in script  # the fields the JSON carries
        assert (await c.get("/static/../status_page.py")).status in (403, 404)
        resp = await c.get("/v1/status")
        assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
        body = await resp.json()
    assert body["sampling"] is False  # the app does not start the collector
    assert body["series"]["total_lag"] == [7] and body["now"]["total_lag"] == 7
    assert {"series", "now", "kafka", "group", "workers"} <= set(body)
    assert body["now"]["workers_paused"] == 0 and body["now"]["retries_interval"] == {}


async def test_without_a_collector_the_figures_are_not_configured(make_client: ClientFactory) -> None:
    async with make_client() as c:
        assert c.app[DEPS].status is None
        assert (await c.get("/status")).status == 200  # the page loads and shows the reason
        resp = await c.get("/v1/status")
        assert resp.status == 404
        error = (await resp.json())["error"]
    assert error["code"] == "not_configured"
    assert "StatusCollector" in error["message"]


async def test_api_keys_leave_the_page_open_but_not_the_figures(make_client: ClientFactory) -> None:
    async with make_client(api_keys=[KEY], status=idle_collector()) as c:
        for path in ("/status", "/static/status.js", "/static/status.css"):
            assert (await c.get(path)).status == 200, path
        assert (await c.get("/v1/status")).status == 401
        assert (await c.get("/v1/status", headers={"X-API-Key": KEY.get_secret_value()})).status == 200


def test_open_paths_cover_the_page_but_not_the_figures() -> None:
    assert "/status" in OPEN_PATHS
    assert is_open("/status") and is_open("/static/status.js")
    assert not is_open("/v1/status")


async def test_the_app_never_starts_the_collector(make_client: ClientFactory) -> None:
    collector = idle_collector()  # in production server.started_deps starts and stops it
    async with make_client(status=collector) as c:
        assert (await c.get("/v1/status")).status == 200
        assert collector.snapshot()["sampling"] is False
    assert not collector.points  # never sampled
