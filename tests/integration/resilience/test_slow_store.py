"""Weaviate answering slowly (Toxiproxy latency on every response) while a backlog drains: consumption slows
down instead of memory growing. The worker's RSS stays within 20% of what it was after its first batch,
lag drains to 0, and the final state is exact."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.harness.faults import WeaviateProxies
from tests.harness.lanes import Lane, WorkerProcess, wait_stored
from tests.integration.resilience.checks import assert_exact, churn, committed_total, publish
from tests.integration.resilience.conftest import sized

pytestmark = pytest.mark.integration
BACKLOG = sized(3000, 20000)
LATENCY_MS = sized(200, 500)


async def test_slow_store_bounds_memory_while_a_backlog_drains(lane: Lane, weaviate_proxies: WeaviateProxies) -> None:
    sc = churn(BACKLOG, seed=51, n_assets=BACKLOG // 4)
    published = await publish(lane, sc.events)
    for p in weaviate_proxies.both:
        p.add_toxic("latency", stream="downstream", latency=LATENCY_MS, jitter=LATENCY_MS // 10)
    worker = WorkerProcess(lane, env={**weaviate_proxies.env(), "XMODAL_WEAVIATE__TIMEOUT_S": "30"})
    samples: list[tuple[float, int, int]] = []  # (t, rss, committed)
    worker.start()
    try:
        await worker.wait_ready()
        while await committed_total(lane) == 0:  # noqa: ASYNC110 (polls Kafka): the first batch is stored
            await asyncio.sleep(0.1)
        baseline, t0 = worker.rss_bytes(), time.monotonic()
        drained = asyncio.create_task(wait_stored(lane, published, timeout_s=900))
        while not drained.done():
            samples.append((time.monotonic() - t0, worker.rss_bytes(), await committed_total(lane)))
            await asyncio.wait({drained}, timeout=0.5)
        await drained
    finally:
        worker.stop()
    peak = max(rss for _, rss, _ in samples)
    took = samples[-1][0] if samples else 0.0
    print(f"slow store (+{LATENCY_MS} ms): {BACKLOG} events in {took:.0f}s, RSS {baseline / 2**20:.0f} MiB after the "
          f"first batch, peak {peak / 2**20:.0f} MiB ({peak / baseline:.2f}x)")
    assert len(samples) >= 3, "the backlog drained too fast to tell anything about memory"
    assert peak <= 1.2 * baseline, f"RSS grew from {baseline / 2**20:.0f} to {peak / 2**20:.0f} MiB"
    await assert_exact(lane, sc)
