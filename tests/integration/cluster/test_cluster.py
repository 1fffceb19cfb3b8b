"""On the 3+3 cluster: kill a Kafka broker and a Weaviate node mid-stream (SIGKILL) while a worker ingests.

No event is lost (the final state is exact: every asset once, with its metadata), searches keep answering
at the default consistency (QUORUM reads, QUORUM writes), and the killed nodes, restarted by the stack
manager, rejoin: the broker is back in every ISR, and the Weaviate node, read on its own at consistency ONE,
holds exactly the final state.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
import weaviate
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from weaviate.classes.config import ConsistencyLevel
from weaviate.classes.query import Filter, MetadataQuery

from services.config import WeaviateSettings
from services.errors import TransientError
from services.localstack import LocalStack
from services.localstack.kafka import bootstrap_servers, ensure_topics
from services.localstack.process import read_pid
from services.monitoring.lag import LagReader
from services.publish import EventPublisher, Published
from services.store import AssetStore, SearchQuery, StoreUnavailable
from tests.harness.lanes import Lane, WorkerProcess, read_dead_letters, wait_stored
from tests.integration.cluster.nodes import STORE_TIMEOUT_S, cluster_weaviate, kill9
from tests.integration.ingest.scenario import Scenario, Sent, churn

pytestmark = pytest.mark.integration
#: Longest stretch without an answered search: a search on the dead node times out, the next one moves.
SEARCH_GAP_BOUND_S = 3 * STORE_TIMEOUT_S + 5.0
CATCH_UP_S = 180.0  # generous bound for a restarted node to hold everything (async replication, ISR)


@dataclass
class Searches:
    """Every search the "gateway side" ran: when it ended and whether it answered."""

    answered: list[float] = field(default_factory=list)
    failed: list[tuple[float, str]] = field(default_factory=list)
    empty: int = 0

    def answered_between(self, start: float, end: float) -> int:
        return sum(start <= t <= end for t in self.answered)

    def longest_gap(self, start: float, end: float) -> float:
        times = [start, *(t for t in self.answered if start <= t <= end), end]
        return max(b - a for a, b in itertools.pairwise(times))


@dataclass
class Outage:
    broker: int
    weaviate: int
    down_at: float = 0.0
    up_at: float = 0.0


@pytest.fixture
async def lane(cluster: LocalStack, unique_name: str, tmp_path: Path) -> AsyncIterator[Lane]:
    lane = Lane(unique_name, tmp_path, extra_env={
        **cluster.client_env(), "XMODAL_WEAVIATE__TIMEOUT_S": str(STORE_TIMEOUT_S),
    })
    lane.kafka = lane.kafka.model_copy(update={"bootstrap_servers": bootstrap_servers(cluster.s),
                                               "replication_factor": 3})
    lane.weaviate = cluster_weaviate(cluster, lane.weaviate.collection)
    await ensure_topics(lane.kafka.bootstrap_servers, {lane.kafka.topic: lane.partitions,
                                                       lane.kafka.dlq_topic: lane.partitions}, replication=3)
    yield lane
    async with AssetStore(lane.weaviate, {"clip": 1}) as store:
        await store.drop_collection()


async def committed_total(lane: Lane) -> int | None:
    """Sum of the group's committed offsets; None while Kafka cannot say (a broker just died)."""
    try:
        async with LagReader(lane.kafka) as reader:
            return sum((await reader.committed()).values())
    except (KafkaError, TransientError, TimeoutError):
        return None


async def until_committed(lane: Lane, worker: WorkerProcess, target: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (total := await committed_total(lane)) is None or total < target:
        assert worker.proc is not None and worker.proc.poll() is None, f"the worker died:\n{worker.tail()}"
        assert time.monotonic() < deadline, f"committed {total} < {target} after {timeout_s}s:\n{worker.tail()}"
        await asyncio.sleep(0.2)


async def publish_paced(lane: Lane, events: list[Sent], chunk: int = 10, pause_s: float = 0.1) -> list[Published]:
    """Publish ``chunk`` events every ``pause_s`` (a stream, not a burst), resending a chunk that failed."""
    out: list[Published] = []
    async with EventPublisher(lane.kafka) as pub:
        for start in range(0, len(events), chunk):
            batch = [(e.key, e.value) for e in events[start:start + chunk]]
            deadline = time.monotonic() + 120
            while True:
                try:
                    out += await pub.publish_many_raw(batch)
                    break
                except TransientError:  # a broker died under the request: same events again, in order
                    assert time.monotonic() < deadline, "publishing failed for 120s"
                    await asyncio.sleep(0.5)
            await asyncio.sleep(pause_s)
    return out


async def search_until(settings: WeaviateSettings, stop: asyncio.Event, log: Searches) -> None:
    """Searches, one after the other, through a store of its own (the gateway's side) until ``stop``."""
    async with AssetStore(settings, {}) as store:
        vector: list[float] | None = None
        while not stop.is_set():
            try:
                if vector is None:
                    hits = await store.search(SearchQuery(vector=None, space="clip", text="product", mode="hybrid"))
                    vector = await store.vector_of(hits[0].asset_id, "clip") if hits else None
                else:
                    hits = await store.search(SearchQuery(vector=vector, space="clip", limit=5))
                log.answered.append(time.monotonic())
                log.empty += vector is not None and not hits
            except StoreUnavailable as e:
                log.failed.append((time.monotonic(), str(e)[:200]))
            await asyncio.sleep(0.1)


async def coordinator_of(lane: Lane) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=lane.kafka.bootstrap_servers)
    await admin.start()
    try:
        return int(await admin.find_coordinator(lane.kafka.group_id))
    finally:
        await admin.close()


