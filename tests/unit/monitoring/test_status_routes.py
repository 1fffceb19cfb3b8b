"""The status routes on a bare aiohttp app: the page, its assets, the JSON, and the collector's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from services.monitoring.status import StatusCollector
from services.monitoring.status_routes import OPEN_PATHS, OPEN_PREFIXES, add_status_routes
from tests.unit.monitoring.conftest import closed_port, offline_settings


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, StatusCollector]]:
    collector = StatusCollector(offline_settings(f"http://127.0.0.1:{closed_port()}/metrics", interval_s=0.05))
    app = web.Application()
    add_status_routes(app, collector)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", collector
    finally:
        await runner.cleanup()


async def test_page_assets_and_json(served: tuple[str, StatusCollector]) -> None:
    base, collector = served
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/status") as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
            html = await resp.text()
        for asset in ("/status/static/status.js", "/status/static/status.css"):
            assert asset in html
            async with http.get(base + asset) as resp:
                assert resp.status == 200, asset
        async with http.get(f"{base}/status/static/../status_routes.py") as resp:
            assert resp.status in (403, 404)
        while not collector.points:  # started with the app
            async with http.get(f"{base}/v1/status") as resp:
                body = await resp.json()
        async with http.get(f"{base}/v1/status") as resp:
            body = await resp.json()
    assert body["sampling"] is True
    assert body["workers"][0]["up"] is False
    assert {"series", "now", "kafka", "group"} <= set(body)


async def test_the_collector_stops_with_the_app() -> None:
    collector = StatusCollector(offline_settings(interval_s=0.05))
    app = web.Application()
    add_status_routes(app, collector)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    assert collector.snapshot()["sampling"] is True
    await runner.cleanup()
    assert collector.snapshot()["sampling"] is False


def test_open_paths_cover_the_page_but_not_the_figures() -> None:
    assert "/status" in OPEN_PATHS and "/v1/status" not in OPEN_PATHS
    assert "/status/static/status.js".startswith(OPEN_PREFIXES)
