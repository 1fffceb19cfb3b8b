"""The gateway at twice its measured capacity while a worker ingests: only 429s beyond capacity, no 5xx, and
the admitted queries' p99 stays close to the unloaded p99.

Three processes besides the stack: a real `xmodal gateway` over a lane's collection with the shapes sample
indexed, a real `xmodal worker` ingesting shapes events published throughout the run, and the open-loop load
generator (bench/gateway_load.py: unloaded p50/p99, capacity search, then 2x capacity). The overload phase
lasts 15 s here and 2 minutes with XMODAL_SOAK=1 (the issue's must-show).

The bound on the admitted p99 is max(2 x unloaded p99, unloaded p99 + 150 ms) rather than a bare 2x: this
development machine has 2 cores shared by Kafka, Weaviate, the worker, the gateway, the load generator and
other people's jobs, so a p99 over a few thousand queries carries scheduling stalls of tens of milliseconds
that no admission policy controls; the slack absorbs those, while the failure this test guards against
(admission letting a queue build: p99 at 10x unloaded, 700 ms, measured before the fix) stays far outside
it. No other timing is asserted.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bench.common import sample_events
from cli.invoke import with_root
from services.config import ModelSettings
from services.embedding.model import load_embedder
from services.publish import EventPublisher
from services.store import AssetStore
from tests.harness.catalogue import index_shapes_sample
from tests.harness.gateways import GatewayProcess, start_gateway, wait_ready
from tests.harness.lanes import Lane, WorkerProcess, wait_stored

pytestmark = pytest.mark.integration

SOAK = os.environ.get("XMODAL_SOAK") == "1"
OVERLOAD_S = 120.0 if SOAK else 15.0
INGEST_PER_S = 10.0
#: One space, no reranker: the shapes CLIP the sample is indexed with, on CPU, in both processes.
SPACE_ENV = {"XMODAL_SPACES__CLAP__ENABLED": "false", "XMODAL_SPACES__CLIP__DEVICE": "cpu"}


@pytest.fixture
async def system(stack: Any, unique_name: str, tmp_path: Path) -> AsyncIterator[tuple[Lane, GatewayProcess]]:
    lane = Lane(unique_name, tmp_path, extra_env=SPACE_ENV)
    await lane.create_topics()
    embedder = await asyncio.to_thread(load_embedder, ModelSettings(device="cpu"))
    async with AssetStore(lane.weaviate, {embedder.space: embedder.dim}) as store:
        await index_shapes_sample(store, embedder)
    worker = WorkerProcess(lane)
    worker.start()
    gateway = start_gateway(lane, SPACE_ENV)
    try:
        await worker.wait_ready()
        await wait_ready(gateway)
        yield lane, gateway
    finally:
        gateway.stop()
        worker.stop()
        async with AssetStore(lane.weaviate, {embedder.space: embedder.dim}) as store:
            await store.drop_collection()


def load_command(url: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "bench.gateway_load", "--url", url, "--out", str(out),
            "--low-rate", "5", "--warmup-s", "3", "--unloaded-s", "8", "--step-s", "3", "--step-factor", "1.35",
            "--factor", "2", "--duration-s", str(OVERLOAD_S)]


async def test_twice_capacity_while_ingesting_sheds_with_429_and_keeps_p99(
    system: tuple[Lane, GatewayProcess], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lane, gateway = system
    report_path = tmp_path / "gateway_overload.json"
    load = await asyncio.create_subprocess_exec(
        *load_command(gateway.url, report_path), env=with_root(dict(os.environ)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    answers = asyncio.create_task(load.communicate())
    published = []
    async with EventPublisher(lane.kafka) as pub:
        events = itertools.cycle(sample_events(1000, seed=11))  # repeats are updates: still work
        started = time.perf_counter()
        while not answers.done():  # ingest at a steady rate for as long as the load runs
            published.append(await pub.publish(next(events)))
            delay = started + len(published) / INGEST_PER_S - time.perf_counter()
            await asyncio.wait({answers}, timeout=max(delay, 0.0))
    output = (await answers)[0].decode()
    assert load.returncode == 0, output
    await wait_stored(lane, published)  # the worker kept ingesting through the overload
    report = json.loads(await asyncio.to_thread(report_path.read_text))
    unloaded, overload = report["unloaded"], report["overload"]
    with capsys.disabled():
        print(f"\n  gateway overload ({len(published)} events ingested meanwhile):\n{output}")
    bound = max(2 * unloaded["ok_p99_ms"], unloaded["ok_p99_ms"] + 150.0)
    assert unloaded["rejected_429"] == 0 and unloaded["errors_5xx"] == 0, output
    assert overload["errors_5xx"] == 0, output
    assert overload["client_errors"] == 0 and overload["other_status"] == 0, output
    assert overload["rejected_429"] > 0, output  # at 2x capacity some must be shed
    # admission's reasons; "overloaded" alone would be the query embedder's queue, a bound further in
    assert set(overload["reasons_429"]) <= {"expected_wait", "queue_timeout", "overloaded"}, output
    assert overload["ok"] > 0, output
    assert overload["ok_p99_ms"] <= bound, f"admitted p99 {overload['ok_p99_ms']} ms > {bound:.0f} ms\n{output}"