def pids(stack: LocalStack) -> dict[str, int | None]:
    return {n.name: read_pid(n.pid_file) for n in stack.kafka_nodes} | {
        n.name: read_pid(n.pid_file) for n in stack.weaviate_nodes}


async def until_isr_full(lane: Lane, timeout_s: float) -> None:
    """Every partition of the lane's topics and of __consumer_offsets has all 3 replicas in sync again."""
    deadline = time.monotonic() + timeout_s
    lagging: list[str] = []
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=lane.kafka.bootstrap_servers)
        try:
            await admin.start()
            topics = await admin.describe_topics([lane.kafka.topic, lane.kafka.dlq_topic, "__consumer_offsets"])
            lagging = [f"{t['topic']}/{p['partition']}: isr {p['isr']}" for t in topics for p in t["partitions"]
                       if sorted(p["isr"]) != [1, 2, 3]]
            if not lagging and all(t["partitions"] for t in topics):
                return
        except KafkaError:
            pass
        finally:
            await admin.close()
        await asyncio.sleep(1)
    raise AssertionError(f"replicas still out of sync after {timeout_s}s: {lagging[:8]}")


async def node_catch_up(stack: LocalStack, lane: Lane, node: int, sc: Scenario, ids: list[str]) -> float | str:
    """Seconds until the restarted node, read on its own at consistency ONE, held exactly the final state;
    or, past CATCH_UP_S, what it still lacks (with every node's copy of the assets that differ)."""
    settings = cluster_weaviate(stack, lane.weaviate.collection, node=node, read_consistency="ONE")
    want = {a: datetime.fromisoformat(ev["event_time"]) for a, ev in sc.state.items()}
    t0 = time.monotonic()
    async with AssetStore(settings, {"clip": 1}) as alone:
        while True:
            try:
                got = {a: s.event_time for a, s in (await alone.states(ids)).items()}
                if got == want:
                    return time.monotonic() - t0
                differ = sorted(a for a in set(got) | set(want) if got.get(a) != want.get(a))
                diff = (f"{len(set(want) - set(got))} missing, {len(set(got) - set(want))} deleted ones "
                        f"present, {sum(got.get(a) not in (None, t) for a, t in want.items())} stale")
            except StoreUnavailable as e:
                differ, diff = [], str(e)
            if time.monotonic() - t0 > CATCH_UP_S:
                copies = await every_copy(stack, lane.weaviate.collection, differ[:5])
                return f"weaviate node {node} has not caught up in {CATCH_UP_S:.0f}s: {diff}; " + "; ".join(
                    f"{a}: wanted {want.get(a)}, nodes have {copies.get(a)}" for a in differ[:5])
            await asyncio.sleep(2)


async def every_copy(stack: LocalStack, collection: str, ids: list[str]) -> dict[str, dict[str, str]]:
    """asset -> node -> (event_time, last update, Kafka offset) of that node's own copy (read at ONE)."""
    out: dict[str, dict[str, str]] = {a: {} for a in ids}
    if not ids:
        return out
    for w in stack.weaviate_nodes:
        async with weaviate.use_async_with_custom(
            http_host="127.0.0.1", http_port=w.http_port, http_secure=False, grpc_host="127.0.0.1",
            grpc_port=w.grpc_port, grpc_secure=False, skip_init_checks=True,
        ) as client:
            col = client.collections.use(collection).with_consistency_level(ConsistencyLevel.ONE)
            res = await col.query.fetch_objects(
                filters=Filter.by_property("asset_id").contains_any(ids), limit=len(ids),
                return_properties=["asset_id", "event_time", "source_partition", "source_offset"],
                return_metadata=MetadataQuery(last_update_time=True))
        for o in res.objects:
            p = o.properties
            out[str(p["asset_id"])][w.name] = (f"{p['event_time']} updated {o.metadata.last_update_time} "
                                               f"from {p['source_partition']}/{p['source_offset']}")
    return out


