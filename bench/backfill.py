"""Backfill beside live traffic: how fresh live events stay while `xmodal publish --rate` backfills the same topic.

On the running local stack (`make up`), with a real `xmodal worker` on its own lane (topic, group, collection):
1. the worker's throughput on the bench's events (3,000 published at once, timed until committed);
2. live alone: a producer publishes --live-rate events/s (10) for --seconds;
3. live + paced backfill: `xmodal publish backfill.jsonl --rate R` beside it, R = --fraction (0.5) of (1)
   (several fractions: one phase each);
4. live + unpaced backfill: as many other events, without --rate (what --rate is for).
Each backfill starts before the live producer and outlasts it. For every phase: the live events' freshness
p50/p99 (indexed_at read back from Weaviate minus the record's Kafka timestamp, per live event, the worker's own
definition) and publish -> committed p50/p99, the freshness of everything stored in the phase (the worker's
histogram), and the backfill's achieved rate. Prints a table and writes bench/results/backfill.json. Not part of
`make bench`.

    flock /tmp/xmodal-heavy.lock .venv/bin/python -m bench.backfill
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.common import freshness_quantiles, histogram, percentile, publish_at_rate, sample_events
from cli.invoke import XMODAL, with_root
from schemas.asset_event import AssetEvent
from services.config import WorkerSettings, enabled_spaces
from services.localstack import LocalStack
from services.monitoring.lag import LagReader
from services.publish import EventPublisher
from services.publish.checkpoint import CheckpointFile
from services.store import AssetStore
from tests.harness.lanes import Lane, WorkerProcess, wait_stored

RESULTS = Path(__file__).parent / "results"
SUMMARY = re.compile(r"published ([\d,]+) events.* in ([\d.]+)s \(([\d,]+) events/s\)")


def renamed(events: list[AssetEvent], prefix: str) -> list[AssetEvent]:
    """``events`` with asset ids of their own: each phase's assets are new to the store (no metadata-only path)."""
    return [e.model_copy(update={"asset_id": f"{prefix}-{e.asset_id}-{i}"}) for i, e in enumerate(events)]


async def end_offsets(lane: Lane) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=lane.kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(lane.kafka.topic, p) for p in range(lane.partitions)]
        return {tp.partition: off for tp, off in (await consumer.end_offsets(parts)).items()}
    finally:
        await consumer.stop()


async def record_times(lane: Lane, since: dict[int, int], prefix: str) -> dict[str, int]:
    """Kafka timestamp (ms) of each record keyed ``prefix...`` written after the offsets ``since``."""
    until = await end_offsets(lane)
    consumer = AIOKafkaConsumer(bootstrap_servers=lane.kafka.bootstrap_servers, enable_auto_commit=False,
                                max_partition_fetch_bytes=4 * 1_048_576)
    await consumer.start()
    out: dict[str, int] = {}
    try:
        parts = [TopicPartition(lane.kafka.topic, p) for p in range(lane.partitions)]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, since.get(tp.partition, 0))
        deadline = time.monotonic() + 120
        while [tp for tp in parts if await consumer.position(tp) < until[tp.partition]]:
            if time.monotonic() > deadline:
                raise RuntimeError("could not read the topic to its end in 120 s")
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out.update((r.key.decode(), r.timestamp) for r in records if r.key.startswith(prefix.encode()))
    finally:
        await consumer.stop()
    return out


async def live_freshness(lane: Lane, since: dict[int, int], live: list[AssetEvent],
                         prefix: str) -> list[tuple[int, float]]:
    """(Kafka timestamp, indexed_at - that timestamp) in ms of each live event, as the worker's histogram counts."""
    times = await record_times(lane, since, prefix)
    out = []
    async with AssetStore(lane.weaviate, {"clip": 1}) as store:
        for ev in live:
            stored = await store.get(ev.asset_id)
            if stored is None or ev.asset_id not in times:
                raise RuntimeError(f"live event {ev.asset_id} is not stored or not in the topic")
            ts = times[ev.asset_id]
            out.append((ts, max(0.0, stored.indexed_at.timestamp() * 1000 - ts)))
    return out


def write_jsonl(path: Path, events: list[AssetEvent]) -> Path:
    with path.open("w") as fh:
        fh.writelines(e.model_dump_json(exclude_none=True) + "\n" for e in events)
    return path


