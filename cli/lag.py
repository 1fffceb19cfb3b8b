"""`xmodal lag`: the worker group's lag as a table, a live view or JSON, with a time-to-drain estimate."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cli.command import Subparsers
    from services.config import KafkaSettings
    from services.monitoring.lag import LagSnapshot


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "lag", help="per-partition lag of the worker group (table, --watch, --json)",
        description="Reads the end offsets of the `assets` topic and the worker group's committed offsets "
        "from Kafka (XMODAL_KAFKA__TOPIC, XMODAL_KAFKA__GROUP_ID). Because the worker commits only after "
        "storing, lag = events not yet searchable. Also prints the consume rate and the time to drain.",
    )
    p.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    p.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between --watch refreshes (default 2)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from services.config import WorkerSettings

    return asyncio.run(show_lag(WorkerSettings().kafka, watch=args.watch, as_json=args.json,
                                interval_s=args.interval))


def render(snap: LagSnapshot, rate: float | None) -> str:
    lines = [f"topic {snap.topic}  group {snap.group}  state {snap.state}  members {snap.members}",
             f"{'partition':>9} {'end':>10} {'committed':>10} {'lag':>8}"]
    for p in snap.partitions:
        committed = "-" if p.committed is None else str(p.committed)
        lines.append(f"{p.partition:>9} {p.end_offset:>10} {committed:>10} {p.lag:>8}")
    lines.append(f"{'total':>9} {'':>10} {'':>10} {snap.total_lag:>8}")
    if rate is not None:
        drain = "n/a (not consuming)" if rate <= 0 else f"{snap.total_lag / rate:.1f}s"
        lines.append(f"consume rate {max(rate, 0):.1f} events/s, time to drain {drain}")
    return "\n".join(lines)


async def show_lag(kafka: KafkaSettings, *, watch: bool, as_json: bool, interval_s: float) -> int:
    from services.monitoring.lag import ConsumeRate, LagReader

    async with LagReader(kafka) as reader:
        prev = await reader.snapshot()
        rate = None
        if as_json or not watch:
            # a second snapshot gives the recent consume rate (committed offsets per second)
            await asyncio.sleep(min(interval_s, 1.0))
            snap = await reader.snapshot()
            rate = _rate(prev, snap)
            if as_json:
                print(json.dumps(dict(snap.to_json(), consume_rate=rate), indent=2))
            else:
                print(render(snap, rate))
            return 0
        window = ConsumeRate(window_s=30)  # steadier than two snapshots while commits come in bursts
        window.add(prev)
        while True:
            await asyncio.sleep(interval_s)
            snap = await reader.snapshot()
            window.add(snap)
            rate = window.rate()
            sys.stdout.write("\x1b[2J\x1b[H" + render(snap, rate) + "\n")
            sys.stdout.flush()


def _rate(a: LagSnapshot, b: LagSnapshot) -> float:
    return max(0, b.consumed - a.consumed) / max(b.taken_at - a.taken_at, 1e-6)
