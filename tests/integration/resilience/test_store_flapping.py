"""Weaviate coming and going every second (Toxiproxy down, then up) while events stream in: the worker pauses
and resumes again and again, and no event is lost.

Each event is a new asset, so a lost event is a missing object, not one hidden by a later update of the same
asset. This is the fault that lost events before 2026-12-03: the worker paused its partitions with Faust's
``pause_partitions``, which drops records already fetched for a partition paused mid-delivery and then
commits past them. The worker's skipped-offsets counter (streams/offsets.py) must stay at 0 as well.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from services.publish import Published
from tests.harness.faults import WeaviateProxies
from tests.harness.lanes import Lane, WorkerProcess, wait_stored
from tests.integration.ingest.scenario import Scenario, Sent
from tests.integration.resilience.checks import assert_exact, committed_total, publish
from tests.integration.resilience.conftest import sized

pytestmark = pytest.mark.integration
N_EVENTS = sized(1200, 5000)
FLAPS_MIN = 2  # pause/resume cycles the run must see to mean anything (about 6 in 30 s here)
FLAP_FOR_S = 120.0  # generous: the stream is consumed in well under this even while flapping
# A slow stream (40 events/s): the consumer mostly waits for records, so they often arrive while it is paused.
CHUNK, EVERY_S = 10, 0.25


def unique_assets(n: int, seed: int) -> Scenario:
    rng = random.Random(seed)
    sc = Scenario()
    for i in range(n):
        sc.good({"asset_id": f"u-{i}", "op": "upsert", "modality": "text", "text": f"product u-{i}",
                 "metadata": {"seq": rng.randrange(10**6)}})
    return sc


async def stream(lane: Lane, events: list[Sent]) -> list[Published]:
    out: list[Published] = []
    for start in range(0, len(events), CHUNK):
        out += await publish(lane, events[start:start + CHUNK])
        await asyncio.sleep(EVERY_S)
    return out


async def flap(proxies: WeaviateProxies, lane: Lane, total: int, rng: random.Random) -> int:
    """Down for 1 s, up for 0.5-1.5 s, until every event is committed (or FLAP_FOR_S); returns the flaps."""
    flaps, deadline = 0, time.monotonic() + FLAP_FOR_S
    try:
        while time.monotonic() < deadline and await committed_total(lane) < total:
            proxies.down()
            flaps += 1
            await asyncio.sleep(1.0)
            proxies.up()
            await asyncio.sleep(rng.uniform(0.5, 1.5))
    finally:
        proxies.up()
    return flaps


async def test_weaviate_flapping_while_events_stream_in_loses_nothing(lane: Lane,
                                                                      weaviate_proxies: WeaviateProxies) -> None:
    sc = unique_assets(N_EVENTS, seed=11)
    worker = WorkerProcess(lane, env={**weaviate_proxies.env(), "XMODAL_WEAVIATE__TIMEOUT_S": "3",
                                      "XMODAL_BATCH__RETRY_BACKOFF_S": "0.1",
                                      "XMODAL_BATCH__RETRY_BACKOFF_MAX_S": "0.5"})
    worker.start()
    try:
        await worker.wait_ready()
        streaming = asyncio.create_task(stream(lane, sc.events))
        flaps = await flap(weaviate_proxies, lane, len(sc.events), random.Random(3))
        published = await streaming
        await wait_stored(lane, published, timeout_s=300)
        pauses = worker.metric("xmodal_worker_pauses_total")
        skipped = worker.metric("xmodal_consumer_skipped_offsets_total")
    finally:
        worker.stop()
    print(f"{len(published)} events; Weaviate went away {flaps} times; the worker paused {pauses:.0f} times")
    assert pauses >= FLAPS_MIN, f"only {pauses} pauses in {flaps} flaps: the run did not exercise pause/resume"
    assert skipped == 0, f"{skipped} offsets never reached the worker:\n{worker.tail()}"
    await assert_exact(lane, sc)
