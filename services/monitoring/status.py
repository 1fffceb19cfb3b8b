"""The status page's figures: sampled every ``status_interval_s`` into a bounded ring of recent points.

Each sample reads the worker group's lag from Kafka (per partition; committed offsets give the throughput)
and scrapes every worker's /metrics (freshness histogram, events by outcome, dead letters by reason).
Freshness quantiles are computed from the histogram's bucket deltas per interval, the way PromQL's
``histogram_quantile(rate(...))`` does. A worker or Kafka that cannot be reached is reported as such;
sampling goes on.

>>> from services.config import GatewaySettings
>>> collector = StatusCollector(GatewaySettings(status_interval_s=2.0), window_s=600)
>>> collector.capacity
300
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.config import GatewaySettings
from services.lifecycle import BackgroundTask
from services.monitoring.exporter import LagExporter
from services.monitoring.lag import LagSnapshot
from services.monitoring.promtext import Buckets, WorkerFigures, merge, quantile
from services.monitoring.scrape import WorkerScraper, WorkerState

#: How long a worker scrape may take, at most (a slow worker must not stall the page's sampling).
SCRAPE_TIMEOUT_S = 3.0
#: Points averaged for the current throughput figure (5 x 2 s by default).
RECENT_POINTS = 5


@dataclass(frozen=True)
class Point:
    """One sample."""

    t: float
    lag: dict[int, int] | None  # partition -> lag; None when Kafka could not be read
    throughput: float | None  # events/s committed by the group since the previous point
    incoming: float | None  # events/s produced to the topic since the previous point
    freshness: Buckets | None  # freshness observations in this interval, all workers
    dead_letters: dict[str, float] = field(default_factory=dict)  # new dead letters in this interval


class StatusCollector:
    """Samples lag and worker figures on a timer; ``snapshot()`` is the JSON the status page draws."""

    def __init__(
        self, settings: GatewaySettings, *, window_s: float = 600.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.interval_s = settings.status_interval_s
        self.window_s = window_s
        self.capacity = max(2, math.ceil(window_s / self.interval_s))
        self.points: deque[Point] = deque(maxlen=self.capacity)
        self._clock = clock
        self._scraper = WorkerScraper(settings.worker_metrics_urls, clock=clock,
                                      timeout_s=min(SCRAPE_TIMEOUT_S, self.interval_s * 2))
        self._lag = LagExporter(settings.kafka, rate_window_s=30.0)
        self._last_lag: LagSnapshot | None = None
        # a bug in sampling must be loud: the page would otherwise show frozen figures as if current
        self._task = BackgroundTask(self._run, name="status-collector", crashed="status sampling stopped")

    @property
    def workers(self) -> list[WorkerState]:
        return list(self._scraper.workers.values())

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start sampling in the background (idempotent)."""
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()
        await self._lag.close()
        await self._scraper.close()

    async def _run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self.interval_s)

    # --- sampling --------------------------------------------------------------------------------
    async def sample(self) -> Point:
        """Take one sample now and append it to the ring (the timer calls this; so can tests)."""
        snap, before = await asyncio.gather(self._lag.tick(), self._scraper.scrape_all())
        point = self._point(self._clock(), snap, before)
        self.points.append(point)
        if snap is not None:
            self._last_lag = snap
        return point

    def _point(self, t: float, snap: LagSnapshot | None, previous: dict[str, WorkerFigures | None]) -> Point:
        fresh: list[Buckets | None] = []
        dead: dict[str, float] = {}
        for key, worker in self._scraper.workers.items():
            before, now = previous.get(key), worker.figures
            if not worker.up or now is None or before is None or now is before:
                continue
            if now.freshness is not None:
                fresh.append(now.freshness.minus(before.freshness))
            for reason, total in now.dead_letters.items():
                # a restarted worker counts from 0 again: its whole total is new
                gained = total - before.dead_letters.get(reason, 0.0)
                dead[reason] = dead.get(reason, 0.0) + (gained if gained >= 0 else total)
        throughput = incoming = None
        last = self._last_lag
        if snap is not None and last is not None:
            dt = max(snap.taken_at - last.taken_at, 1e-6)
            throughput = max(0, snap.consumed - last.consumed) / dt
            incoming = max(0, snap.produced - last.produced) / dt
        lag = None if snap is None else {p.partition: p.lag for p in snap.partitions}
        return Point(t, lag, throughput, incoming, merge(fresh), {k: v for k, v in dead.items() if v > 0})

    # --- the page's JSON -------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """JSON-able: series over the ring (oldest first), current figures, and who could not be reached."""
        points = list(self.points)
        window_fresh = merge(p.freshness for p in points)
        snap = self._last_lag
        return {
            "generated_at": self._clock(),
            "sampling": self._task.running,
            "interval_s": self.interval_s,
            "window_s": self.window_s,
            "kafka": {"up": self._lag.error is None and snap is not None, "error": self._lag.error,
                      "bootstrap_servers": self.settings.kafka.bootstrap_servers},
            "group": _group(snap, self.settings),
            "workers": [_worker_json(w) for w in self.workers],
            "series": _series(points),
            "now": self._now(points, window_fresh),
        }

    def _now(self, points: list[Point], window_fresh: Buckets | None) -> dict[str, Any]:
        latest = points[-1] if points else None
        snap = self._last_lag
        total_lag = None if latest is None or latest.lag is None else sum(latest.lag.values())
        drain = None if total_lag is None else self._lag.rate.drain_seconds(total_lag)
        events: dict[str, float] = {}
        dead: dict[str, float] = {}
        for w in self.workers:
            if w.up and w.figures is not None:
                _add(events, w.figures.events)
                _add(dead, w.figures.dead_letters)
        window_dead: dict[str, float] = {}
        for p in points:
            _add(window_dead, p.dead_letters)
        return {
            "total_lag": total_lag,
            "partitions": None if snap is None else len(snap.partitions),
            "throughput": _recent_mean([p.throughput for p in points]),
            "incoming": _recent_mean([p.incoming for p in points]),
            "consume_rate": self._lag.rate.rate(),
            "drain_s": None if drain is None or math.isinf(drain) else drain,
            "draining": drain is not None and not math.isinf(drain),
            "freshness_p50": quantile(0.5, window_fresh),
            "freshness_p99": quantile(0.99, window_fresh),
            "freshness_count": 0.0 if window_fresh is None else window_fresh.total,
            "events": events,
            "dead_letters": dead,
            "dead_letters_total": sum(dead.values()),
            "dead_letters_window": window_dead,
            "workers_up": sum(1 for w in self.workers if w.up),
        }