async def exercise(stack: LocalStack, lane: Lane, n_events: int, outages: list[Outage], seed: int) -> None:
    sc = churn(n_events, seed=seed, n_assets=max(40, n_events // 5), image_every=4)
    ids = sorted({e.key.decode() for e in sc.events if e.key})
    worker = WorkerProcess(lane)
    searches, stop = Searches(), asyncio.Event()
    worker.start()
    try:
        await worker.wait_ready()
        searcher = asyncio.create_task(search_until(lane.weaviate, stop, searches))
        publisher = asyncio.create_task(publish_paced(lane, sc.events))
        for k, outage in enumerate(outages, 1):
            # mid-stream: a share of the events committed, the rest still being published or embedded
            await until_committed(lane, worker, k * n_events // (len(outages) + 2), timeout_s=300)
            outage.broker = outage.broker or await coordinator_of(lane)
            kill9(stack.kafka_nodes[outage.broker - 1].pid_file)
            kill9(stack.weaviate_nodes[outage.weaviate - 1].pid_file)
            outage.down_at = time.monotonic()
            # the stream goes on with a broker and a Weaviate node down
            await until_committed(lane, worker, int((k + 0.5) * n_events / (len(outages) + 2)), timeout_s=300)
            assert not stack.healthy()
            before = pids(stack)
            await asyncio.to_thread(stack.up)  # `make up`: finds the two dead nodes and starts them again
            outage.up_at = time.monotonic()
            assert stack.healthy(), "\n".join(s.line() for s in stack.status())
            restarted = {name for name, pid in pids(stack).items() if pid != before[name]}
            assert restarted == {f"kafka-{outage.broker}", f"weaviate-{outage.weaviate}"}, "up restarted a live node"
        published = await publisher
        await wait_stored(lane, published, timeout_s=300)
        stop.set()
        await searcher
        assert worker.proc is not None and worker.proc.poll() is None, f"the worker died:\n{worker.tail()}"
        # Every offset reached the worker. A lost event mostly hides behind a later event of the same asset, so
        # the final state alone catches few: while the worker paused with Faust's pause_partitions, 3 of 7 runs
        # of this test under load dropped events (2026-12-03) and all 3 still ended right; a CI run before
        # that ended with an asset one version behind (streams/offsets.py).
        skipped = worker.metric("xmodal_consumer_skipped_offsets_total")
        assert skipped == 0, f"{skipped} offsets never reached the worker:\n{worker.tail()}"
    finally:
        stop.set()
        worker.stop()

    for outage in outages:
        window = (outage.down_at, outage.up_at)
        assert searches.answered_between(*window) >= 3, f"searches stopped answering during {outage}: " \
            f"{searches.failed[-5:]}"
        assert searches.longest_gap(*window) < SEARCH_GAP_BOUND_S, f"no answer for too long: {searches.failed}"
    assert searches.empty == 0, "answered searches found nothing"

    t_isr = time.monotonic()
    await until_isr_full(lane, CATCH_UP_S)
    print(f"{n_events} events, {len(published)} published; searches: {len(searches.answered)} answered, "
          f"{len(searches.failed)} failed; ISRs full {time.monotonic() - t_isr:.1f}s after the last check")
    letters = await read_dead_letters(lane, expected=0, timeout_s=5)
    assert letters == [], [(d.get("reason"), d.get("error"), d.get("source")) for d in letters[:5]]
    # each node first, alone, before the quorum reads below can repair it
    caught_up = [await node_catch_up(stack, lane, outage.weaviate, sc, ids) for outage in outages]
    for outage, took in zip(outages, caught_up, strict=True):
        print(f"  broker {outage.broker} + weaviate node {outage.weaviate} down {outage.up_at - outage.down_at:.1f}s, "
              f"longest search gap {searches.longest_gap(outage.down_at, outage.up_at):.1f}s; node "
              f"{outage.weaviate}, read alone at ONE: {took if isinstance(took, str) else f'caught up in {took:.1f}s'}")
    async with AssetStore(lane.weaviate, {"clip": 1}) as store:
        assert await store.count() == len(sc.state), "an object is missing or duplicated"
        states = await store.states(ids)
        assert set(states) == set(sc.state)
        wrong = [aid for aid, ev in sc.state.items()
                 if (got := await store.get(aid)) is None or got.metadata != ev["metadata"]]
    if wrong:
        copies = await every_copy(stack, lane.weaviate.collection, wrong[:3])
        where = {a: [(p.partition, p.offset) for p in published if p.asset_id == a] for a in wrong[:3]}
        raise AssertionError(f"{len(wrong)} assets hold an older version: " + "; ".join(
            f"{a}: wanted {sc.state[a]['event_time']}, its events went to {where[a]}, nodes have {copies[a]}"
            for a in wrong[:3]))
    assert not [took for took in caught_up if isinstance(took, str)]


# Back in `make test` since 2026-12-02: its lost update (about one run in five) was the worker's state read
# on a replicated collection returning a node's older copy of an asset (a filtered search reads the node's own
# replica); states are now read by id over REST at the read consistency (test_stale_replica.py reproduces it).
async def test_kill_a_broker_and_a_weaviate_node_mid_stream(cluster: LocalStack, lane: Lane) -> None:
    # the worker's Kafka group coordinator, and the Weaviate node the worker and the searches use
    await exercise(cluster, lane, n_events=400, outages=[Outage(broker=0, weaviate=1)], seed=5)


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_soak_5000_events_three_outages(cluster: LocalStack, lane: Lane) -> None:
    outages = [Outage(broker=0, weaviate=w) for w in (1, 2, 3)]  # each time the group's coordinator of then
    await exercise(cluster, lane, n_events=5000, outages=outages, seed=7)
