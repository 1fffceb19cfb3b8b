"""A real multi-tenant worker: one asset_id in two tenants stays two assets, events that disagree with the
deployment's tenancy are dead-lettered, and `xmodal tenants delete` removes one tenant's data and nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cli.tenants import administer
from schemas.asset_event import AssetEvent
from services.publish import EventPublisher
from services.store import AssetStore
from streams.agents import CONFIG_EXIT
from tests.harness.lanes import Lane, WorkerProcess, read_dead_letters, wait_stored

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 27, 10, tzinfo=UTC)


@pytest.fixture
async def running(stack: Any, unique_name: str, tmp_path: Path) -> AsyncIterator[Lane]:
    lane = Lane(unique_name, tmp_path, extra_env={"XMODAL_WEAVIATE__MULTI_TENANCY": "true"})
    lane.weaviate = lane.weaviate.model_copy(update={"multi_tenancy": True})
    await lane.create_topics()
    worker = WorkerProcess(lane)
    worker.start()
    try:
        await worker.wait_ready()
        yield lane
    finally:
        worker.stop()
        await lane.drop()


def event(asset_id: str, seconds: int, *, tenant: str | None, text: str | None = None, op: str = "upsert"
          ) -> AssetEvent:
    body: dict[str, Any] = {"schema_version": 1, "asset_id": asset_id, "op": op,
                            "event_time": T0 + timedelta(seconds=seconds)}
    if tenant is not None:
        body["tenant"] = tenant
    if op == "upsert":
        body.update(modality="text", text=text or f"{asset_id} of {tenant}")
    return AssetEvent.model_validate(body)


async def test_one_asset_id_in_two_tenants_stays_two_assets(running: Lane) -> None:
    lane = running
    events = [
        event("sku-1", 10, tenant="acme", text="a red running shoe"),
        event("sku-1", 5, tenant="globex", text="a blue garden chair"),  # older, but another asset
        event("sku-2", 1, tenant="acme"),
        event("sku-2", 2, tenant="acme", op="delete"),
        *[event(f"g-{i}", i, tenant="globex") for i in range(4)],
        event("sku-3", 1, tenant=None),  # multi-tenant deployment: no tenant, no customer
    ]
    async with EventPublisher(lane.kafka) as pub:
        await wait_stored(lane, await pub.publish_many(events))
    letters = await read_dead_letters(lane, 1)
    assert [(d["reason"], d["_key"]) for d in letters] == [("tenant_required", b"sku-3")]
    async with AssetStore(lane.weaviate, {"clip": 512, "clap": 512}) as store:
        acme, globex = await store.get("sku-1", tenant="acme"), await store.get("sku-1", tenant="globex")
        assert acme is not None and acme.text == "a red running shoe"
        assert globex is not None and globex.text == "a blue garden chair"
        assert await store.get("sku-2", tenant="acme") is None
        assert await store.tenant_counts() == {"acme": 1, "globex": 5}
        kept = {a: await store.get(a, tenant="globex") for a in ["sku-1", "g-0", "g-1", "g-2", "g-3"]}

        assert await administer(lane.weaviate, "delete", "acme") == 0
        assert await store.tenants() == ["globex"]
        assert await store.get("sku-1", tenant="acme") is None
        assert {a: await store.get(a, tenant="globex") for a in kept} == kept  # nothing else changed
        assert await administer(lane.weaviate, "delete", "acme") == 1  # gone already


async def test_a_worker_whose_tenancy_disagrees_with_the_collection_stops_at_start(
    stack: Any, unique_name: str, tmp_path: Path,
) -> None:
    lane = Lane(unique_name, tmp_path, extra_env={"XMODAL_WEAVIATE__MULTI_TENANCY": "true"})
    await lane.create_topics()
    async with AssetStore(lane.weaviate, {"clip": 512}) as store:
        await store.ensure_collection()  # single-tenant, as made before the setting was turned on
    worker = WorkerProcess(lane)
    worker.start()
    try:
        assert worker.proc is not None
        status = await asyncio.to_thread(worker.proc.wait, 180)
        assert status == CONFIG_EXIT, worker.tail()
        assert "is single-tenant in Weaviate but XMODAL_WEAVIATE__MULTI_TENANCY=true" in worker.tail()
    finally:
        worker.stop()
        await lane.drop()
