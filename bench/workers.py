"""Workers per machine: the same events drained by 1 worker and by 2 workers in one group, alternately.

On a machine shared by Kafka, Weaviate and the worker, one worker does not use every core: its batches go
through lookup, decode, embed and write one after the other (a write overlaps the next batch's preparation,
nothing more), so it waits on Weaviate and on its inference thread in turn. A second `xmodal worker` in the
same consumer group takes half the partitions and fills those waits. Each run starts its workers, waits until
the group has settled (every partition held exactly once), publishes ``--events`` events (half 64x64 PNG
images, half texts) and times them from the first publish to the last commit; the CPU of each worker, Kafka
and Weaviate over that window comes with it (bench/cpu.py). Prints a table and writes
bench/results/workers.json. Not part of `make bench` (about 2 minutes):

    flock /tmp/xmodal-heavy.lock .venv/bin/python -m bench.workers
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import sample_events
from bench.cpu import CpuWindow, stack_processes
from bench.report import Row, fmt_ratio, machine, table
from schemas.asset_event import AssetEvent
from services.localstack import LocalStack
from services.publish import EventPublisher
from tests.harness.lanes import Lane, WorkerProcess, wait_stored

RESULTS = Path(__file__).parent / "results"


def _held(worker: WorkerProcess) -> set[str]:
    try:
        return set(worker.readyz()[1]["partitions"])
    except (OSError, KeyError, ValueError):
        return set()


async def run(n_workers: int, events: list[AssetEvent], tmp: Path) -> dict[str, Any]:
    lane = Lane(f"b{uuid.uuid4().hex[:10]}", tmp)
    await lane.create_topics()
    workers = [WorkerProcess(lane, name=f"w{i}") for i in range(n_workers)]
    for w in workers:
        w.start()
    try:
        for w in workers:
            await w.wait_ready(timeout_s=300)
        deadline = time.monotonic() + 120
        while not (all(held := [_held(w) for w in workers]) and sum(map(len, held)) == lane.partitions):
            assert time.monotonic() < deadline, f"the group did not settle: {held}"
            await asyncio.sleep(0.5)
        cpu = CpuWindow({**{w.name: w.proc.pid for w in workers if w.proc}, **stack_processes(LocalStack())})
        cpu.start()
        t0 = time.perf_counter()
        async with EventPublisher(lane.kafka) as pub:
            published = await pub.publish_many(events)
        await wait_stored(lane, published, timeout_s=900)
        took = time.perf_counter() - t0
        cpu.stop()
    finally:
        for w in workers:
            w.stop()
        await lane.drop()
    return {"workers": n_workers, "events": len(events), "seconds": round(took, 2),
            "events_per_s": round(len(events) / took, 1), "cpu_ms_per_1k_events": cpu.per_1k(len(events))}


def rows(runs: list[dict[str, Any]]) -> list[Row]:
    """The table: each run, then the median rate of each worker count and their ratio.

    >>> r = [{"workers": 1, "events_per_s": 600.0, "cpu_ms_per_1k_events": {"all": 1300.0}},
    ...      {"workers": 2, "events_per_s": 900.0, "cpu_ms_per_1k_events": {"all": 1400.0}}]
    >>> [(x.measure, x.value) for x in rows(r)][-1]
    ('2 workers / 1 worker', '1.50x')
    """
    out = [Row(f"run {i}: {r['workers']} worker{'s' if r['workers'] > 1 else ''}", f"{r['events_per_s']:,.0f}/s",
               f"CPU {r['cpu_ms_per_1k_events']['all']:,.0f} ms per 1k events, every process")
           for i, r in enumerate(runs, 1)]
    median = {n: statistics.median(r["events_per_s"] for r in runs if r["workers"] == n) for n in (1, 2)
              if any(r["workers"] == n for r in runs)}
    if len(median) == 2:
        out.append(Row("2 workers / 1 worker", fmt_ratio(median[2] / median[1]), "medians, same run"))
    return out


async def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=3000, help="events per run (default 3000)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of (1 worker, 2 workers) (default 2)")
    ap.add_argument("--out", type=Path, default=RESULTS / "workers.json")
    args = ap.parse_args(argv)
    stack = LocalStack()
    if not stack.healthy():
        stack.up()
    events = sample_events(args.events, seed=11)
    runs = []
    with tempfile.TemporaryDirectory() as d:
        for _ in range(args.rounds):
            for n in (1, 2):
                runs.append(await run(n, events, Path(d)))
                print(json.dumps(runs[-1]), flush=True)
    print(table(rows(runs)))
    args.out.write_text(json.dumps({"machine": machine(), "runs": runs}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
