"""A node back from an outage lacks what was written while it was down, until Weaviate repairs it.

A filtered search on that node (the node's own replica is read first) does not see the objects written
meanwhile, and returns its own older copy of the ones updated meanwhile. The worker decides skip / update /
insert from `AssetStore.states`, so a state read that calls a stored asset missing, or older than it is,
would let an older event be written over a newer one. `states` must return the newest stored state (the
one a quorum holds), or raise StoreUnavailable (the batch is retried), never a missing or older one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest

from services.localstack import LocalStack
from services.store import AssetObject, AssetStore, StoredState, StoreUnavailable
from tests.integration.cluster.nodes import cluster_weaviate, kill9

pytestmark = pytest.mark.integration
T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
T = TypeVar("T")
N = 200  # enough that async replication cannot have repaired them all before the first read


def asset(i: int, version: int = 0) -> AssetObject:
    return AssetObject(
        asset_id=f"a{i}", modality="text", text=f"text {i} v{version}", uri=None, metadata={},
        content_hash=f"h{i}v{version}", model_id="m", event_time=T0 + timedelta(seconds=i, hours=version),
        source_partition=0, source_offset=i + version * N, vectors={"clip": [1.0, float(i % 7), float(version)]},
    )


async def until_done(step: Callable[[], Awaitable[T]], what: str, timeout_s: float = 120) -> T:
    """Retry ``step`` on StoreUnavailable, as the worker does (a write or drop right after a node dies can
    outlast the store's call timeout while the cluster notices)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await step()
        except StoreUnavailable:
            assert time.monotonic() < deadline, f"{what}: Weaviate unavailable for {timeout_s:g}s"
            await asyncio.sleep(0.5)


async def states_on_node3(cluster: LocalStack, collection: str, ids: list[str], *, with_vectors: bool = False
                          ) -> dict[str, StoredState]:
    """The states as node 3 reads them, retried on StoreUnavailable the way the worker retries a batch."""
    retries, deadline = 0, time.monotonic() + 120
    async with AssetStore(cluster_weaviate(cluster, collection, node=3), {"clip": 3}) as on_node3:
        while True:
            try:
                states = await on_node3.states(ids, with_vectors=with_vectors)
                break
            except StoreUnavailable:
                retries += 1
                assert time.monotonic() < deadline, "node 3 never caught up"
                await asyncio.sleep(0.5)
    print(f"states read on node 3 after {retries} retries")
    return states


@pytest.fixture
async def collection(cluster: LocalStack, unique_name: str) -> AsyncIterator[str]:
    name = "S" + unique_name[1:]
    yield name
    async with AssetStore(cluster_weaviate(cluster, name), {"clip": 3}) as store:
        await until_done(store.drop_collection, "drop the collection")


async def test_states_on_a_node_back_from_an_outage_never_call_a_stored_asset_missing(
    cluster: LocalStack, collection: str,
) -> None:
    async with AssetStore(cluster_weaviate(cluster, collection), {"clip": 3}) as store:
        await store.ensure_collection()
        assert await store.write([asset(-1)], []) == {}
        kill9(cluster.weaviate_nodes[2].pid_file)
        # QUORUM: nodes 1 and 2 (uuid5 ids: a retried write stores the same objects)
        assert await until_done(lambda: store.write([asset(i) for i in range(N)], []), "write") == {}
    await asyncio.to_thread(cluster.up)  # node 3 again, holding none of the N
    assert cluster.healthy()

    ids = [f"a{i}" for i in range(N)]
    states = await states_on_node3(cluster, collection, ids)
    assert sorted(states) == sorted(ids), f"{N - len(states)} stored assets reported missing"
    assert all(states[f"a{i}"].event_time == T0 + timedelta(seconds=i) for i in range(N))


async def test_states_on_a_node_back_from_an_outage_never_return_an_older_copy(
    cluster: LocalStack, collection: str,
) -> None:
    async with AssetStore(cluster_weaviate(cluster, collection), {"clip": 3}) as store:
        await store.ensure_collection()
        assert await until_done(lambda: store.write([asset(i) for i in range(N)], []), "write v0") == {}
        kill9(cluster.weaviate_nodes[2].pid_file)
        # QUORUM: nodes 1 and 2 get v1; node 3 keeps v0 of every asset
        assert await until_done(lambda: store.write([asset(i, version=1) for i in range(N)], []), "write v1") == {}
    await asyncio.to_thread(cluster.up)
    assert cluster.healthy()

    ids = [f"a{i}" for i in range(N)]
    states = await states_on_node3(cluster, collection, ids, with_vectors=True)
    assert sorted(states) == sorted(ids), f"{N - len(states)} stored assets reported missing"
    older = [a for a, st in states.items() if st.event_time != asset(int(a[1:]), version=1).event_time]
    assert not older, f"{len(older)} of {N} states are node 3's older copy (e.g. {older[:3]})"
    assert all(states[f"a{i}"].vectors["clip"][2] > 0.01 for i in range(N)), "an older copy's vector came back"
