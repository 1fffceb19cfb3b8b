"""GET /status (the page), GET /v1/status (its JSON), and the collector's life tied to the app's.

>>> from aiohttp import web
>>> from services.config import GatewaySettings
>>> app = web.Application()
>>> add_status_routes(app, StatusCollector(GatewaySettings()))
>>> sorted(r.resource.canonical for r in app.router.routes() if r.method == "GET")
['/status', '/status/static', '/v1/status']
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from services.monitoring.status import StatusCollector

STATIC_DIR = Path(__file__).parent / "static"
COLLECTOR = web.AppKey("status_collector", StatusCollector)
#: Paths a browser loads without credentials (the page and its assets; the figures stay behind the API key).
OPEN_PATHS = frozenset({"/status"})
OPEN_PREFIXES = ("/status/static/",)


def add_status_routes(app: web.Application, collector: StatusCollector) -> None:
    """Register the status routes on ``app`` and sample while the app runs."""
    app[COLLECTOR] = collector
    r = app.router
    r.add_get("/status", status_page, name="status_page", allow_head=False)
    r.add_get("/v1/status", status_json, name="status", allow_head=False)
    r.add_static("/status/static/", STATIC_DIR, name="status_static", append_version=False)
    app.cleanup_ctx.append(_sampling)


async def _sampling(app: web.Application) -> AsyncIterator[None]:
    collector = app[COLLECTOR]
    await collector.start()
    yield
    await collector.stop()


async def status_page(request: web.Request) -> web.StreamResponse:
    # no-cache: the page is tiny and must pick up new assets after a deploy
    return web.FileResponse(STATIC_DIR / "status.html", headers={"Cache-Control": "no-cache"})


async def status_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[COLLECTOR].snapshot(), headers={"Cache-Control": "no-store"})
