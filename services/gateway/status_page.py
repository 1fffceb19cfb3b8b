"""GET /status (the page) and GET /v1/status (its JSON), over a StatusCollector the caller owns.

The page's script and style are static/status.js and static/status.css, served with the search page's
assets under /static/. The figures come from services.monitoring.status.StatusCollector, which the caller
creates, starts and stops (server.started_deps in production); without one, /v1/status answers 404
``not_configured`` and the page says so. The JSON also carries the ``golden`` section: the last run of the
gateway's golden queries (services.gateway.golden), or how to configure them.

>>> from aiohttp import web
>>> app = web.Application()
>>> add_status_routes(app, None)
>>> sorted(r.resource.canonical for r in app.router.routes() if r.method == "GET")
['/status', '/v1/status']
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services.gateway.errors import NotFound
from services.gateway.golden import golden_status
from services.monitoring.status import StatusCollector

PAGE = Path(__file__).parent / "static" / "status.html"
COLLECTOR = web.AppKey("status_collector", StatusCollector)
#: Paths a browser loads without credentials (the page; its assets are under the open /static/, and the
#: figures stay behind the API key).
OPEN_PATHS = frozenset({"/status"})


def add_status_routes(app: web.Application, collector: StatusCollector | None) -> None:
    """Register the status routes on ``app``, reading ``collector`` (None: not configured)."""
    if collector is not None:
        app[COLLECTOR] = collector
    r = app.router
    r.add_get("/status", status_page, name="status_page", allow_head=False)
    r.add_get("/v1/status", status_json, name="status", allow_head=False)


async def status_page(request: web.Request) -> web.StreamResponse:
    # no-cache: the page is tiny and must pick up new assets after a deploy
    return web.FileResponse(PAGE, headers={"Cache-Control": "no-cache"})


async def status_json(request: web.Request) -> web.Response:
    collector = request.app.get(COLLECTOR)
    if collector is None:
        raise NotFound("this gateway collects no status figures: it was started without a StatusCollector",
                       code="not_configured")
    body = collector.snapshot()
    body["golden"] = golden_status(request.app)
    return web.json_response(body, headers={"Cache-Control": "no-store"})
