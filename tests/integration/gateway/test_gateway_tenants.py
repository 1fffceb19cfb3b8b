"""Tenant isolation through the real gateway, the real Weaviate (one tenant per customer) and the real Kafka.

Tenant acme holds the shapes sample, tenant globex a few assets of its own. Globex's key then tries every
route that reads or writes assets with every id acme holds plus guessed ones: each must answer exactly as an
id that never existed does (404, the same body), no search may return anything of acme's, and a publish can
only land in globex. acme's key seeing its own assets is the control that the attack had something to find.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr

from services.config import BUILTIN_MODEL, GatewaySettings, ModelSettings, RerankSettings
from services.embedding.model import HFEmbedder
from services.localstack import LocalStack
from services.localstack.kafka import ensure_topics
from services.samples import shapes_sample
from services.store import AssetStore
from tests.harness.catalogue import MAX_PIXELS, SAMPLE_PARTITIONS, sample_objects
from tests.integration.gateway.conftest import AppFactory, _drop

pytestmark = pytest.mark.integration

KEY_ACME, KEY_GLOBEX = "key-of-acme", "key-of-globex"
NEVER = "never-existed-7f3a"  # an id no tenant has: what every foreign id must look like
Client = TestClient[web.Request, web.Application]


@dataclass
class Tenants:
    acme: Client
    globex: Client
    anonymous: Client
    settings: GatewaySettings
    acme_ids: list[str]
    globex_ids: list[str]
    thumbnail_of: dict[str, str]  # acme's assets with a preview -> its URL


@dataclass
class Leaks:
    checked: int = 0
    found: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        self.checked += 1
        if not ok:
            self.found.append(what)


@pytest.fixture(scope="module")
async def tenants(stack: LocalStack, shapes_embedder: HFEmbedder, app_for: AppFactory) -> AsyncIterator[Tenants]:
    tag = uuid.uuid4().hex[:10]
    settings = GatewaySettings(
        weaviate=stack.s.weaviate.model_copy(update={"collection": f"Tn{tag}", "multi_tenancy": True}),
        kafka=stack.s.kafka.model_copy(update={"topic": f"tn-{tag}", "group_id": f"tn-{tag}-workers"}),
        spaces={"clip": ModelSettings(device="cpu")},
        rerank=RerankSettings(kind="biencoder", model=BUILTIN_MODEL, device="cpu", budget_s=30.0),
        tenant_keys={"acme": SecretStr(KEY_ACME), "globex": SecretStr(KEY_GLOBEX)},
    )
    await ensure_topics(settings.kafka.bootstrap_servers, {settings.kafka.topic: SAMPLE_PARTITIONS})
    events = shapes_sample(per_class=1)
    acme = sample_objects(shapes_embedder, events, max_pixels=MAX_PIXELS)
    # globex: a few of the same kinds of asset under its own ids (so its searches have something to return)
    globex = [o.__class__(**{**o.__dict__, "asset_id": f"globex-{o.asset_id}"}) for o in acme[:6]]
    try:
        async with AssetStore(settings.weaviate, {shapes_embedder.space: shapes_embedder.dim}) as store:
            await store.ensure_collection()
            assert await store.write(acme, [], tenant="acme") == {}
            assert await store.write(globex, [], tenant="globex") == {}
        async with app_for(settings) as app, TestClient(TestServer(app)) as anonymous:
            acme_client = await _keyed(app, KEY_ACME)
            globex_client = await _keyed(app, KEY_GLOBEX)
            try:
                thumbs = {o.asset_id: f"/v1/assets/{o.asset_id}/{'preview' if o.modality == 'audio' else 'thumbnail'}"
                          for o in acme if o.thumbnail is not None}
                yield Tenants(acme_client, globex_client, anonymous, settings, [o.asset_id for o in acme],
                              [o.asset_id for o in globex], thumbs)
            finally:
                await acme_client.close()
                await globex_client.close()
    finally:
        await _drop(settings)


async def _keyed(app: web.Application, key: str) -> Client:
    client: Client = TestClient(TestServer(app), headers={"X-API-Key": key})
    await client.start_server()
    return client


async def answer(resp: Any) -> tuple[int, str]:
    return resp.status, await resp.text()


def same_as_never(got: tuple[int, str], never: tuple[int, str], asset_id: str) -> bool:
    """The answer for ``asset_id`` is the never-existed id's answer, word for word but for the id itself."""
    return got[0] == 404 and got[1].replace(repr(asset_id), repr(NEVER)) == never[1]


def mentions(body: str, ids: list[str]) -> list[str]:
    return [a for a in ids if a in body]


async def test_the_control_acme_sees_its_own_assets(tenants: Tenants) -> None:
    some = tenants.acme_ids[0]
    resp = await tenants.acme.get(f"/v1/assets/{some}")
    assert resp.status == 200, await resp.text()
    url = next(iter(tenants.thumbnail_of.values()))
    assert (await tenants.acme.get(url)).status == 200
    found = await (await tenants.acme.post("/v1/search", json={"text": "a red circle", "limit": 5})).json()
    assert found["results"] and all(r["asset_id"] in tenants.acme_ids for r in found["results"])
    more = await tenants.acme.post("/v1/search", json={"asset_id": some, "limit": 3, "rerank": True})
    assert more.status == 200, await more.text()