class Backfill:
    """One `xmodal publish SOURCE [--rate R]` subprocess on the lane's topic, followed through its checkpoint."""

    def __init__(self, lane: Lane, events: list[AssetEvent], rate: float, tmp: Path, name: str) -> None:
        self.lane, self.rate = lane, rate
        self.source = write_jsonl(tmp / f"{name}.jsonl", events)
        self.file = CheckpointFile(tmp / f"{name}.checkpoint.json")
        self.log = tmp / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Returns once the first chunk is acknowledged (the first pass validates every event before that)."""
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *XMODAL, "publish", str(self.source), "--rate", str(self.rate), "--checkpoint", str(self.file.path),
                env=with_root(self.lane.env()), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while self.acked() == 0:
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the backfill did not start ({self.proc.returncode}); see {self.log}")
            await asyncio.sleep(0.05)

    def acked(self) -> int:
        saved = self.file.load()
        return 0 if saved is None else saved.acked

    async def finish(self) -> dict[str, Any]:
        """Wait for the publisher to end and the worker to store it all; its summary."""
        assert self.proc is not None
        await asyncio.wait_for(self.proc.wait(), timeout=600)
        text = self.log.read_text(errors="replace")
        summary = SUMMARY.search(text)
        saved = self.file.load()
        if self.proc.returncode != 0 or summary is None or saved is None:
            raise RuntimeError(f"the backfill failed ({self.proc.returncode}):\n{text[-2000:]}")
        async with LagReader(self.lane.kafka) as reader:
            ok, _ = await reader.wait_committed(saved.offsets, timeout_s=600)
        if not ok:
            raise RuntimeError("the worker did not store the backfill within 600 s")
        return {"backfill_events": int(summary[1].replace(",", "")), "backfill_seconds": float(summary[2]),
                "backfill_rate_asked": self.rate or None,
                "backfill_rate_whole_run": float(summary[3].replace(",", ""))}


async def phase(lane: Lane, worker: WorkerProcess, pub: EventPublisher, *, name: str, live_rate: float,
                seconds: float, backfill: Backfill | None) -> dict[str, Any]:
    """Live events at ``live_rate`` for ``seconds``, beside a backfill when one is given; measured."""
    prefix = f"live{uuid.uuid4().hex[:6]}"
    live = renamed(sample_events(int(live_rate * seconds), seed=7), prefix)
    since = await end_offsets(lane)
    before = histogram(worker.metrics_text(), "xmodal_freshness_seconds")
    out: dict[str, Any] = {"phase": name, "live_rate": live_rate, "live_events": len(live), "seconds": seconds}
    if backfill is None:
        visible = await publish_at_rate(pub, live, live_rate, lane=lane)
    else:
        await backfill.start()
        acked_from, t_from = backfill.acked(), time.perf_counter()
        visible = await publish_at_rate(pub, live, live_rate, lane=lane)
        acked_to, t_to = backfill.acked(), time.perf_counter()
        if backfill.rate and backfill.proc is not None and backfill.proc.returncode is not None:
            print(f"!! {name}: the backfill ended before the live producer; its rate beside live is understated")
        out |= await backfill.finish()
        if backfill.rate:  # an unpaced one is over in seconds: its rate is the whole run's
            out["backfill_rate_beside_live"] = round((acked_to - acked_from) / (t_to - t_from), 1)
    after = histogram(worker.metrics_text(), "xmodal_freshness_seconds")
    timed = await live_freshness(lane, since, live, prefix)
    fresh = [ms for _, ms in timed]
    first = min(ts for ts, _ in timed)
    every = freshness_quantiles(before, after)
    return out | {"live_freshness_p50_ms": percentile(fresh, 50), "live_freshness_p99_ms": percentile(fresh, 99),
                  "live_freshness_max_ms": round(max(fresh), 1),
                  "live_publish_to_committed_p50_ms": percentile(visible, 50),
                  "live_publish_to_committed_p99_ms": percentile(visible, 99),
                  "all_freshness_p50_ms": every[0.5], "all_freshness_p99_ms": every[0.99],
                  # when the slow ones were published (s into the phase): a cluster is one stall, not a trend
                  "live_over_500ms": [[round((ts - first) / 1000, 1), round(ms)] for ts, ms in timed if ms > 500]}


async def throughput(lane: Lane, n: int) -> float:
    """Events/s the running worker stores when ``n`` of the bench's events arrive at once."""
    events = renamed(sample_events(n, seed=1), "tp")
    t0 = time.perf_counter()
    async with EventPublisher(lane.kafka) as pub:
        published = await pub.publish_many(events)
    await wait_stored(lane, published, timeout_s=600)
    return n / (time.perf_counter() - t0)


