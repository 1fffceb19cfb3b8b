"""GET /status (the page) and GET /v1/status (its JSON), over a StatusCollector the caller owns.

The page's script and style are static/status.js and static/status.css, served with the search page's
assets under /static/. The figures come from services.monitoring.status.StatusCollector, which the caller
creates, starts and stops (server.started_deps in production); without one, /v1/status answers 404
``not_configured`` and the page says so. The JSON also carries the ``golden`` section: the last run of the
gateway's golden queries (services.gateway.golden), or how to configure them, and the ``migration`` section
(services.gateway.live): a model migration's progress and which model answers, or null.

>>> from aiohttp import web
>>> app = web.Application()
>>> add_status_routes(app, None)
>>> sorted(r.resource.canonical for r in app.router.routes() if r.method == "GET")
['/status', '/v1/status']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from services.gateway.errors import DependencyDown, NotFound
from services.gateway.golden import golden_status
from services.gateway.live import LiveCollection
from services.gateway.tenancy import tenant_of
from services.monitoring.status import StatusCollector
from services.store.errors import StoreError


class TenantCounter(Protocol):
    """What the tenants section reads of the store (services.gateway.deps.SearchStore has it)."""

    async def count(self, *, tenant: str | None = None) -> int: ...

    async def tenant_counts(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class TenantStatus:
    """The tenants section of /v1/status: object counts per tenant. A tenant key sees its own tenant's row
    only, unless ``all_tenants`` (XMODAL_STATUS_ALL_TENANTS, for a status page only operators reach)."""

    store: TenantCounter
    all_tenants: bool = False

PAGE = Path(__file__).parent / "static" / "status.html"
COLLECTOR = web.AppKey("status_collector", StatusCollector)
TENANTS = web.AppKey("status_tenants", TenantStatus)
LIVE = web.AppKey("status_live", LiveCollection)  # the migration section (gateway/live.py)
#: What /v1/status says about lag per tenant: Kafka counts lag per partition, and one partition carries many
#: tenants (the Kafka key is the asset_id), so no per-tenant lag is measured; the partitions' lag bounds it.
TENANT_LAG_NOTE = ("lag is measured per partition, which all tenants share (the Kafka key is the asset_id): a "
                   "tenant's events are at most as far behind as the partitions' lag shows")
#: Paths a browser loads without credentials (the page; its assets are under the open /static/, and the
#: figures stay behind the API key).
OPEN_PATHS = frozenset({"/status"})


def add_status_routes(app: web.Application, collector: StatusCollector | None,
                      tenants: TenantStatus | None = None, live: LiveCollection | None = None) -> None:
    """Register the status routes on ``app``, reading ``collector`` (None: not configured), on a
    multi-tenant gateway the tenants' counts from ``tenants``, and a migration's progress from ``live``."""
    if collector is not None:
        app[COLLECTOR] = collector
    if live is not None:
        app[LIVE] = live
    if tenants is not None:
        app[TENANTS] = tenants
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
    body["tenants"] = await tenants_section(request)
    live = request.app.get(LIVE)
    body["migration"] = None if live is None else await live.status()
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def tenants_section(request: web.Request) -> dict[str, Any] | None:
    """Objects per tenant (None: a single-tenant gateway). Read when asked (one count per tenant shown)."""
    status = request.app.get(TENANTS)
    if status is None:
        return None
    own = tenant_of(request)
    shown = "all" if status.all_tenants or own is None else "own"
    try:
        counts = await status.store.tenant_counts() if shown == "all" else \
            {own: await status.store.count(tenant=own)}
    except (StoreError, DependencyDown) as exc:  # Weaviate away: the rest of the status still answers
        return {"shown": shown, "rows": [], "error": str(exc), "lag": TENANT_LAG_NOTE}
    rows = [{"tenant": t, "objects": n} for t, n in sorted(counts.items())]
    return {"shown": shown, "rows": rows, "lag": TENANT_LAG_NOTE}
