"""Middlewares, outermost first: CORS, errors (+ metrics, deadline, body limit), API keys, admission control.

The error middleware is the only place an exception becomes a response: JSON ``{"error": {...}}`` with
the status from :func:`services.gateway.errors.classify`, never a stack trace. Unexpected exceptions are
logged with their traceback and answered 500 with a generic message.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import SecretStr

from services.config import GatewaySettings
from services.gateway import status_page
from services.gateway.admission import Admission
from services.gateway.deadline import request_deadline
from services.gateway.errors import Classified, PayloadTooLarge, Shed, Unauthorized, classify
from services.gateway.tenancy import TENANT, TenantKeys
from services.monitoring import metrics

log = logging.getLogger(__name__)

#: Routes anyone may call, with or without an API key: probes, metrics, the API description, the pages
#: and their assets (the search page's and the status page's are both under /static/).
OPEN_PATHS = (frozenset({"/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/favicon.ico"})
              | status_page.OPEN_PATHS)
OPEN_PREFIXES = ("/static/",)
#: Route names whose requests pass admission control (the ones that embed, search or publish).
LIMITED_ROUTES = frozenset({"search", "search_get", "search_upload", "publish"})

_HTTP_CODES = {
    400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type", 429: "overloaded",
}
_CORS_METHODS = "GET, POST, OPTIONS"
_CORS_HEADERS = "Content-Type, X-API-Key"


LIMITER = web.AppKey("limiter", Admission)


def error_response(c: Classified) -> web.Response:
    body: dict[str, object] = {"code": c.code, "message": c.message}
    if c.details:
        body["details"] = c.details
    resp = web.json_response({"error": body}, status=c.status)
    if c.retry_after is not None:
        resp.headers["Retry-After"] = str(max(1, round(c.retry_after)))
    return resp


def _from_http(exc: web.HTTPException) -> web.Response:
    message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
    resp = error_response(Classified(exc.status, _HTTP_CODES.get(exc.status, "http_error"), message))
    for name in ("Allow", "Retry-After"):
        if name in exc.headers:
            resp.headers[name] = exc.headers[name]
    return resp


def route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def errors_middleware(settings: GatewaySettings) -> Middleware:
    """Turns every outcome into a response, counts it, and enforces the deadline and the body limit."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = route_label(request)
        try:
            resp = await _guarded(request, handler, settings)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            resp = _from_http(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every error becomes an answer; the unexpected ones are logged
            c = classify(exc)
            if c.code == "internal":
                log.exception("unexpected error on %s %s", request.method, request.path)
            resp = _answer(request, c)
        metrics.REQUESTS.labels(route, str(resp.status)).inc()
        metrics.REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)
        return resp

    return middleware


async def _guarded(request: web.Request, handler: Handler, settings: GatewaySettings) -> web.StreamResponse:
    length = request.content_length
    if length is not None and length > settings.max_body_bytes:
        metrics.REJECTED.labels("too_large").inc()
        raise PayloadTooLarge(f"request body of {length} bytes; the limit is {settings.max_body_bytes}")
    async with request_deadline(settings.request_timeout_s):  # the query encoder counts what it cuts short
        return await handler(request)


def _answer(request: web.Request, c: Classified) -> web.Response:
    if c.status >= 500 and c.code != "internal":
        log.warning("%s %s: %s", request.method, request.path, c.message)
    if c.status == 413:
        metrics.REJECTED.labels("too_large").inc()
    elif c.status == 504:
        metrics.REJECTED.labels("timeout").inc()
    return error_response(c)


def keys_match(given: str, keys: Sequence[SecretStr]) -> bool:
    """Constant time per key, and every key is compared, so timing says nothing about which one is close."""
    supplied = given.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(supplied, key.get_secret_value().encode())
    return matched


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def auth_middleware(settings: GatewaySettings) -> Middleware:
    """Unbound keys (api_keys) or tenant keys (tenant_keys: the request then acts for the key's tenant)."""
    keys = list(settings.api_keys)
    tenants = TenantKeys(settings.tenant_keys)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (keys or tenants) and not is_open(request.path):
            given = request.headers.get("X-API-Key")
            if given is None:
                metrics.REJECTED.labels("unauthorized").inc()
                raise Unauthorized("this gateway needs an API key: send it in the X-API-Key header")
            tenant = tenants.tenant_for(given) if tenants else None
            if tenant is not None:
                request[TENANT] = tenant
            elif not keys_match(given, keys):
                metrics.REJECTED.labels("unauthorized").inc()
                raise Unauthorized("the X-API-Key is not valid")
        return await handler(request)

    return middleware


@web.middleware
async def limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.route.name not in LIMITED_ROUTES:
        return await handler(request)
    try:
        async with request.app[LIMITER].slot():
            return await handler(request)
    except Shed as exc:
        # overloaded: refused on arrival (the expected wait is over the bound); queue_timeout: waited it all
        metrics.REJECTED.labels("queue_timeout" if exc.reason == "queue_timeout" else "overloaded").inc()
        raise


def cors_middleware(origins: Sequence[str]) -> Middleware:
    allowed = frozenset(origins)

    def allow(origin: str | None) -> str | None:
        if origin is None or not allowed:
            return None
        return "*" if "*" in allowed else origin if origin in allowed else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = allow(request.headers.get("Origin"))
        preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
        if preflight and origin is not None:
            resp: web.StreamResponse = web.Response(status=204, headers={
                "Access-Control-Allow-Methods": _CORS_METHODS, "Access-Control-Allow-Headers": _CORS_HEADERS,
                "Access-Control-Max-Age": "600"})
        else:
            resp = await handler(request)
        if origin is not None:
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Access-Control-Expose-Headers"] = "Retry-After"
            if origin != "*":
                resp.headers["Vary"] = "Origin"
        return resp

    return middleware
