"""Helpers of the monitoring tests: small text events, a worker's labelled samples, bounded waits."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from schemas.asset_event import AssetEvent
from tests.harness.lanes import Lane, WorkerProcess

T0 = datetime(2026, 11, 27, 9, tzinfo=UTC)


def text_events(n: int, prefix: str = "lag") -> list[AssetEvent]:
    """Small text events, one asset each, so every one is stored (and observed by the freshness histogram)."""
    return [AssetEvent.model_validate({"schema_version": 1, "asset_id": f"{prefix}-{i}", "modality": "text",
                                       "text": f"a small {('red', 'green', 'blue')[i % 3]} thing number {i}",
                                       "metadata": {"i": i}, "event_time": T0 + timedelta(milliseconds=i)})
            for i in range(n)]


def labelled(worker: WorkerProcess, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of ``name`` in the worker's /metrics, keyed by its labels."""
    out = {}
    for line in worker.metrics_text().splitlines():
        m = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if m:
            out[tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(1) or "")))] = float(m.group(2))
    return out


async def eventually(check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Wait (bounded) for a figure that a background loop refreshes; fail with ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        await asyncio.sleep(0.25)


async def remove_lane(lane: Lane) -> None:
    """Drop the lane's collection and topics (tests share one broker and one Weaviate)."""
    await lane.drop()
