"""Keys bound to tenants (services/gateway/tenancy.py) and the settings that go with them."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr, ValidationError

from services.config import GatewaySettings, WeaviateSettings
from services.gateway.errors import BadRequest
from services.gateway.tenancy import TenantKeys, check_event_tenant, tenant_of
from services.monitoring.status import StatusCollector

MT = WeaviateSettings(multi_tenancy=True)
UNREACHABLE_MT = WeaviateSettings(host="127.0.0.1", http_port=9, grpc_port=9, multi_tenancy=True)
ClientFactory = Callable[..., AbstractAsyncContextManager[TestClient[web.Request, web.Application]]]


def test_each_key_maps_to_its_own_tenant_and_no_other() -> None:
    keys = TenantKeys({"acme": SecretStr("key-a"), "globex": SecretStr("key-g")})
    assert keys.tenant_for("key-a") == "acme"
    assert keys.tenant_for("key-g") == "globex"
    assert keys.tenant_for("key-") is None
    assert keys.tenant_for("") is None
    assert not TenantKeys({})


def test_tenant_keys_need_multi_tenancy_and_multi_tenancy_needs_tenant_keys() -> None:
    with pytest.raises(ValidationError, match="MULTI_TENANCY=true"):
        GatewaySettings(tenant_keys={"acme": "k"})
    with pytest.raises(ValidationError, match="bound to a tenant"):
        GatewaySettings(weaviate=MT)
    with pytest.raises(ValidationError, match="bound to a tenant"):
        GatewaySettings(weaviate=MT, tenant_keys={"acme": "k"}, api_keys=["unbound"])
    ok = GatewaySettings(weaviate=MT, tenant_keys={"acme": "k", "globex": "g"})
    assert sorted(ok.tenant_keys) == ["acme", "globex"]


def test_tenant_names_and_keys_are_checked() -> None:
    with pytest.raises(ValidationError, match="tenant names"):
        GatewaySettings(weaviate=MT, tenant_keys={"acme corp": "k"})
    with pytest.raises(ValidationError, match="share a key"):
        GatewaySettings(weaviate=MT, tenant_keys={"acme": "k", "globex": "k"})


def test_tenant_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XMODAL_WEAVIATE__MULTI_TENANCY", "true")
    monkeypatch.setenv("XMODAL_TENANT_KEYS", '{"acme": "ka"}')
    s = GatewaySettings()
    assert s.weaviate.multi_tenancy
    assert s.tenant_keys["acme"].get_secret_value() == "ka"


def test_a_published_event_may_name_only_its_keys_tenant() -> None:
    check_event_tenant(None, "acme")
    check_event_tenant("acme", "acme")
    check_event_tenant(None, None)
    with pytest.raises(BadRequest, match="tenant of its API key"):
        check_event_tenant("globex", "acme")
    with pytest.raises(BadRequest, match="single-tenant"):
        check_event_tenant("acme", None)


async def echo_tenant(request: web.Request) -> web.Response:
    return web.json_response({"tenant": tenant_of(request)})


async def test_the_request_acts_for_its_keys_tenant(make_client: ClientFactory) -> None:
    keys = {"acme": SecretStr("key-a"), "globex": SecretStr("key-g")}
    async with make_client(weaviate=UNREACHABLE_MT, tenant_keys=keys,
                           routes=[web.get("/v1/echo", echo_tenant)]) as c:
        for key, tenant in (("key-a", "acme"), ("key-g", "globex")):
            resp = await c.get("/v1/echo", headers={"X-API-Key": key})
            assert await resp.json() == {"tenant": tenant}
        assert (await c.get("/v1/echo")).status == 401
        assert (await c.get("/v1/echo", headers={"X-API-Key": "key-b"})).status == 401
        assert (await c.get("/v1/echo", headers={"X-API-Key": "key-a", "X-Tenant": "globex"})).status == 200


async def test_the_status_tenants_section_survives_weaviate_away(make_client: ClientFactory) -> None:
    collector = StatusCollector(GatewaySettings(worker_metrics_urls=[]), window_s=60)
    async with make_client(weaviate=UNREACHABLE_MT, tenant_keys={"acme": SecretStr("key-a")},
                           status=collector) as c:
        body = await (await c.get("/v1/status", headers={"X-API-Key": "key-a"})).json()
    assert body["tenants"]["shown"] == "own"
    assert body["tenants"]["rows"] == [] and "Weaviate" in body["tenants"]["error"]
    assert "per partition" in body["tenants"]["lag"]


async def test_a_single_tenant_status_has_no_tenants_section(make_client: ClientFactory) -> None:
    collector = StatusCollector(GatewaySettings(worker_metrics_urls=[]), window_s=60)
    async with make_client(status=collector) as c:
        body = await (await c.get("/v1/status")).json()
    assert body["tenants"] is None
