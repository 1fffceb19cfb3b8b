"""Tenants in the pipeline: the event's tenant is checked against the deployment, and every exact-state step
(collapse, state lookup, pending-writes overlay, writes) keys on (tenant, asset_id)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.asset_event import Modality
from schemas.dead_letter import Reason
from services.config import ModelSettings
from services.embedding.model import load_embedder
from services.embedding.runner import AsyncEmbedder
from services.ingest.collapse import candidates_by_asset
from services.ingest.parse import Rejected, parse
from services.ingest.records import AssetKey, Record
from services.store import StoreUnavailable
from tests.unit.ingest.test_protocol import Harness

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
SPACES = {Modality.text: ["clip"]}


@pytest.fixture(scope="module")
def embedder() -> AsyncEmbedder:
    return AsyncEmbedder(load_embedder(ModelSettings(device="cpu")))


def event(tenant: str | None, seconds: int, *, op: str = "upsert", asset: str = "a", text: str = "x"
          ) -> dict[str, Any]:
    ev: dict[str, Any] = {"schema_version": 1, "asset_id": asset, "op": op,
                          "event_time": (T0 + timedelta(seconds=seconds)).isoformat()}
    if tenant is not None:
        ev["tenant"] = tenant
    if op == "upsert":
        ev.update(modality="text", text=text)
    return ev


def rec(offset: int, value: dict[str, Any]) -> Record:
    return Record(value["asset_id"].encode(), json.dumps(value).encode(), "assets", 0, offset,
                  timestamp_ms=1_700_000_000_000)


@pytest.mark.parametrize(("multi_tenant", "tenant", "reason"), [
    (True, None, Reason.tenant_required),
    (False, "acme", Reason.tenant_not_allowed),
])
@pytest.mark.parametrize("op", ["upsert", "delete"])
def test_a_tenant_that_disagrees_with_the_deployment_is_dead_lettered(
    multi_tenant: bool, tenant: str | None, reason: Reason, op: str,
) -> None:
    with pytest.raises(Rejected) as info:
        parse(rec(0, event(tenant, 0, op=op)), SPACES, multi_tenant=multi_tenant)
    assert info.value.reason is reason
    assert ("multi-tenant" if multi_tenant else "single-tenant") in info.value.error


def test_the_tenant_is_part_of_the_asset_key() -> None:
    parsed = [parse(rec(i, event(t, i)), SPACES, multi_tenant=True) for i, t in enumerate(["acme", "globex", "acme"])]
    groups = candidates_by_asset(parsed)
    assert {k: [p.record.offset for p in v] for k, v in groups.items()} == {
        AssetKey("acme", "a"): [0, 2], AssetKey("globex", "a"): [1]}


def tenant_harness(embedder: AsyncEmbedder, *, hold_writes: bool = False) -> Harness:
    h = Harness(embedder, hold_writes=hold_writes)
    h.preparer.multi_tenant = True
    return h


async def test_one_asset_id_in_two_tenants_is_two_assets(embedder: AsyncEmbedder) -> None:
    # In one batch: acme's `a` at t=10, globex's `a` at t=5 (older, but of another asset), then acme deletes.
    h = tenant_harness(embedder)
    await h.process([rec(0, event("acme", 10, text="acme's")), rec(1, event("globex", 5, text="globex's")),
                     rec(2, event("acme", 20, op="delete")), rec(3, event("acme", 30, text="acme again"))])
    assert h.store.tenant("acme")["a"].text == "acme again"
    assert h.store.tenant("globex")["a"].text == "globex's"
    assert not h.store.objects  # nothing without a tenant
    assert h.store.tenant_writes == ["acme", "globex"]  # one write per tenant
    assert not h.letters.sent


async def test_a_batch_writes_its_tenants_at_once_and_a_failed_attempt_leaves_none_in_flight(
    embedder: AsyncEmbedder,
) -> None:
    h = tenant_harness(embedder)
    store_write = h.store.write
    began: list[tuple[str | None, int]] = []  # (tenant, writes in flight when it began)
    in_flight, peak, fail = 0, 0, True

    async def write(upserts: Any, deletes: Any, *, tenant: str | None = None) -> Any:
        nonlocal in_flight, peak, fail
        began.append((tenant, in_flight))
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            if tenant == "b" and fail:  # b's first write fails at once, while a's and c's are in flight
                fail = False
                raise StoreUnavailable("Weaviate is down (a test said so)")
            await asyncio.sleep(0.05)
            return await store_write(upserts, deletes, tenant=tenant)
        finally:
            in_flight -= 1

    h.store.write = write  # type: ignore[method-assign]
    await h.process([rec(i, event(t, 10, text=f"{t}'s")) for i, t in enumerate("abc")])
    assert peak == 3  # the three tenants' writes ran at once
    assert [t for t, _ in began] == ["a", "b", "c", "a", "b", "c"]  # the failed attempt, then the retry
    assert began[3][1] == 0  # the retry began with nothing of the failed attempt still in flight
    assert {t: h.store.tenant(t)["a"].text for t in "abc"} == {"a": "a's", "b": "b's", "c": "c's"}
    assert h.acks == [[0, 1, 2]]


async def test_the_pending_writes_overlay_is_per_tenant(embedder: AsyncEmbedder) -> None:
    # Batch 2 is prepared while batch 1 (acme's `a` at t=10) is still being written. Its globex `a` at t=5
    # must read globex's state (nothing), not acme's pending one, or it would be dropped as stale.
    h = tenant_harness(embedder, hold_writes=True)
    await h.overlapped([[rec(0, event("acme", 10, text="acme's"))], [rec(1, event("globex", 5, text="globex's"))]])
    assert h.store.tenant("globex")["a"].text == "globex's"
    assert h.store.tenant("acme")["a"].text == "acme's"
    assert h.acks == [[0], [1]]


async def test_a_stale_event_is_stale_only_against_its_own_tenant(embedder: AsyncEmbedder) -> None:
    h = tenant_harness(embedder)
    await h.process([rec(0, event("acme", 10, text="new"))])
    await h.process([rec(1, event("acme", 5, text="old")), rec(2, event("globex", 5, text="globex's"))])
    assert h.store.tenant("acme")["a"].text == "new"
    assert h.store.tenant("globex")["a"].text == "globex's"