def _series(points: list[Point]) -> dict[str, Any]:
    partitions = sorted({p for pt in points if pt.lag is not None for p in pt.lag})
    return {
        "t": [p.t for p in points],
        "lag": {str(part): [None if p.lag is None else p.lag.get(part) for p in points] for part in partitions},
        "total_lag": [None if p.lag is None else sum(p.lag.values()) for p in points],
        "throughput": [p.throughput for p in points],
        "incoming": [p.incoming for p in points],
        "freshness_p50": [quantile(0.5, p.freshness) for p in points],
        "freshness_p99": [quantile(0.99, p.freshness) for p in points],
    }


def _recent_mean(values: list[float | None], last: int = RECENT_POINTS) -> float | None:
    """Mean of the last few known values: one interval's rate jumps with every commit."""
    known = [v for v in values[-last:] if v is not None]
    return sum(known) / len(known) if known else None


def _group(snap: LagSnapshot | None, settings: GatewaySettings) -> dict[str, Any]:
    return {"topic": settings.kafka.topic, "group": settings.kafka.group_id,
            "members": None if snap is None else snap.members, "state": None if snap is None else snap.state}


def _worker_json(w: WorkerState) -> dict[str, Any]:
    events = w.figures.events if w.up and w.figures is not None else {}
    return {"url": w.url, "target": w.target, "up": w.up, "error": w.error, "last_ok": w.last_ok, "events": events}


def _add(into: dict[str, float], more: dict[str, float]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0.0) + v