async def test_a_wrong_tenants_key_finds_nothing_of_acme_on_any_route(tenants: Tenants) -> None:
    g, leaks = tenants.globex, Leaks()
    guessed = [*tenants.acme_ids, "shape-red-circle-0000", "text-red-circle", "sku-1", "a", "acme", "../acme"]
    never = {
        "get": await answer(await g.get(f"/v1/assets/{NEVER}")),
        "thumbnail": await answer(await g.get(f"/v1/assets/{NEVER}/thumbnail")),
        "preview": await answer(await g.get(f"/v1/assets/{NEVER}/preview")),
        "like": await answer(await g.post("/v1/search", json={"asset_id": NEVER, "limit": 3})),
        "like_rerank": await answer(await g.post("/v1/search", json={"asset_id": NEVER, "limit": 3, "rerank": True})),
        "like_modifier": await answer(await g.post("/v1/search", json={
            "asset_id": NEVER, "modifier": {"text": "green", "weight": 0.5}, "limit": 3})),
    }
    assert all(status == 404 for status, _ in never.values()), never
    for asset_id in guessed:
        quoted = asset_id.replace("/", "%2F")
        calls: list[tuple[str, Awaitable[Any]]] = [
            ("get", g.get(f"/v1/assets/{quoted}")),
            ("thumbnail", g.get(f"/v1/assets/{quoted}/thumbnail")),
            ("preview", g.get(f"/v1/assets/{quoted}/preview")),
            ("like", g.post("/v1/search", json={"asset_id": asset_id, "limit": 3})),
            ("like_rerank", g.post("/v1/search", json={"asset_id": asset_id, "limit": 3, "rerank": True})),
            ("like_modifier", g.post("/v1/search", json={
                "asset_id": asset_id, "modifier": {"text": "green", "weight": 0.5}, "limit": 3})),
        ]
        for route, call in calls:
            got = await answer(await call)
            leaks.check(same_as_never(got, never[route], asset_id), f"{route} {asset_id}: {got}")
    # searches of every kind: nothing but globex's own assets comes back
    png = base64.b64decode(shapes_sample(per_class=1)[0].data or "")
    form = FormData()
    form.add_field("image", png, filename="q.png", content_type="image/png")
    form.add_field("limit", "50")
    searches: list[Callable[[], Awaitable[Any]]] = [
        lambda: g.post("/v1/search", json={"text": "a photo of a red circle", "limit": 50}),
        lambda: g.post("/v1/search", json={"text": "a red circle", "target": "image", "limit": 50, "rerank": True}),
        lambda: g.post("/v1/search", json={"text": "red circle", "mode": "hybrid", "alpha": 0.3, "limit": 50}),
        lambda: g.post("/v1/search", json={"text": "circle", "limit": 50,
                                           "filters": {"field": "shape", "eq": "circle"}}),
        lambda: g.post("/v1/search", json={"image": {"data": base64.b64encode(png).decode()}, "limit": 50}),
        lambda: g.get("/v1/search", params={"q": "a red circle", "limit": "50", "offset": "2"}),
        lambda: g.post("/v1/search/upload", data=form),
        lambda: g.post("/v1/search", json={"text": "a red circle", "limit": 50, "consistency_timeout_s": 0.1,
                                           "consistent_with": [{"partition": 0, "offset": 0}]}),
    ]
    for i, call in enumerate(searches):
        status, body = await answer(await call())
        leaks.check(status == 200, f"search {i}: {status} {body[:200]}")
        ids = [r["asset_id"] for r in json.loads(body).get("results", [])] if status == 200 else []
        leaks.check(all(a in tenants.globex_ids for a in ids), f"search {i} returned {ids}")
        leaks.check(not mentions(body, [a for a in tenants.acme_ids if f"globex-{a}" not in body]),
                    f"search {i} mentions acme's ids")
    status, body = await answer(await g.get("/v1/status"))
    leaks.check(status == 200 and "acme" not in body, f"status: {status} {body[:300]}")
    assert leaks.checked > 6 * len(guessed)
    assert leaks.found == [], f"{len(leaks.found)} leaks in {leaks.checked} checks: {leaks.found[:5]}"


async def test_a_key_publishes_into_its_own_tenant_only(tenants: Tenants) -> None:
    event = {"schema_version": 1, "asset_id": tenants.acme_ids[0], "modality": "text", "text": "globex's now",
             "event_time": "2026-11-27T12:00:00Z"}
    refused = await tenants.globex.post("/v1/assets", json={**event, "tenant": "acme"})
    assert refused.status == 400
    assert "tenant of its API key" in (await refused.json())["error"]["message"]
    resp = await tenants.globex.post("/v1/assets", json=event)
    where = await resp.json()
    assert resp.status == 202, where
    published = await read_record(tenants.settings, where["partition"], where["offset"])
    assert published["tenant"] == "globex"
    assert published["asset_id"] == tenants.acme_ids[0]  # the same id, globex's own asset


async def test_keys_are_required_and_unknown_keys_refused(tenants: Tenants) -> None:
    assert (await tenants.anonymous.get(f"/v1/assets/{tenants.acme_ids[0]}")).status == 401
    bad = await tenants.anonymous.get(f"/v1/assets/{tenants.acme_ids[0]}", headers={"X-API-Key": "key-of-acm"})
    assert bad.status == 401


async def test_the_status_shows_the_keys_own_tenant(tenants: Tenants) -> None:
    body = await (await tenants.acme.get("/v1/status")).json()
    assert body["tenants"]["shown"] == "own"
    assert body["tenants"]["rows"] == [{"tenant": "acme", "objects": len(tenants.acme_ids)}]
    assert "per partition" in body["tenants"]["lag"]


async def read_record(settings: GatewaySettings, partition: int, offset: int) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(settings.kafka.topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        batch = await consumer.getmany(tp, timeout_ms=10_000)
        [msg, *_] = batch[tp]
        assert msg.value is not None
        value: dict[str, Any] = json.loads(msg.value)
        return value
    finally:
        await consumer.stop()
