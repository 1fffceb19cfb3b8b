"""The status page's figures: sampled every ``status_interval_s`` into a bounded ring of recent points.

Each sample reads the worker group's lag from Kafka (per partition; committed offsets give the throughput)
and scrapes every worker's /metrics (freshness histogram, events by outcome, dead letters by reason, whether
it is paused after a transient failure, retries and pauses by cause). Freshness quantiles are computed from
the histogram's bucket deltas per interval, the way PromQL's ``histogram_quantile(rate(...))`` does. A worker
or Kafka that cannot be reached is reported as such; sampling goes on.

Why a worker is paused is read from its counters, as the worker exports no cause with ``xmodal_worker_paused``:
the cause of the retries it made in the last interval (backoff can be longer than an interval: then the cause
seen before, or of a pause that began in the interval). Until one is seen, the page says only that it is
paused after a transient failure.

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
#: What the page says a worker is waiting for, by retry cause (services.errors.TransientError.cause); an
#: unknown cause is shown as it is.
CAUSE_TEXT = {
    "store_unreachable": "Weaviate unreachable",
    "store_timeout": "Weaviate not answering in time",
    "store_overloaded": "Weaviate overloaded",
    "store_error": "Weaviate answering errors",
    "dead_letter": "dead-letter topic not confirming",
    "overloaded": "embedding queue full",
    "transient": "transient failure",
}


@dataclass(frozen=True)
class Point:
    """One sample."""

    t: float
    lag: dict[int, int] | None  # partition -> lag; None when Kafka could not be read
    throughput: float | None  # events/s committed by the group since the previous point
    incoming: float | None  # events/s produced to the topic since the previous point
    freshness: Buckets | None  # freshness observations in this interval, all workers
    dead_letters: dict[str, float] = field(default_factory=dict)  # new dead letters in this interval
    retries: dict[str, float] = field(default_factory=dict)  # new retries by cause in this interval, all workers


@dataclass(frozen=True)
class WorkerTrend:
    """What one worker did between its last two scrapes, and since when it is paused (gateway clock)."""

    retries: dict[str, float] | None = None  # cause -> retries in the last interval; None without a baseline
    paused_since: float | None = None  # first sample that found it paused (this gateway's clock)
    cause: str | None = None  # why it is paused: its xmodal_worker_pause_cause, else what its counters tell


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
        self._trends: dict[str, WorkerTrend] = {}  # per scraped replica, as WorkerScraper.workers
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
        retries: dict[str, float] = {}
        trends: dict[str, WorkerTrend] = {}
        for key, worker in self._scraper.workers.items():
            before, now = previous.get(key), worker.figures
            trends[key] = _trend(t, self._trends.get(key), worker, before)
            if not worker.up or now is None or before is None or now is before:
                continue
            if now.freshness is not None:
                fresh.append(now.freshness.minus(before.freshness))
            _add(dead, _gained(now.dead_letters, before.dead_letters))
            _add(retries, trends[key].retries or {})
        self._trends = trends  # replicas that left are forgotten
        throughput = incoming = None
        last = self._last_lag
        if snap is not None and last is not None:
            dt = max(snap.taken_at - last.taken_at, 1e-6)
            throughput = max(0, snap.consumed - last.consumed) / dt
            incoming = max(0, snap.produced - last.produced) / dt
        lag = None if snap is None else {p.partition: p.lag for p in snap.partitions}
        return Point(t, lag, throughput, incoming, merge(fresh), _positive(dead), _positive(retries))

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
            "workers": [_worker_json(w, self._trends.get(key)) for key, w in self._scraper.workers.items()],
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
        retries: dict[str, float] = {}
        for w in self.workers:
            if w.up and w.figures is not None:
                _add(events, w.figures.events)
                _add(dead, w.figures.dead_letters)
                _add(retries, w.figures.retries)
        window_dead: dict[str, float] = {}
        window_retries: dict[str, float] = {}
        for p in points:
            _add(window_dead, p.dead_letters)
            _add(window_retries, p.retries)
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
            "workers_paused": sum(1 for w in self.workers if _paused(w)),
            "skipped_offsets": sum(w.figures.skipped_offsets for w in self.workers if w.up and w.figures is not None),
            "retries": retries,
            "retries_interval": {} if latest is None else latest.retries,
            "retries_window": window_retries,
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


def _worker_json(w: WorkerState, trend: WorkerTrend | None = None) -> dict[str, Any]:
    """One worker's row. ``paused`` is None when it is down or does not export the gauge; ``pause`` says why
    and since when while it is paused; ``retries`` count since it started, ``retries_interval`` in the last
    interval (None until two scrapes are there to compare); ``skipped_offsets`` the offsets that never
    reached it (lost events: 0 in a healthy run)."""
    fig = w.figures if w.up else None
    trend = trend or WorkerTrend()
    paused = None if fig is None else fig.paused
    pause = None
    if paused:
        pause = {"cause": trend.cause, "text": pause_text(trend.cause), "since": trend.paused_since}
    return {"url": w.url, "target": w.target, "up": w.up, "error": w.error, "last_ok": w.last_ok,
            "events": {} if fig is None else fig.events, "paused": paused, "pause": pause,
            "retries": {} if fig is None else fig.retries, "pauses": {} if fig is None else fig.pauses,
            "retries_interval": None if fig is None else trend.retries,
            "skipped_offsets": 0.0 if fig is None else fig.skipped_offsets}


def pause_text(cause: str | None) -> str:
    """The badge of a paused worker, by the cause of its retries (None: not known yet).

    >>> pause_text("store_unreachable")
    'paused: Weaviate unreachable, retrying'
    >>> pause_text("brand_new"), pause_text(None)
    ('paused: brand_new, retrying', 'paused after a transient failure, retrying')
    """
    if cause is None:
        return "paused after a transient failure, retrying"
    return f"paused: {CAUSE_TEXT.get(cause, cause)}, retrying"


def _trend(t: float, last: WorkerTrend | None, worker: WorkerState, before: WorkerFigures | None) -> WorkerTrend:
    now = worker.figures
    if not worker.up or now is None or now is before:
        # not scraped this time: no interval figures, but a pause it comes back in is the same one
        return WorkerTrend(None, last.paused_since, last.cause) if last is not None else WorkerTrend()
    retries = None if before is None else _positive(_gained(now.retries, before.retries))
    if not now.paused:
        return WorkerTrend(retries)
    last = last if last is not None and last.paused_since is not None else WorkerTrend(paused_since=t)
    started = {} if before is None else _positive(_gained(now.pauses, before.pauses))
    # the worker's own gauge when it has one (builds before 2026-12-02 lack it): else what its counters tell
    cause = now.pause_cause or _most(retries or {}) or _most(started) or last.cause
    return WorkerTrend(retries, last.paused_since, cause)


def _paused(w: WorkerState) -> bool:
    return w.up and w.figures is not None and bool(w.figures.paused)


def _gained(now: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """Counter increases per label; a restarted worker counts from 0 again, so its whole total is new."""
    out = {}
    for k, total in now.items():
        gained = total - before.get(k, 0.0)
        out[k] = gained if gained >= 0 else total
    return out


def _positive(counts: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in counts.items() if v > 0}


def _most(counts: dict[str, float]) -> str | None:
    """The label with the highest count (the first such, in the worker's order); None when empty."""
    return max(counts, key=counts.__getitem__) if counts else None


def _add(into: dict[str, float], more: dict[str, float]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0.0) + v
