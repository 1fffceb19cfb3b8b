"""Which tenant a request acts for: the one its API key is bound to, never one the client names.

With ``XMODAL_TENANT_KEYS`` (tenant -> key; the deployment is then multi-tenant) the auth middleware finds the
tenant of the key in ``X-API-Key`` and stores it on the request; every handler reads it with
:func:`tenant_of` and passes it to each store call, so a request can only see its own tenant's assets. Another
tenant's asset then answers exactly as an id that never existed does (404), never 403: a key learns nothing
about what other tenants hold. Without tenant keys (single-tenant) the tenant is None everywhere.

>>> from pydantic import SecretStr
>>> keys = TenantKeys({"acme": SecretStr("ka"), "globex": SecretStr("kg")})
>>> keys.tenant_for("kg"), keys.tenant_for("nope")
('globex', None)
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from aiohttp import web
from pydantic import SecretStr

from services.gateway.errors import BadRequest

TENANT = web.RequestKey("tenant", str)


class TenantKeys:
    """Key -> tenant, compared in constant time against every key (timing says nothing about which is close)."""

    def __init__(self, keys: Mapping[str, SecretStr]) -> None:
        self._keys = [(tenant, key.get_secret_value().encode()) for tenant, key in keys.items()]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def tenant_for(self, given: str) -> str | None:
        supplied = given.encode()
        found: str | None = None
        for tenant, key in self._keys:
            if hmac.compare_digest(supplied, key):
                found = tenant
        return found


def tenant_of(request: web.Request) -> str | None:
    """The tenant the request's key is bound to; None on a single-tenant gateway."""
    return request.get(TENANT)


def check_event_tenant(given: str | None, tenant: str | None) -> None:
    """A published event acts for the key's tenant: a `tenant` in the body must be absent or that one."""
    if given is None or given == tenant:
        return
    if tenant is None:
        raise BadRequest("body.tenant: this gateway is single-tenant; leave `tenant` out",
                         details=[{"path": "body.tenant", "message": "not accepted here"}])
    raise BadRequest("body.tenant: an event is published into the tenant of its API key; leave `tenant` out",
                     details=[{"path": "body.tenant", "message": "must be absent or the key's own tenant"}])
