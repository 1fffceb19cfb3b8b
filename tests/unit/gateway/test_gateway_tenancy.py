"""Keys bound to tenants (services/gateway/tenancy.py) and the settings that go with them."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from services.config import GatewaySettings, WeaviateSettings
from services.gateway.errors import BadRequest
from services.gateway.tenancy import TenantKeys, check_event_tenant

MT = WeaviateSettings(multi_tenancy=True)


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
