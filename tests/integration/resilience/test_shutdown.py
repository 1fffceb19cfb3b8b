"""SIGTERM exits within the bound (XMODAL_SHUTDOWN_TIMEOUT_S), also while Weaviate is unreachable, and loses
nothing: what was not stored was not acked, and a restarted worker stores it. (With the broker gone:
test_broker_restart.py.)"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.harness.faults import WeaviateProxies
from tests.harness.lanes import Lane, WorkerProcess, wait_stored
from tests.integration.resilience.checks import assert_exact, churn, committed_total, publish
from tests.integration.resilience.conftest import eventually

pytestmark = pytest.mark.integration
BOUND_S = 5.0
#: Slack for a loaded 2-core machine on top of the bound (Python and Faust unwinding, the OS reaping).
SLACK_S = 15.0


async def exit_time(worker: WorkerProcess) -> float:
    assert worker.proc is not None
    t0 = time.monotonic()
    worker.sigterm()
    while worker.proc.poll() is None and time.monotonic() - t0 < BOUND_S + 60:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


async def test_sigterm_during_a_batch_exits_in_bound_and_loses_nothing(lane: Lane) -> None:
    sc = churn(1500, seed=21)
    published = await publish(lane, sc.events)
    worker = WorkerProcess(lane, env={"XMODAL_SHUTDOWN_TIMEOUT_S": str(BOUND_S)})
    worker.start()
    try:
        await worker.wait_ready()
        while await committed_total(lane) < 200:  # noqa: ASYNC110 (polls Kafka): mid-stream, batches in flight
            await asyncio.sleep(0.02)
        took = await exit_time(worker)
        assert worker.proc is not None and worker.proc.returncode == 0, worker.tail()
        assert took < BOUND_S + SLACK_S, f"SIGTERM took {took:.1f}s (bound {BOUND_S}s)"
        assert await committed_total(lane) < len(sc.events), "the test stopped the worker too late to mean anything"
        worker.start()  # the rest, and whatever the first one left unacked
        await worker.wait_ready()
        await wait_stored(lane, published, timeout_s=300)
    finally:
        worker.stop()
    await assert_exact(lane, sc)


async def test_sigterm_while_weaviate_is_away_acks_nothing_and_exits_in_bound(
    lane: Lane, weaviate_proxies: WeaviateProxies
) -> None:
    sc = churn(600, seed=22)
    worker = WorkerProcess(lane, env={**weaviate_proxies.env(), "XMODAL_WEAVIATE__TIMEOUT_S": "2",
                                      "XMODAL_SHUTDOWN_TIMEOUT_S": str(BOUND_S)})
    worker.start()
    try:
        await worker.wait_ready()
        weaviate_proxies.down()
        published = await publish(lane, sc.events)
        await eventually(lambda: worker.metric("xmodal_worker_paused") == 1.0, "the worker pauses", timeout_s=60)
        took = await exit_time(worker)
        assert took < BOUND_S + SLACK_S, f"SIGTERM took {took:.1f}s with Weaviate away (bound {BOUND_S}s)"
        assert await committed_total(lane) == 0, "an event was acked although nothing could be stored"
        weaviate_proxies.up()
        worker.start()
        await worker.wait_ready()
        await wait_stored(lane, published, timeout_s=300)
    finally:
        weaviate_proxies.up()
        worker.stop()
    await assert_exact(lane, sc)
