"""`make bench`: ingest throughput and freshness on the real local stack.

Every figure is measured in this run next to a baseline measured in the same run on the same machine:
- baseline "sink": what Weaviate's own Kafka sink connector does (vectors given in the records, no model):
  an aiokafka consumer + batched Weaviate writes. xmodal's target is twice its throughput WITH embedding.
- xmodal: the real `xmodal worker` subprocess with the configured spaces (by default the shapes CLIP for
  images and texts and the sounds CLAP for audio and texts), on images + texts, then on audio clips.
Prints a table and writes bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import audio_events, freshness_quantiles, histogram, percentile, publish_at_rate, sample_events
from schemas.asset_event import AssetEvent
from services.config import WorkerSettings, enabled_spaces
from services.localstack import LocalStack
from services.publish import EventPublisher
from tests.harness.lanes import Lane, WorkerProcess, wait_stored

RESULTS = Path(__file__).parent / "results"


async def bench_sink_baseline(n: int, tmp: Path) -> dict[str, Any]:
    from bench.sink_baseline import run_sink

    lane = Lane(f"b{uuid.uuid4().hex[:10]}", tmp)
    await lane.create_topics()
    return await run_sink(lane, n)


async def bench_worker_throughput(n: int, tmp: Path, events: list[AssetEvent] | None = None) -> dict[str, Any]:
    lane = Lane(f"b{uuid.uuid4().hex[:10]}", tmp)
    await lane.create_topics()
    events = events if events is not None else sample_events(n, seed=1)
    n = len(events)
    async with EventPublisher(lane.kafka) as pub:
        published = await pub.publish_many(events)
    worker = WorkerProcess(lane)
    worker.start()
    try:
        await worker.wait_ready(timeout_s=300)
        t0 = time.perf_counter()
        await wait_stored(lane, published, timeout_s=900)
        took = time.perf_counter() - t0
        runs = worker.metric("xmodal_model_inputs_total")
        batches = worker.metric("xmodal_batch_size_count")
    finally:
        worker.stop()
        await _drop(lane)
    return {"events": n, "seconds": round(took, 2), "events_per_s": round(n / took, 1),
            "model_inputs": int(runs), "batches": int(batches)}


async def bench_freshness(rate: float, seconds: float, tmp: Path) -> dict[str, Any]:
    lane = Lane(f"b{uuid.uuid4().hex[:10]}", tmp)
    await lane.create_topics()
    worker = WorkerProcess(lane)
    worker.start()
    try:
        await worker.wait_ready(timeout_s=300)
        async with EventPublisher(lane.kafka, linger_ms=0) as pub:
            await publish_at_rate(pub, sample_events(20, seed=9), 2.0)  # warm-up: model, connections
            before = histogram(worker.metrics_text(), "xmodal_freshness_seconds")
            events = sample_events(int(rate * seconds), seed=2)
            visible = await publish_at_rate(pub, events, rate, lane=lane)
        after = histogram(worker.metrics_text(), "xmodal_freshness_seconds")
    finally:
        worker.stop()
        await _drop(lane)
    q = freshness_quantiles(before, after)
    return {"rate": rate, "events": len(events), "freshness_p50_ms": q[0.5], "freshness_p99_ms": q[0.99],
            "publish_to_committed_p50_ms": percentile(visible, 50), "publish_to_committed_p99_ms":
            percentile(visible, 99)}


async def _drop(lane: Lane) -> None:
    from services.store import AssetStore

    async with AssetStore(lane.weaviate, {"clip": 1}) as store:
        await store.drop_collection()


def table(rows: list[tuple[str, str, str]]) -> str:
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{a:<{w[0]}}  {b:>{w[1]}}  {c}" for a, b, c in rows)


async def main(args: argparse.Namespace) -> int:
    stack = LocalStack()
    if not stack.healthy():
        stack.up()
    random.seed(0)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        base = await bench_sink_baseline(args.events, tmp)
        thr = await bench_worker_throughput(args.events, tmp)
        audio = await bench_worker_throughput(0, tmp, events=audio_events(args.clips))
        fresh = await bench_freshness(args.rate, args.seconds, tmp)
    spaces = enabled_spaces(WorkerSettings().spaces)
    model = " + ".join(f"{name}: {m.name}" for name, m in spaces.items())
    ratio = thr["events_per_s"] / max(base["events_per_s"], 1e-9)
    rows = [
        ("measure", "value", "note"),
        ("baseline sink (vectors given, no model)", f"{base['events_per_s']:.0f}/s", f"{base['events']} events"),
        ("xmodal worker, 50% images 50% texts", f"{thr['events_per_s']:.0f}/s",
         f"{thr['events']} events, {thr['batches']} batches; target 2.00x baseline"),
        ("xmodal worker, audio clips (decode, preview, embed)", f"{audio['events_per_s']:.0f}/s",
         f"{audio['events']} clips of 1-2 s, {audio['batches']} batches"),
        ("xmodal / baseline", f"{ratio:.2f}x", ""),
        (f"freshness p50 at {args.rate:.0f}/s", f"{fresh['freshness_p50_ms']:.0f} ms", "indexed_at - Kafka time"),
        (f"freshness p99 at {args.rate:.0f}/s", f"{fresh['freshness_p99_ms']:.0f} ms", "target <= 150 ms"),
        ("publish -> committed p50", f"{fresh['publish_to_committed_p50_ms']:.0f} ms", "read-your-writes wait"),
        ("publish -> committed p99", f"{fresh['publish_to_committed_p99_ms']:.0f} ms", ""),
    ]
    print(f"spaces: {model}")
    print(table(rows))
    RESULTS.mkdir(exist_ok=True)
    out = {"when": datetime.now(UTC).isoformat(), "machine": platform.node(), "cpus": _cpus(), "model": model,
           "baseline_sink": base, "worker_throughput": thr, "worker_audio_throughput": audio, "freshness": fresh,
           "ratio_vs_baseline": ratio}
    (RESULTS / "latest.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'latest.json'}")
    return 0


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=3000, help="events for the throughput runs")
    p.add_argument("--clips", type=int, default=600, help="audio clips for the audio throughput run")
    p.add_argument("--rate", type=float, default=200.0, help="events/s for the freshness run")
    p.add_argument("--seconds", type=float, default=15.0, help="length of the freshness run")
    raise SystemExit(asyncio.run(main(p.parse_args())))
