"""/openapi.json: a valid OpenAPI 3.1 document that describes every route the app serves, and nothing else.

Validity is checked against the official OpenAPI 3.1 meta-schema (the copy schemathesis ships), and each
component schema against JSON Schema draft 2020-12; the schemathesis run in tests/integration/gateway
checks the document against the live implementation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from schemathesis.specs.openapi.definitions import OPENAPI_31

from services.config import GatewaySettings
from services.gateway.models import (
    AssetResponse,
    Consistency,
    ErrorInfo,
    ErrorResponse,
    SearchResponse,
    SearchResult,
    SourceOffset,
    dump,
)
from services.gateway.openapi import build_openapi

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build_openapi(GatewaySettings())


def test_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    validator = jsonschema_rs.Draft202012Validator(OPENAPI_31)
    errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []
    assert doc["openapi"].startswith("3.1")


def test_component_schemas_are_valid_json_schema(doc: dict[str, Any]) -> None:
    for name, schema in doc["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    refs = set(_refs(doc))
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref


def test_no_null_default_where_null_is_not_allowed(doc: dict[str, Any]) -> None:
    assert '"default": null' not in str(doc).replace("'", '"').replace("None", "null")


async def test_every_route_is_documented_and_every_path_is_served(client: Client) -> None:
    doc = await (await client.get("/openapi.json")).json()
    served: set[tuple[str, str]] = set()
    for route in client.app.router.routes():
        info = route.get_info()
        path = info.get("path") or info.get("formatter")
        if route.method in ("HEAD", "*") or path is None or path.startswith("/static"):
            continue
        served.add((route.method.lower(), re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path)))
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented


def test_operation_ids_are_unique_and_errors_use_the_error_schema(doc: dict[str, Any]) -> None:
    ops = [op for ops in doc["paths"].values() for op in ops.values()]
    ids = [op["operationId"] for op in ops]
    assert len(ids) == len(set(ids))
    for op in ops:
        for status, resp in op["responses"].items():
            if int(status) >= 400 and op["operationId"] != "readyz":
                schema = resp["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}


def test_api_keys_add_the_security_scheme_and_401s() -> None:
    open_doc = build_openapi(GatewaySettings())
    keyed = build_openapi(GatewaySettings(api_keys=[SecretStr("k")]))
    assert "securitySchemes" not in open_doc["components"]
    assert keyed["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey", "in": "header", "name": "X-API-Key"}
    search = keyed["paths"]["/v1/search"]["post"]
    assert search["security"] == [{"ApiKey": []}]
    assert "401" in search["responses"]
    assert "security" not in keyed["paths"]["/healthz"]["get"]
    assert "401" not in open_doc["paths"]["/v1/search"]["post"]["responses"]


def _validator(doc: dict[str, Any], name: str) -> jsonschema_rs.Validator:
    # The component schemas refer to each other by "#/components/schemas/..." : validate within the doc.
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema", "components": doc["components"],
            "$ref": f"#/components/schemas/{name}"}
    return jsonschema_rs.Draft202012Validator(root)


def test_response_bodies_match_their_schemas(doc: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    search = SearchResponse(
        results=[SearchResult(asset_id="a", score=0.5, modality="image", metadata={"n": 1, "tags": ["x"]},
                              preview="/v1/assets/a/thumbnail")],
        model="m", space="clip", took_ms=1.5, consistency=Consistency(satisfied=True, waited_ms=3.0))
    asset = AssetResponse(asset_id="a", modality="text", text="hi", metadata={}, model="m", models={"clip": "m"},
                          content_hash="h",
                          event_time=now, indexed_at=now, source=SourceOffset(partition=0, offset=1),
                          spaces=["clip"])
    error = ErrorResponse(error=ErrorInfo(code="not_found", message="no"))
    for name, body in (("SearchResponse", search), ("AssetResponse", asset), ("ErrorResponse", error)):
        v = _validator(doc, name)
        assert v.is_valid(dump(body)), [e.message for e in v.iter_errors(dump(body))]
    assert not _validator(doc, "SearchResponse").is_valid({"results": []})


def test_request_schema_rejects_what_the_server_rejects(doc: dict[str, Any]) -> None:
    v = _validator(doc, "SearchRequest")
    assert v.is_valid({"text": "x", "limit": 5, "filters": {"field": "c", "in": ["a"]}})
    assert v.is_valid({"image": {"uri": "https://example.com/a.png"}, "modifier": {"text": "green"}})
    for bad in ({}, {"text": "x", "asset_id": "a"}, {"text": "x", "limit": 0}, {"text": "x", "extra": 1},
                {"image": {"data": "aGk=", "uri": "data:,x"}}, {"text": "x", "filters": {"x": 1}}):
        assert not v.is_valid(bad), bad


async def test_served_document_equals_the_built_one(make_client: ClientFactory) -> None:
    async with make_client(api_keys=[SecretStr("k")]) as c:
        resp = await c.get("/openapi.json")  # open even when keys are configured
        assert resp.status == 200
        assert await resp.json() == build_openapi(GatewaySettings(api_keys=[SecretStr("k")]))
