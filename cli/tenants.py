"""`xmodal tenants list | add NAME | delete NAME`: the tenants of a multi-tenant collection.

Tenants are Weaviate's own (one shard per tenant). A worker also creates a tenant on its first write into it
unless XMODAL_WEAVIATE__AUTO_TENANT_CREATION=false; `add` is for deployments that keep that off (the gateway's
XMODAL_TENANT_KEYS still says which keys act for which tenant). `delete` removes the tenant and every object
in it, nothing of any other tenant.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cli.command import Subparsers
    from services.config import WeaviateSettings


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "tenants", help="list, add or delete the tenants of a multi-tenant collection",
        description="Administers the Weaviate tenants of XMODAL_WEAVIATE__COLLECTION (needs "
        "XMODAL_WEAVIATE__MULTI_TENANCY=true). `delete NAME` removes the tenant with all its assets and nothing "
        "else; with automatic tenant creation on, a later event for it creates it again, empty.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every tenant with its object count")
    listing.add_argument("--json", action="store_true", help="print one JSON object, tenant -> objects")
    actions.add_parser("add", help="create a tenant (idempotent)").add_argument("name")
    actions.add_parser("delete", help="delete a tenant and all its assets").add_argument("name")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from services.config import WorkerSettings

    return asyncio.run(administer(WorkerSettings().weaviate, args.action, getattr(args, "name", None),
                                  as_json=getattr(args, "json", False)))


async def administer(settings: WeaviateSettings, action: str, name: str | None, *, as_json: bool = False) -> int:
    from schemas.asset_event import TENANT
    from services.errors import ConfigError
    from services.store import AssetStore

    if name is not None and not TENANT.match(name):
        raise ConfigError(f"tenant names are [A-Za-z0-9_-], at most 64 characters: {name!r}")
    async with AssetStore(settings, {}) as store:
        if action == "list":
            counts = await store.tenant_counts()
            if as_json:
                print(json.dumps(counts, indent=2))
            else:
                print(f"{'tenant':<40} {'objects':>10}")
                for tenant, n in counts.items():
                    print(f"{tenant:<40} {n:>10}")
            return 0
        assert name is not None  # add and delete take one
        if action == "add":
            created = await store.add_tenant(name)
            print(f"created tenant {name}" if created else f"tenant {name} exists already")
            return 0
        objects = await store.count(tenant=name)
        if not await store.delete_tenant(name):
            print(f"no tenant {name}: nothing deleted")
            return 1
        print(f"deleted tenant {name} and its {objects} object(s)")
        return 0
