"""The OpenAPI 3.1 document of the gateway, generated from the pydantic models the handlers validate with.

Request schemas come from the models in validation mode, response schemas in serialization mode, so the
document describes exactly what the handlers accept and return (a schemathesis run checks it).

>>> doc = build_openapi(GatewaySettings())
>>> doc["openapi"], sorted(doc["paths"])[:3]
('3.1.0', ['/', '/healthz', '/metrics'])
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from schemas.asset_event import AssetEvent
from services.config import GatewaySettings
from services.gateway.models import (
    MAX_LIMIT,
    MAX_OFFSET,
    MAX_QUERY_CHARS,
    MAX_RERANK_TOP_N,
    AssetResponse,
    ErrorResponse,
    Health,
    PublishResponse,
    Readiness,
    SearchRequest,
    SearchResponse,
    UploadOptions,
)

_REF = "#/components/schemas/{model}"
_VIDEOS = ("video/webm", "video/mp4")  # what the worker stores for playback (services/fetch/video.py)
_IMAGE_PREVIEWS = ("image/png", "image/jpeg", "image/webp")  # what routes.preview_type answers for an image
_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (SearchRequest, "validation"), (UploadOptions, "validation"), (AssetEvent, "validation"),
    (SearchResponse, "serialization"), (PublishResponse, "serialization"), (AssetResponse, "serialization"),
    (ErrorResponse, "serialization"), (Health, "serialization"), (Readiness, "serialization"),
]
_ERRORS = {
    400: "Invalid request: the message and `details` name the field.",
    401: "Missing or invalid X-API-Key (only when the gateway is configured with keys).",
    404: "No such asset (on a multi-tenant gateway: none in the API key's tenant; another tenant's asset "
         "answers exactly like an id that never existed).",
    413: "The body, the upload or the fetched image is larger than allowed.",
    415: "Wrong Content-Type.",
    422: "The image cannot be decoded, or fetching it was refused (the code is the fetch reason, "
         "e.g. fetch_forbidden, fetch_not_found, undecodable).",
    429: "Overloaded: every search slot busy and the wait for one too long (details[0].reason: expected_wait, "
         "queue_timeout), or the query queue full; retry after Retry-After seconds.",
    503: "A dependency (Weaviate, Kafka) is unavailable.",
    504: "The request took longer than its deadline.",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _strip_null_defaults(node: Any) -> Any:
    """Drop ``default: null`` where the schema does not allow null (pydantic writes it for optional
    fields whose None is hidden from the schema); keeps each schema valid against its own default."""
    if isinstance(node, dict):
        return {k: _strip_null_defaults(v) for k, v in node.items() if not (k == "default" and v is None)}
    if isinstance(node, list):
        return [_strip_null_defaults(v) for v in node]
    return node


def component_schemas() -> tuple[dict[str, str], dict[str, Any]]:
    """(model name -> component name, components.schemas)."""
    keys, top = models_json_schema(_MODELS, ref_template=_REF)
    names = {model.__name__: keys[(model, mode)]["$ref"].rsplit("/", 1)[1] for model, mode in _MODELS}
    return names, _strip_null_defaults(top.get("$defs", {}))


def _errors(*statuses: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in statuses:
        resp = _json(_ref("ErrorResponse"), _ERRORS[status])
        if status in (429, 503):
            resp["headers"] = {"Retry-After": {"description": "Seconds to wait before retrying.",
                                               "schema": {"type": "integer", "minimum": 1}}}
        out[str(status)] = resp
    return out


def _op(summary: str, responses: dict[str, Any], *, op_id: str, tags: list[str],
        body: dict[str, Any] | None = None, params: list[dict[str, Any]] | None = None,
        secured: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": tags, "responses": responses}
    if body is not None:
        op["requestBody"] = body
    if params:
        op["parameters"] = params
    if secured:
        op["security"] = [{"ApiKey": []}]
        op["responses"] = {**responses, **_errors(401)}
    return op


def _query(name: str, schema: dict[str, Any], description: str, *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def _search_params() -> list[dict[str, Any]]:
    return [
        _query("q", {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS, "pattern": r"\S"},
               "The text to search for.", required=True),
        _query("target", {"type": "string", "enum": ["image", "text", "audio", "video", "any"], "default": "any"},
               "Modality of the results."),
        _query("granularity", {"type": "string", "enum": ["segment", "video"], "default": "segment"},
               "target video: rank by the best segment or by the whole video (see SearchRequest)."),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 10}, "Page size."),
        _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}, "Skip."),
        _query("mode", {"type": "string", "enum": ["vector", "hybrid"], "default": "vector"}, "Search mode."),
        _query("alpha", {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5}, "Hybrid weighting."),
        _query("part", {"type": "string", "enum": ["content", "caption", "fused"]},
               "Which of an asset's vectors to search (see SearchRequest); default fused where captions exist."),
        _query("rerank", {"type": "boolean", "default": False}, "Re-rank the first results (see SearchRequest)."),
        _query("rerank_top_n", {"type": "integer", "minimum": 1, "maximum": MAX_RERANK_TOP_N},
               "How many of the first results to re-rank (with rerank=true)."),
    ]


def _upload_body(options: str) -> dict[str, Any]:
    form = {
        "type": "object",
        "oneOf": [{"required": ["image"]}, {"required": ["audio"]}],
        "properties": {
            "image": {"type": "string", "format": "binary", "description": "The image file (or `audio`)."},
            "audio": {"type": "string", "format": "binary",
                      "description": "The audio clip (WAV, FLAC, OGG, Opus, MP3), instead of `image`."},
            "query": {"type": "string", "contentMediaType": "application/json",
                      "contentSchema": _ref(options),
                      "description": "Search options as one JSON object (UploadOptions). Single form "
                                     "fields (target, limit, ...; modifier, filters as JSON) override it."},
        },
    }
    return {"required": True, "content": {"multipart/form-data": {"schema": form}}}


def _asset_param() -> dict[str, Any]:
    return {"name": "asset_id", "in": "path", "required": True, "description": "The asset id, URL-encoded.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 256}}


def _paths(n: dict[str, str], secured: bool) -> dict[str, Any]:
    search_errors = _errors(400, 404, 413, 415, 422, 429, 503, 504)
    ok_search = {"200": _json(_ref(n["SearchResponse"]), "Results, best first.")}
    json_body = {"required": True, "content": {"application/json": {"schema": _ref(n["SearchRequest"])}}}
    event_body = {"required": True, "content": {"application/json": {"schema": _ref(n["AssetEvent"])}}}
    asset_param = [_asset_param()]
    return {
        "/": {"get": _op("The search page.", {"200": {"description": "HTML page.", "content": {
            "text/html": {"schema": {"type": "string"}}}}}, op_id="page", tags=["page"])},
        "/healthz": {"get": _op("The process is alive.", {"200": _json(_ref(n["Health"]), "Alive.")},
                                op_id="healthz", tags=["ops"])},
        "/readyz": {"get": _op("Weaviate is reachable and the model is loaded.", {
            "200": _json(_ref(n["Readiness"]), "Ready."),
            "503": _json(_ref(n["Readiness"]), "Not ready; `checks` says what is missing.")},
            op_id="readyz", tags=["ops"])},
        "/metrics": {"get": _op("Prometheus metrics.", {"200": {"description": "Prometheus text format.",
            "content": {"text/plain": {"schema": {"type": "string"}}}}}, op_id="metrics", tags=["ops"])},
        "/openapi.json": {"get": _op("This document.", {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
                                     op_id="openapi", tags=["ops"])},
        "/status": {"get": _op("The status page: lag, freshness, throughput, dead letters (live charts).",
                               {"200": {"description": "HTML page.", "content": {
                                   "text/html": {"schema": {"type": "string"}}}}}, op_id="statusPage",
                               tags=["ops"])},
        "/v1/status": {"get": _op(
            "The figures behind the status page: recent time series of lag, freshness, throughput, dead letters, "
            "the last run of the golden queries (`golden`), and a model migration's progress and which model "
            "answers (`migration`, null when the collection was never migrated).",
            {"200": _json({"type": "object"}, "Status snapshot."),
             "404": _json(_ref("ErrorResponse"), "This gateway collects no status figures (not_configured).")},
            op_id="status", tags=["ops"], secured=secured)},
        "/v1/search": {
            "post": _op("Search by text, image, audio or asset (more like this), optionally composed and filtered; "
                        "the embedding space follows from the query and the target (the response names it).",
                        {**ok_search, **search_errors}, op_id="search", tags=["search"], body=json_body,
                        secured=secured),
            "get": _op("Search by text (for curl and links).", {**ok_search, **_errors(400, 429, 503, 504)},
                       op_id="searchGet", tags=["search"], params=_search_params(), secured=secured),
        },
        "/v1/search/upload": {"post": _op(
            "Search with an uploaded image or audio clip (multipart/form-data).", {**ok_search, **search_errors},
            op_id="searchUpload", tags=["search"], body=_upload_body(n["UploadOptions"]), secured=secured)},
        "/v1/assets": {"post": _op(
            "Publish an asset event; returns where it landed (use it in consistent_with). On a multi-tenant "
            "gateway the event goes into the API key's tenant: `tenant` must be absent or that tenant (else 400).",
            {"202": _json(_ref(n["PublishResponse"]), "Accepted: written to Kafka."),
             **_errors(400, 413, 415, 503, 504)},
            op_id="publishAsset", tags=["assets"], body=event_body, secured=secured)},
        "/v1/assets/{asset_id}": {"get": _op(
            "What is stored for an asset.", {"200": _json(_ref(n["AssetResponse"]), "The stored asset."),
                                             **_errors(404, 503, 504)},
            op_id="getAsset", tags=["assets"], params=asset_param, secured=secured)},
        "/v1/assets/{asset_id}/thumbnail": {"get": _op(
            "The asset's thumbnail: a PNG, JPEG or WebP image of at most 160 px.", {
                "200": {"description": "The image.", "content": {
                    kind: {"schema": {"type": "string", "format": "binary"}} for kind in _IMAGE_PREVIEWS}},
                **_errors(404, 503, 504)},
            op_id="getThumbnail", tags=["assets"], params=asset_param, secured=secured)},
        "/v1/assets/{asset_id}/preview": {"get": _op(
            "The asset's preview: a PNG, JPEG or WebP image, or a short OGG clip of an audio asset (Range "
            "requests: 206).", {
                "200": {"description": "The preview.", "content": {
                    kind: {"schema": {"type": "string", "format": "binary"}}
                    for kind in (*_IMAGE_PREVIEWS, "audio/ogg")}},
                "206": {"description": "The requested byte range of the preview.", "content": {
                    "audio/ogg": {"schema": {"type": "string", "format": "binary"}}}},
                **_errors(404, 503, 504)},
            op_id="getPreview", tags=["assets"], params=asset_param, secured=secured)},
        "/v1/assets/{asset_id}/video": {"get": _op(
            "A video asset's own file, for playing it from a matched time (stored when a browser plays it as it "
            "is: WebM or MP4; Range requests: 206).", {
                "200": {"description": "The video.", "content": {
                    kind: {"schema": {"type": "string", "format": "binary"}} for kind in _VIDEOS}},
                "206": {"description": "The requested byte range of the video.", "content": {
                    kind: {"schema": {"type": "string", "format": "binary"}} for kind in _VIDEOS}},
                **_errors(404, 503, 504)},
            op_id="getVideo", tags=["assets"], params=asset_param, secured=secured)},
    }


def build_openapi(settings: GatewaySettings) -> dict[str, Any]:
    names, schemas = component_schemas()
    secured = bool(settings.api_keys or settings.tenant_keys)
    components: dict[str, Any] = {"schemas": schemas}
    if secured:
        components["securitySchemes"] = {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "xmodal gateway", "version": "1.0.0",
            "description": "Cross-modal search (text, image, audio, more-like-this, composed queries) over assets "
                           "ingested from Kafka, with read-your-writes via consistent_with.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": _paths(names, secured),
        "components": components,
        "tags": [{"name": t} for t in ("search", "assets", "ops", "page")],
    }


