"""`make bench`: ingest throughput, freshness, gateway latency and memory on the real local stack, one run.

Every ratio compares figures measured in this run on this machine (figures move from machine to machine):
1. baseline sink: what Weaviate's own Kafka sink connector does (vectors given in the records, no model): an
   aiokafka consumer + batched Weaviate writes (bench/sink_baseline.py).
2. xmodal worker: the real `xmodal worker` subprocess with the configured spaces (by default the shapes CLIP for
   images and texts and the sounds CLAP for audio and texts) draining --events events, half 64x64 PNG images,
   half texts. Its rate is "the worker's maximum" the freshness runs below take fractions of.
3. naive loop: the seed's loop on the first --naive-events of the same events, same models and store code:
   consume one, embed it, insert one object, commit, repeat (bench/naive_loop.py). Target: worker >= 10x it.
4. audio: the worker on --clips clips of 1-2 s (decode, preview, embed in clap); video: the worker on --videos
   4 s clips (decode, cut into segments, embed each keyframe in clip and each segment's sound in clap),
   as clips/s and segments/s.
5. freshness (indexed_at - Kafka timestamp, from the worker's histogram), p50/p99, one worker, open-loop
   publishing at --rate events/s, then at 50% and 80% of the maximum from 2., --seconds each.
   Targets: p99 <= 150 ms at --rate and at 50%, <= 500 ms at 80%.
6. gateway (skip with --no-gateway): the real `xmodal gateway` over the shapes sample while a worker ingests
   --gateway-ingest-rate events/s; the open-loop generator (bench/gateway_load.py, a separate process) sends
   text -> image and image -> image at --gateway-rate/s, searches the capacity (p99 under --gateway-target-ms,
   and saturation), then offers twice the saturation capacity for --overload-s (bench/gateway_bench.py).
7. peak RSS of the worker (during 2. and 5.) and of the gateway (during 6.), sampled from /proc.
8. with --growth (`make bench SCALE=1`, long): bench/growth.py at --growth-sizes objects.

Prints one table and writes bench/results/latest.json (the machine, every row, every raw figure). The defaults
take 4-5 minutes on a 2-core machine; smaller sizes for a quick look (about 2 minutes):

    python -m bench.run --events 600 --naive-events 100 --clips 100 --seconds 5 --no-gateway
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.common import (
    audio_events,
    freshness_quantiles,
    histogram,
    histogram_sums,
    mean_between,
    percentile,
    publish_paced,
    sample_events,
    video_events,
    video_segments,
)
from bench.cpu import CpuWindow, stack_processes
from bench.gateway_bench import GatewayPlan, bench_gateway
from bench.rows import build_rows, ratios
from bench.rss import RssSampler
from schemas.asset_event import AssetEvent
from services.config import WorkerSettings, enabled_spaces
from services.localstack import LocalStack
from services.publish import EventPublisher
from tests.harness.lanes import Lane, WorkerProcess, wait_stored

RESULTS = Path(__file__).parent / "results"


def _lane(tmp: Path) -> Lane:
    return Lane(f"b{uuid.uuid4().hex[:10]}", tmp)


async def bench_sink_baseline(n: int, tmp: Path, *, same_vectors: bool = False) -> dict[str, Any]:
    from bench.sink_baseline import run_sink

    lane = _lane(tmp)
    await lane.create_topics()
    cpu = CpuWindow({"sink": os.getpid(), **stack_processes(LocalStack())}).start()
    try:
        out = await run_sink(lane, n, same_vectors=same_vectors)
        cpu.stop()
        return out | {"cpu_ms_per_1k_events": cpu.per_1k(n)}
    finally:
        await lane.drop(collection=False)  # run_sink drops its collection


async def bench_worker_throughput(tmp: Path, events: list[AssetEvent]) -> dict[str, Any]:
    lane = _lane(tmp)
    await lane.create_topics()
    n = len(events)
    async with EventPublisher(lane.kafka) as pub:
        published = await pub.publish_many(events)
    worker = WorkerProcess(lane)
    worker.start()
    try:
        await worker.wait_ready(timeout_s=300)
        assert worker.proc is not None
        cpu = CpuWindow({"worker": worker.proc.pid, **stack_processes(LocalStack())}).start()
        async with RssSampler(worker.proc.pid) as rss:
            t0 = time.perf_counter()
            await wait_stored(lane, published, timeout_s=900)
            took = time.perf_counter() - t0
        cpu.stop()
        runs = worker.metric("xmodal_model_inputs_total")
        batches = worker.metric("xmodal_batch_size_count")
        # where a batch's time goes (seconds summed over the run; prepare and commit overlap, so they add up to
        # more than the run took when the overlap works)
        stages = {stage: round(worker.metric("xmodal_stage_seconds_sum", stage=stage), 2)
                  for stage in ("lookup", "fetch", "embed", "upsert", "commit", "total")}
    finally:
        worker.stop()
        await lane.drop()
    return {"events": n, "seconds": round(took, 2), "events_per_s": round(n / took, 1),
            "model_inputs": int(runs), "batches": int(batches), "stage_seconds": stages, "rss": rss.summary(),
            "cpu_ms_per_1k_events": cpu.per_1k(n)}


async def bench_naive(tmp: Path, events: list[AssetEvent]) -> dict[str, Any]:
    from bench.naive_loop import load_spaces, run_naive

    lane = _lane(tmp)
    await lane.create_topics()
    embedders = await asyncio.to_thread(load_spaces, WorkerSettings())
    try:
        return await run_naive(lane, events, embedders)
    finally:
        await lane.drop()


async def bench_freshness(rates: list[float], labels: list[str], seconds: float, tmp: Path) -> dict[str, Any]:
    """One worker; each rate in turn for ``seconds``, each drained (committed) before the next starts."""
    lane = _lane(tmp)
    await lane.create_topics()
    worker = WorkerProcess(lane)
    worker.start()
    runs = []
    try:
        await worker.wait_ready(timeout_s=300)
        assert worker.proc is not None
        async with RssSampler(worker.proc.pid) as rss, EventPublisher(lane.kafka, linger_ms=0) as pub:
            await publish_paced(pub, sample_events(20, seed=9), 2.0)  # warm-up: model, connections
            for k, (rate, label) in enumerate(zip(rates, labels, strict=True)):
                events = sample_events(max(1, int(rate * seconds)), seed=2 + k)
                text0 = worker.metrics_text()
                paced = await publish_paced(pub, events, rate, lane=lane)
                text1 = worker.metrics_text()
                q = freshness_quantiles(histogram(text0, "xmodal_freshness_seconds"),
                                        histogram(text1, "xmodal_freshness_seconds"))
                # how the batches adapted to the rate, and where a batch's time went (means per batch)
                batch = mean_between(histogram_sums(text0, "xmodal_batch_size"),
                                     histogram_sums(text1, "xmodal_batch_size"))
                stages = mean_between(histogram_sums(text0, "xmodal_stage_seconds", "stage"),
                                      histogram_sums(text1, "xmodal_stage_seconds", "stage"))
                runs.append({
                    "label": label, "rate": rate, "offered_per_s": paced.offered_per_s(len(events)),
                    "events": len(events), "freshness_p50_ms": q[0.5], "freshness_p99_ms": q[0.99],
                    "publish_to_committed_p50_ms": percentile(paced.committed_ms, 50),
                    "publish_to_committed_p99_ms": percentile(paced.committed_ms, 99),
                    "send_lag_p99_ms": percentile(paced.send_lag_ms, 99),
                    "batch_mean_events": round(batch.get("", float("nan")), 1),
                    "stage_mean_ms": {k: round(v * 1000, 1) for k, v in sorted(stages.items())}})
    finally:
        worker.stop()
        await lane.drop()
    return {"runs": runs, "rss": rss.summary()}


async def main(args: argparse.Namespace) -> int:
    stack = LocalStack()
    if not stack.healthy():
        stack.up()
    random.seed(0)
    started = time.perf_counter()
    out: dict[str, Any] = {"when": datetime.now(UTC).isoformat(), "machine": report.machine(),
                           "args": vars(args)}
    spaces = enabled_spaces(WorkerSettings().spaces)
    out["model"] = " + ".join(f"{name}: {m.name}" for name, m in spaces.items())
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        events = sample_events(args.events, seed=1)
        out["baseline_sink"] = await bench_sink_baseline(args.events, tmp)
        out["baseline_sink_same_vectors"] = await bench_sink_baseline(args.events, tmp, same_vectors=True)
        out["worker_throughput"] = await bench_worker_throughput(tmp, events)
        out["naive_loop"] = await bench_naive(tmp, events[:args.naive_events])
        out["worker_audio_throughput"] = await bench_worker_throughput(tmp, audio_events(args.clips))
        if args.videos:
            videos = video_events(args.videos)
            run = await bench_worker_throughput(tmp, videos)
            segments = video_segments(videos)
            out["worker_video_throughput"] = run | {
                "segments": segments, "segments_per_s": round(segments / run["seconds"], 1)}
        rates = report.freshness_rates(args.rate, out["worker_throughput"]["events_per_s"])
        labels = ["fixed", "50% of max", "80% of max"]
        out["freshness"] = await bench_freshness(rates, labels, args.seconds, tmp)
        if not args.no_gateway:
            plan = GatewayPlan(rate=args.gateway_rate, fixed_s=args.gateway_fixed_s,
                               target_ms=args.gateway_target_ms, ingest_rate=args.gateway_ingest_rate,
                               overload_s=args.overload_s)
            try:
                out["gateway"] = await bench_gateway(tmp, plan)
            except (RuntimeError, AssertionError) as exc:  # keep the ingest figures; say why these are missing
                out["gateway_error"] = str(exc)
                print(f"!! gateway figures missing: {exc}")
    if args.growth:
        from bench.growth import run_growth

        out["growth"] = await run_growth([int(s) for s in args.growth_sizes.split(",")], queries=args.growth_queries)
    out["seconds"] = round(time.perf_counter() - started, 1)
    out["ratios"] = ratios(out)
    rows = build_rows(out)
    out["rows"] = [[r.measure, r.value, r.note] for r in rows]
    print(f"machine: {report.describe(out['machine'])}")
    print(f"spaces: {out['model']}; took {out['seconds']:.0f} s")
    print(report.table(rows))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'latest.json'}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=3000, help="events of the sink and worker throughput runs "
                   "(default 3000; the worker drains them in ~5-10 s here)")
    p.add_argument("--naive-events", type=int, default=600, help="events of the naive loop: the first N of the "
                   "worker's (default 600; ~35/s here, so ~20 s)")
    p.add_argument("--clips", type=int, default=600, help="audio clips of the audio run (default 600)")
    p.add_argument("--videos", type=int, default=120, help="videos of the video run: the clips sample's 4 s "
                   "WebMs with sound, again under new ids (default 120; 0 skips it)")
    p.add_argument("--rate", type=float, default=200.0, help="fixed events/s of the first freshness run "
                   "(default 200; the other two are 50%% and 80%% of the worker's measured maximum)")
    p.add_argument("--seconds", type=float, default=15.0, help="length of each freshness run (default 15)")
    p.add_argument("--no-gateway", action="store_true", help="skip the gateway figures (saves ~3 minutes)")
    p.add_argument("--gateway-rate", type=float, default=100.0, help="offered queries/s of the fixed text -> "
                   "image and image -> image runs (default 100)")
    p.add_argument("--gateway-fixed-s", type=float, default=15.0, help="length of each fixed-rate run (default 15)")
    p.add_argument("--gateway-target-ms", type=float, default=25.0, help="the p99 target the capacity search "
                   "reports the highest rate within (default 25)")
    p.add_argument("--gateway-ingest-rate", type=float, default=20.0, help="events/s the worker ingests during "
                   "the gateway runs (default 20)")
    p.add_argument("--overload-s", type=float, default=20.0, help="length of the 2x-capacity run (default 20)")
    p.add_argument("--growth", action="store_true", help="add the growth table (make bench SCALE=1; long): "
                   "query p99 and write rates at --growth-sizes objects, with and without compression")
    p.add_argument("--growth-sizes", default="10000,100000,1000000", help="object counts of the growth table")
    p.add_argument("--growth-queries", type=int, default=500, help="queries per growth measurement (default 500)")
    return p


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parser().parse_args())))
