"""Several workers in one consumer group on one machine: they share the web port setting (each takes the next
free port), spread the partitions, survive kill -9 of any of them at random points, and take a new worker in
mid-stream, with the final state exact and no duplicate objects."""

from __future__ import annotations

import asyncio
import random
import re
import time

import pytest

from tests.harness.lanes import Lane, WorkerProcess, free_port, wait_stored
from tests.integration.resilience.checks import assert_exact, churn, publish
from tests.integration.resilience.conftest import eventually, sized

pytestmark = pytest.mark.integration
N_EVENTS = sized(1500, 5000)
KILLS = sized(3, 10)
SESSION_TIMEOUT_S = 6.0


def bound_port(worker: WorkerProcess) -> int | None:
    """The port the worker says it took (its log), or None before it has said."""
    found = re.findall(r"worker web server on http://[^:]+:(\d+)", worker.log.read_text(errors="replace"))
    return int(found[-1]) if found else None


async def test_workers_on_one_machine_with_the_same_port_setting_share_the_partitions(lane: Lane) -> None:
    port = free_port()
    workers = [WorkerProcess(lane, name=f"w{i}", web_port=port,
                             env={"XMODAL_GROUP_INSTANCE_ID": f"{lane.name}-w{i}", "XMODAL_LOG_LEVEL": "info"})
               for i in range(3)]
    sc = churn(600, seed=41)
    published = await publish(lane, sc.events)
    try:
        for w in workers:
            w.start()
            await eventually(lambda w=w: bound_port(w) is not None, f"{w.name} binds a port", timeout_s=120)  # type: ignore[misc]
            w.web_port = bound_port(w) or port
        assert len({w.web_port for w in workers}) == 3, [w.web_port for w in workers]
        for w in workers:
            await w.wait_ready()
        await eventually(lambda: sorted(p for w in workers for p in w.readyz()[1]["partitions"])
                         == sorted(f"{lane.kafka.topic}:{i}" for i in range(lane.partitions)),
                         "the three workers hold every partition between them, once", timeout_s=120)
        assert all(w.alive for w in workers)

        # static membership: a member killed and restarted under its instance id gets its partitions back
        # without a rebalance (not the group leader, the first to join: its rejoin makes the broker rebalance)
        victim = workers[-1]
        held = victim.readyz()[1]["partitions"]
        victim.kill9()
        victim.start()
        await victim.wait_ready()
        await eventually(lambda: victim.readyz()[1]["partitions"] == held,
                         "the restarted static member holds the same partitions again", timeout_s=120)
        await wait_stored(lane, published, timeout_s=300)
    finally:
        for w in workers:
            w.stop()
    await assert_exact(lane, sc)


def held_by(worker: WorkerProcess) -> set[str]:
    """The partitions the worker says it holds; none while it is (re)starting and not serving yet."""
    try:
        return set(worker.readyz()[1]["partitions"])
    except OSError:
        return set()


async def test_three_workers_killed_at_random_and_a_fourth_added(lane: Lane) -> None:
    rng = random.Random(43)
    sc = churn(N_EVENTS, seed=42)
    env = {"XMODAL_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S), "XMODAL_HEARTBEAT_INTERVAL_S": "1"}
    workers = [WorkerProcess(lane, name=f"w{i}", env=env) for i in range(3)]
    published: list = []  # type: ignore[type-arg]

    async def stream() -> None:  # events keep arriving during the kills: 20 chunks, spread out
        step = max(1, len(sc.events) // 20)
        for i in range(0, len(sc.events), step):
            published.extend(await publish(lane, sc.events[i:i + step]))
            await asyncio.sleep(0.5)

    takeovers: list[float] = []
    try:
        for w in workers:
            w.start()
        for w in workers:
            await w.wait_ready()
        producer = asyncio.create_task(stream())
        added = WorkerProcess(lane, name="added", env=env)
        every = sorted(f"{lane.kafka.topic}:{i}" for i in range(lane.partitions))
        for k in range(KILLS):
            # the group settled after the last restart (every partition held once, by a live worker), so that
            # the victim holds partitions (4 over 3-4 workers leave some with none) and its takeover is
            # measured; on a slow machine a kill during the rebalance would find every worker holding none
            await eventually(lambda: sorted(p for w in workers for p in held_by(w)) == every,
                             "the group holds every partition once", timeout_s=SESSION_TIMEOUT_S + 120)
            await asyncio.sleep(rng.uniform(1.0, 4.0))
            holding = {w: held_by(w) for w in workers}
            victim = rng.choice([w for w, held in holding.items() if held] or workers)
            held = holding[victim]
            victim.kill9()
            t0 = time.monotonic()
            survivors = [w for w in workers if w is not victim and w.alive]

            def taken_over(held: set[str] = held, survivors: list[WorkerProcess] = survivors) -> bool:
                return held <= {p for w in survivors for p in w.readyz()[1]["partitions"]}

            await eventually(taken_over, f"the survivors take over {sorted(held)}", timeout_s=SESSION_TIMEOUT_S + 90)
            if held:
                takeovers.append(time.monotonic() - t0)
            victim.start()
            await victim.wait_ready()
            if k == KILLS // 2:
                added.start()  # a new worker mid-stream takes partitions without loss
                workers.append(added)
                await added.wait_ready()
        await producer
        await wait_stored(lane, published, timeout_s=300)
        assert added.alive, added.tail()
    finally:
        for w in workers:
            w.stop()
    print(f"progress resumed after each kill -9 in: {[round(t, 1) for t in takeovers]} s")
    assert len(takeovers) == KILLS, f"only {len(takeovers)} of {KILLS} kills hit a worker holding partitions"
    assert max(takeovers) < SESSION_TIMEOUT_S + 60, takeovers
    await assert_exact(lane, sc)
