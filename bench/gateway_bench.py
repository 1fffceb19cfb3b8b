"""Gateway latency in `make bench`: the real `xmodal gateway` process over a lane with ingestion running.

The lane's collection holds the shapes sample (written through AssetStore, as the gateway's tests do) and a
real `xmodal worker` ingests shapes events into it at ``ingest_rate`` for the whole run, while the open-loop
load generator (bench/gateway_load.py, a separate process) runs: unloaded p50/p99, text -> image and
image -> image at a fixed offered rate, the capacity search (the highest rate within the p99 target, and the
saturation capacity), then an overload at twice the saturation capacity (429 share, 5xx, admitted p99 against
the unloaded p99). The gateway runs the configured spaces with the reranker off (it only runs when a query
asks for it); the peak RSS of both processes is sampled meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import sample_events
from bench.rss import RssSampler
from cli.invoke import with_root
from services.config import WorkerSettings
from services.embedding.model import load_embedder
from services.publish import EventPublisher, Published
from services.store import AssetStore
from tests.harness.catalogue import index_shapes_sample
from tests.harness.gateways import start_gateway, wait_ready
from tests.harness.lanes import Lane, WorkerProcess, wait_stored


@dataclass(frozen=True)
class GatewayPlan:
    """The bench's gateway figures: sizes and rates (bench.run's flags)."""

    rate: float = 100.0  # fixed offered rate of the text -> image and image -> image phases
    fixed_s: float = 15.0
    target_ms: float = 25.0
    ingest_rate: float = 20.0
    overload_s: float = 20.0
    search_from: float = 20.0
    step_s: float = 4.0
    step_factor: float = 1.25


def load_command(url: str, out: Path, plan: GatewayPlan) -> list[str]:
    return [sys.executable, "-m", "bench.gateway_load", "--url", url, "--out", str(out),
            "--low-rate", "10", "--warmup-s", "3", "--unloaded-s", "10", "--fixed-rate", str(plan.rate),
            "--fixed-s", str(plan.fixed_s), "--search-from", str(plan.search_from), "--step-s", str(plan.step_s),
            "--step-factor", str(plan.step_factor), "--target-ms", str(plan.target_ms), "--factor", "2",
            "--duration-s", str(plan.overload_s)]


async def _ingest_while(lane: Lane, running: asyncio.Future[Any], rate: float) -> list[Published]:
    """Publish shapes events at ``rate``/s until ``running`` is done (repeats are updates: still work)."""
    published: list[Published] = []
    async with EventPublisher(lane.kafka) as pub:
        events = itertools.cycle(sample_events(1000, seed=11))
        started = time.perf_counter()
        while not running.done():
            published.append(await pub.publish(next(events)))
            delay = started + len(published) / rate - time.perf_counter()
            await asyncio.wait({running}, timeout=max(delay, 0.0))
    return published


async def bench_gateway(tmp: Path, plan: GatewayPlan) -> dict[str, Any]:
    """The gateway's figures (the load generator's report, plus RSS and what was ingested meanwhile)."""
    lane = Lane(f"bg{uuid.uuid4().hex[:9]}", tmp)
    await lane.create_topics()
    embedder = await asyncio.to_thread(load_embedder, WorkerSettings().spaces["clip"])
    async with AssetStore(lane.weaviate, {embedder.space: embedder.dim}) as store:
        sample = await index_shapes_sample(store, embedder)
    worker = WorkerProcess(lane)
    worker.start()
    gateway = start_gateway(lane)
    report_path = tmp / "gateway_load.json"
    try:
        await worker.wait_ready(timeout_s=300)
        await wait_ready(gateway)
        assert worker.proc is not None
        async with RssSampler(worker.proc.pid) as w_rss, RssSampler(gateway.proc.pid) as g_rss:
            load = await asyncio.create_subprocess_exec(
                *load_command(gateway.url, report_path, plan), env=with_root(dict(os.environ)),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            answers = asyncio.ensure_future(load.communicate())
            published = await _ingest_while(lane, answers, plan.ingest_rate)
            output = (await answers)[0].decode()
            if load.returncode != 0:
                raise RuntimeError(f"the gateway load generator failed:\n{output}")
            await wait_stored(lane, published, timeout_s=300)
    finally:
        gateway.stop()
        worker.stop()
        await lane.drop()
    report: dict[str, Any] = json.loads(report_path.read_text())
    report.pop("url", None)
    report |= {"catalogue_objects": len(sample), "ingested_meanwhile": len(published),
               "ingest_rate": plan.ingest_rate, "gateway_rss": g_rss.summary(), "worker_rss": w_rss.summary(),
               "load_output": output.splitlines()}
    return report
