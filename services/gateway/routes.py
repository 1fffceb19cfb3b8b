"""HTTP handlers. They parse and validate, call the Searcher or the store, and return JSON; errors are
raised and answered by the error middleware."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from schemas.asset_event import AssetEvent
from services.gateway.deps import Deps
from services.gateway.errors import (
    BadRequest,
    DependencyDown,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from services.gateway.models import (
    AssetResponse,
    Health,
    PublishResponse,
    Readiness,
    SearchRequest,
    SourceOffset,
    UploadOptions,
    dump,
)
from services.gateway.query import Query, Searcher, thumbnail_url
from services.gateway.tenancy import check_event_tenant, tenant_of
from services.store import parse_model_ids

STATIC_DIR = Path(__file__).parent / "static"
DEPS = web.AppKey("deps", Deps)
SEARCHER = web.AppKey("searcher", Searcher)
OPENAPI = web.AppKey("openapi", dict[str, Any])
M = TypeVar("M", bound=BaseModel)

#: Form fields of an upload that hold JSON (the rest are plain values).
_JSON_FORM_FIELDS = frozenset({"modifier", "filters", "consistent_with"})
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-cache",
}


def add_routes(app: web.Application) -> None:
    # No implicit HEAD routes: the API is exactly what /openapi.json documents.
    r = app.router
    r.add_get("/", index, name="index", allow_head=False)
    r.add_get("/healthz", healthz, name="healthz", allow_head=False)
    r.add_get("/readyz", readyz, name="readyz", allow_head=False)
    r.add_get("/metrics", metrics_text, name="metrics", allow_head=False)
    r.add_get("/openapi.json", openapi, name="openapi", allow_head=False)
    r.add_post("/v1/search", search, name="search")
    r.add_get("/v1/search", search_get, name="search_get", allow_head=False)
    r.add_post("/v1/search/upload", search_upload, name="search_upload")
    r.add_post("/v1/assets", publish, name="publish")
    r.add_get("/v1/assets/{asset_id}/thumbnail", thumbnail, name="thumbnail", allow_head=False)
    r.add_get("/v1/assets/{asset_id}/preview", thumbnail, name="preview", allow_head=False)
    r.add_get("/v1/assets/{asset_id}/video", video, name="video", allow_head=False)
    r.add_get("/v1/assets/{asset_id}", get_asset, name="asset", allow_head=False)
    r.add_static("/static/", STATIC_DIR, name="static", append_version=False)


# -- validation helpers --------------------------------------------------------------------------------


#: Labels pydantic puts in an error's location for the member of a union it tried (not JSON keys).
_UNION_LABELS = frozenset({"str", "bool", "int", "float", "none", "condition", "Modifier", "ImageData",
                           "ImageUri", "AudioData", "AudioUri", "OffsetRef", "And", "Or", "Condition"})


def _loc(prefix: str, loc: tuple[int | str, ...]) -> str:
    """The JSON path of a pydantic error location: body.filters.and[0].gt, not the union members tried."""
    parts = [prefix]
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif p in _UNION_LABELS or "[" in p or p.startswith("constrained-"):
            continue
        elif p in ("and", "or") and parts[-1] == f".{p}":
            continue  # the filter union's tag, right before the key of the same name
        else:
            parts.append(f".{p}")
    return "".join(parts)


def invalid(exc: ValidationError, prefix: str = "body") -> BadRequest:
    errors = exc.errors(include_url=False)
    # "Input should be null" is the other branch of an optional field: noise next to the real error.
    real = [e for e in errors if e["type"] != "none_required"] or errors
    details = [{"path": _loc(prefix, tuple(e["loc"])), "message": e["msg"]} for e in real[:10]]
    first = details[0] if details else {"path": prefix, "message": "invalid"}
    return BadRequest(f"{first['path']}: {first['message']}", details=details)


async def json_body(request: web.Request) -> bytes:
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"send JSON with Content-Type: application/json (got {request.content_type!r})")
    body = await request.read()  # client_max_size bounds it: 413 past the limit
    if not body.strip():
        raise BadRequest("the request body is empty; send a JSON object")
    return body


def _validate_json(model: type[M], body: bytes) -> M:
    try:
        # Strict: "10" is not a number and "true" not a boolean in JSON, as the OpenAPI schema says.
        return model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise invalid(exc) from None


# -- probes and documents --------------------------------------------------------------------------------


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response(dump(Health(status="ok")))


async def readyz(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    spaces = {space: enc.model_id for space, enc in deps.encoders.items()}
    checks = {"store": await deps.store.ready(), "model": bool(spaces) and all(spaces.values())}
    ready = all(checks.values())
    body = Readiness(ready=ready, checks=checks, model=next(iter(spaces.values()), None), spaces=spaces)
    return web.json_response(dump(body), status=200 if ready else 503)


async def metrics_text(request: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest())
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


# -- search -------------------------------------------------------------------------------------------------


async def search(request: web.Request) -> web.Response:
    req = _validate_json(SearchRequest, await json_body(request))
    result = await request.app[SEARCHER].search(Query.of(req, tenant=tenant_of(request)))
    return web.json_response(dump(result))


async def search_get(request: web.Request) -> web.Response:
    params = request.query
    if "q" not in params:
        raise BadRequest("query.q: give the text to search for, e.g. /v1/search?q=red+shoes",
                         details=[{"path": "query.q", "message": "Field required"}])
    data: dict[str, Any] = {"text": params["q"]}
    for name in ("target", "granularity", "limit", "offset", "mode", "alpha", "space", "part", "rerank",
                 "rerank_top_n"):
        if name in params:
            data[name] = params[name]
    try:
        req = SearchRequest.model_validate(data)  # lax: query strings carry numbers as text
    except ValidationError as exc:
        raise invalid(exc, "query") from None
    result = await request.app[SEARCHER].search(Query.of(req, tenant=tenant_of(request)))
    return web.json_response(dump(result))


async def search_upload(request: web.Request) -> web.Response:
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType(
            f"send the file as multipart/form-data, field `image` or `audio` (got {request.content_type!r})")
    field, data, fields = await _read_form(request)
    try:
        options = UploadOptions.model_validate(fields)
    except ValidationError as exc:
        raise invalid(exc, "form") from None
    tenant = tenant_of(request)
    query = Query(options, audio_bytes=data, tenant=tenant) if field == "audio" else \
        Query(options, image_bytes=data, tenant=tenant)
    result = await request.app[SEARCHER].search(query)
    return web.json_response(dump(result))


async def _read_form(request: web.Request) -> tuple[str, bytes, dict[str, Any]]:
    """Which file was uploaded (`image` or `audio`), its bytes and the other fields, reading at most
    max_body_bytes in all (a chunked body has no Content-Length to refuse early, and multipart parts are not
    bounded by client_max_size)."""
    budget = request.app[SEARCHER].settings.max_body_bytes
    files: dict[str, bytes] = {}
    fields: dict[str, str] = {}
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadRequest("nested multipart bodies are not supported")
            data = await _read_part(part, budget)
            budget -= len(data)
            if part.name in ("image", "audio"):
                files[part.name] = data
            elif part.name and data.strip():  # an empty form field means "not given", as in HTML forms
                fields[part.name] = data.decode("utf-8", "replace")
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
        # aiohttp's multipart reader reports malformed bodies (bad boundary, broken headers) this way.
        raise BadRequest(f"malformed multipart body: {exc}") from None
    if len(files) != 1:
        problem = "give one file, not both" if files else "Field required"
        raise BadRequest(f"form.image: attach the query file in the `image` or the `audio` field ({problem})",
                         details=[{"path": "form.image", "message": problem}])
    [(name, data)] = files.items()
    return name, data, _form_options(fields)


async def _read_part(part: BodyPartReader, budget: int) -> bytes:
    buf = bytearray()
    while chunk := await part.read_chunk(64 * 1024):
        buf += chunk
        if len(buf) > budget:
            raise PayloadTooLarge("the upload is larger than the gateway's body limit")
    return bytes(buf)


def _form_options(fields: dict[str, str]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    if "query" in fields:
        merged.update(_json_field("query", fields.pop("query"), want_object=True))
    for name, value in fields.items():
        merged[name] = _json_field(name, value, want_object=False) if name in _JSON_FORM_FIELDS else value
    return merged


def _json_field(name: str, value: str, *, want_object: bool) -> Any:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"form.{name}: not valid JSON ({exc.msg})",
                         details=[{"path": f"form.{name}", "message": "invalid JSON"}]) from None
    if want_object and not isinstance(parsed, dict):
        raise BadRequest(f"form.{name}: must be a JSON object",
                         details=[{"path": f"form.{name}", "message": "must be a JSON object"}])
    return parsed


# -- assets ------------------------------------------------------------------------------------------------


async def publish(request: web.Request) -> web.Response:
    event = _validate_json(AssetEvent, await json_body(request))
    tenant = tenant_of(request)
    check_event_tenant(event.tenant, tenant)
    event = event.model_copy(update={"tenant": tenant})
    events = request.app[DEPS].events
    if events is None:
        raise DependencyDown("this gateway has no Kafka connection configured; it cannot publish")
    where = await events.publish(event)
    body = PublishResponse(asset_id=where.asset_id, partition=where.partition, offset=where.offset)
    return web.json_response(dump(body), status=202)


async def get_asset(request: web.Request) -> web.Response:
    asset_id = request.match_info["asset_id"]
    stored = await request.app[DEPS].store.get(asset_id, tenant=tenant_of(request))
    if stored is None:
        raise NotFound(f"asset {asset_id!r} is not in the store")
    body = AssetResponse(
        asset_id=stored.asset_id, modality=stored.modality, text=stored.text, uri=stored.uri,
        caption=stored.caption, metadata=stored.metadata, model=stored.model_id,
        models=parse_model_ids(stored.model_id, stored.spaces), content_hash=stored.content_hash,
        event_time=stored.event_time, indexed_at=stored.indexed_at,
        source=SourceOffset(partition=stored.source_partition, offset=stored.source_offset),
        spaces=list(stored.spaces),
        preview=thumbnail_url(stored.asset_id, stored.modality) if stored.has_thumbnail else None,
    )
    return web.json_response(dump(body))


async def thumbnail(request: web.Request) -> web.Response:
    asset_id = request.match_info["asset_id"]
    data = await request.app[DEPS].store.thumbnail(asset_id, tenant=tenant_of(request))
    if data is None:
        raise NotFound(f"asset {asset_id!r} has no preview (or is not in the store)")
    # Short caching: a re-upserted asset gets a new preview under the same URL. Range requests are answered
    # (206): a browser reads an OGG clip's duration from its last page, and seeks, with them.
    return _ranged(request, data, preview_type(data))


async def video(request: web.Request) -> web.Response:
    """A video's own file (WebM or MP4), for the search page's player; Range requests as for previews."""
    asset_id = request.match_info["asset_id"]
    found = await request.app[DEPS].store.playback(asset_id, tenant=tenant_of(request))
    if found is None:
        raise NotFound(f"asset {asset_id!r} has no playable video (or is not in the store)")
    data, mime = found
    return _ranged(request, data, mime)


def _ranged(request: web.Request, data: bytes, content_type: str) -> web.Response:
    """``data``, or the byte range the request asks for (206), cached briefly (a re-upsert keeps the URL)."""
    headers = {"Cache-Control": "max-age=60", "Accept-Ranges": "bytes"}
    try:
        wanted = request.http_range
    except ValueError:
        wanted = slice(None)  # a malformed Range header is ignored (RFC 9110): the whole body
    if wanted.start is None and wanted.stop is None:
        return web.Response(body=data, content_type=content_type, headers=headers)
    start, stop, _ = wanted.indices(len(data))
    if start >= stop:  # nothing of the body is in that range: the whole body (RFC 9110 allows it)
        return web.Response(body=data, content_type=content_type, headers=headers)
    headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
    return web.Response(status=206, body=data[start:stop], content_type=content_type, headers=headers)


_PREVIEW_TYPES = ((b"OggS", "audio/ogg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))


def preview_type(data: bytes) -> str:
    r"""The stored preview's media type, from its first bytes: what the worker makes (an image's own PNG or
    JPEG bytes, a JPEG, or a WebP from older workers; an OGG clip of audio).

    >>> preview_type(b"OggS..."), preview_type(b"\x89PNG\r\n\x1a\n..."), preview_type(b"\xff\xd8\xff\xe0...")
    ('audio/ogg', 'image/png', 'image/jpeg')
    >>> preview_type(b"RIFF....WEBPVP8 ")
    'image/webp'
    """
    return next((kind for magic, kind in _PREVIEW_TYPES if data.startswith(magic)), "image/webp")
