"""What every fault test checks at the end: the store holds exactly the expected state, no dead letter."""

from __future__ import annotations

import random

from services.monitoring.lag import LagReader
from services.publish import EventPublisher, Published
from services.store import AssetStore
from tests.harness.lanes import Lane, read_dead_letters
from tests.integration.ingest.scenario import Scenario, Sent, upsert


def churn(n_events: int, *, seed: int, n_assets: int = 400) -> Scenario:
    """Upserts of images and texts with updates and deletes: a third of the assets are 12x12 PNGs."""
    rng = random.Random(seed)
    sc = Scenario()
    assets = [f"img-{i}" if i % 3 == 0 else f"txt-{i}" for i in range(n_assets)]
    while len(sc.events) < n_events:
        aid = rng.choice(assets)
        if aid in sc.state and rng.random() < 0.1:
            sc.good({"asset_id": aid, "op": "delete"})
        else:
            sc.good(upsert(rng, aid))
    return sc


async def publish(lane: Lane, events: list[Sent]) -> list[Published]:
    async with EventPublisher(lane.kafka) as pub:
        return await pub.publish_many_raw([(e.key, e.value) for e in events])


async def committed_total(lane: Lane) -> int:
    async with LagReader(lane.kafka) as reader:
        return sum((await reader.committed()).values())


async def assert_exact(lane: Lane, sc: Scenario) -> None:
    """Every expected asset once, with the metadata of its last event; nothing else; no dead letter."""
    async with AssetStore(lane.weaviate, {"clip": 1}) as store:
        assert await store.count() == len(sc.state), "an object is missing or duplicated"
        states = await store.states(list(sc.state))
        assert set(states) == set(sc.state), f"missing: {sorted(set(sc.state) - set(states))[:10]}"
        for aid, ev in sc.state.items():
            got = await store.get(aid)
            assert got is not None and got.metadata == ev["metadata"], aid
    letters = await read_dead_letters(lane, expected=0, timeout_s=2)
    assert letters == [], f"a transient fault must never dead-letter: {letters[:3]}"
