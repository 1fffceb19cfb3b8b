"""What every fault test checks at the end: the store holds exactly the expected state, no dead letter."""

from __future__ import annotations

from services.monitoring.lag import LagReader
from services.publish import EventPublisher, Published
from services.store import AssetStore
from tests.harness.lanes import Lane, read_dead_letters
from tests.integration.ingest.scenario import Scenario, Sent, churn

__all__ = ["assert_exact", "churn", "committed_total", "publish"]


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