def table(rows: list[dict[str, Any]], capacity: float) -> str:
    head = ("phase", "live p50", "live p99", "live max", "live publish->committed p99", "all events p50 / p99",
            "backfill rate")
    lines = [head]
    for r in rows:
        asked = r.get("backfill_rate_asked")
        rate = "" if "backfill_rate_beside_live" not in r else (
            f"{r['backfill_rate_beside_live']:.0f}/s of {asked:.0f}/s asked" if asked
            else f"{r['backfill_rate_whole_run']:.0f}/s (unpaced)")
        lines.append((r["phase"], f"{r['live_freshness_p50_ms']:.0f} ms", f"{r['live_freshness_p99_ms']:.0f} ms",
                      f"{r['live_freshness_max_ms']:.0f} ms", f"{r['live_publish_to_committed_p99_ms']:.0f} ms",
                      f"{r['all_freshness_p50_ms']:.0f} / {r['all_freshness_p99_ms']:.0f} ms", rate))
    w = [max(len(line[i]) for line in lines) for i in range(len(head))]
    body = "\n".join("  ".join(f"{c:<{w[i]}}" if i == 0 else f"{c:>{w[i]}}" for i, c in enumerate(line))
                     for line in lines)
    return f"worker throughput: {capacity:.0f} events/s (50% images, 50% texts)\n{body}"


async def main(args: argparse.Namespace) -> int:
    stack = LocalStack()
    if not stack.healthy():
        stack.up()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        lane = Lane(f"bf{uuid.uuid4().hex[:10]}", tmp)
        await lane.create_topics()
        worker = WorkerProcess(lane)
        worker.start()
        try:
            await worker.wait_ready(timeout_s=300)
            async with EventPublisher(lane.kafka, linger_ms=0) as pub:
                await publish_at_rate(pub, renamed(sample_events(20, seed=9), "warm"), 2.0)  # model, connections
                capacity = args.throughput or await throughput(lane, args.events)
                rates = [round(capacity * f) for f in args.fraction]
                n_backfill = int(max(rates) * (args.seconds + 5))  # outlasts the live producer
                common: dict[str, Any] = {"live_rate": args.live_rate, "seconds": args.seconds}
                rows = [await phase(lane, worker, pub, name="live alone", backfill=None, **common)]
                for i, rate in enumerate(rates):
                    paced = Backfill(lane, renamed(sample_events(int(rate * (args.seconds + 5)), seed=5 + i),
                                                   f"bf{i}"), rate, tmp, f"paced{i}")
                    rows.append(await phase(lane, worker, pub, name=f"live + backfill --rate {rate}",
                                            backfill=paced, **common))
                unpaced = Backfill(lane, renamed(sample_events(n_backfill, seed=4), "bfu"), 0, tmp, "unpaced")
                rows.append(await phase(lane, worker, pub, name="live + backfill unpaced", backfill=unpaced,
                                        **common))
        finally:
            worker.stop()
            await lane.drop()  # the backfills leave tens of thousands of records
    spaces = enabled_spaces(WorkerSettings().spaces)
    model = " + ".join(f"{name}: {m.name}" for name, m in spaces.items())
    print(f"spaces: {model}")
    print(table(rows, capacity))
    RESULTS.mkdir(exist_ok=True)
    out = {"when": datetime.now(UTC).isoformat(), "machine": platform.node(), "model": model,
           "worker_events_per_s": round(capacity, 1), "backfill_fractions": args.fraction, "phases": rows}
    path = RESULTS / "backfill.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=3000, help="events for the throughput measurement")
    p.add_argument("--throughput", type=float, default=0.0, help="skip the measurement: the worker's events/s")
    p.add_argument("--fraction", type=float, nargs="+", default=[0.5],
                   help="backfill --rate as a share of the throughput; several give one phase each")
    p.add_argument("--live-rate", type=float, default=10.0, help="live events/s")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each phase's live traffic")
    raise SystemExit(asyncio.run(main(p.parse_args())))
