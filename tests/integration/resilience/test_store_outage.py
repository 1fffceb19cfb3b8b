"""Weaviate away while events flow: through Toxiproxy (down: connections refused and cut) and frozen
(SIGSTOP). The worker pauses, says so on /readyz and in its metrics, retries, resumes by
itself, and the final state is exact with no dead letter."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable

import pytest

from services.localstack import LocalStack
from services.localstack.process import read_pid
from tests.harness.faults import WeaviateProxies
from tests.harness.lanes import Lane, WorkerProcess, wait_stored
from tests.integration.resilience.checks import assert_exact, churn, committed_total, publish
from tests.integration.resilience.conftest import eventually, sized

pytestmark = pytest.mark.integration
N_EVENTS = sized(800, 2000)
OUTAGE_S = sized(8.0, 30.0)


def paused(worker: WorkerProcess) -> bool:
    return worker.metric("xmodal_worker_paused") == 1.0


async def outage_while_flowing(lane: Lane, worker: WorkerProcess, start_outage: Callable[[], None],
                               end_outage: Callable[[], None],
                               seed: int) -> dict[str, object]:
    """Half the events before the outage, half during it; returns what was seen while it lasted."""
    sc = churn(N_EVENTS, seed=seed)
    half = len(sc.events) // 2
    published = await publish(lane, sc.events[:half])
    worker.start()
    await worker.wait_ready()
    while await committed_total(lane) < half // 3:  # noqa: ASYNC110 (polls Kafka)
        await asyncio.sleep(0.05)
    start_outage()
    t0 = time.monotonic()
    try:
        published += await publish(lane, sc.events[half:])  # Kafka is fine: events keep arriving
        await eventually(lambda: paused(worker), "the worker pauses while Weaviate is away", timeout_s=60)
        status, body = worker.readyz()
        frozen_at = await committed_total(lane)
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - t0)))
        assert await committed_total(lane) == frozen_at, "offsets were committed while nothing could be stored"
    finally:
        end_outage()
    await wait_stored(lane, published, timeout_s=300)
    await eventually(lambda: not paused(worker), "the worker resumes by itself", timeout_s=60)
    seen = {"status": status, "body": body, "retries": worker.metric("xmodal_worker_retries_total"),
            "pauses": worker.metric("xmodal_worker_pauses_total"), "ready_after": worker.readyz()[0]}
    await assert_exact(lane, sc)
    return seen


async def test_weaviate_down_through_toxiproxy(lane: Lane, weaviate_proxies: WeaviateProxies) -> None:
    worker = WorkerProcess(lane, env={**weaviate_proxies.env(), "XMODAL_WEAVIATE__TIMEOUT_S": "3"})
    try:
        seen = await outage_while_flowing(lane, worker, weaviate_proxies.down, weaviate_proxies.up, seed=5)
    finally:
        worker.stop()
    assert seen["status"] == 503, seen
    body = seen["body"]
    assert isinstance(body, dict) and body["paused"] is True and "store_" in body["reason"], body
    assert seen["retries"] >= 1 and seen["pauses"] >= 1 and seen["ready_after"] == 200, seen


async def test_weaviate_frozen_with_sigstop(lane: Lane, stack: LocalStack) -> None:
    pid = read_pid(stack.weaviate.pid_file)
    assert pid is not None, "the stack's Weaviate is not running"
    worker = WorkerProcess(lane, env={"XMODAL_WEAVIATE__TIMEOUT_S": "3"})
    try:
        seen = await outage_while_flowing(lane, worker, lambda: os.kill(pid, signal.SIGSTOP),
                                          lambda: os.kill(pid, signal.SIGCONT), seed=6)
    finally:
        os.kill(pid, signal.SIGCONT)  # never leave the shared Weaviate frozen
        worker.stop()
    assert seen["status"] == 503 and seen["pauses"] >= 1 and seen["ready_after"] == 200, seen
    body = seen["body"]
    assert isinstance(body, dict) and body["paused"] is True and "store_" in body["reason"], body
