"""A local HTTP server whose /metrics serves a real prometheus_client registry the test drives."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from services.config import GatewaySettings, KafkaSettings


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FakeWorker:
    """Not a stub of a worker's behaviour: real metric objects in their own registry, served over HTTP."""

    url: str = ""
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    status: int = 200

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A fresh registry, as after a worker restart."""
        self.registry = CollectorRegistry()
        self.freshness = Histogram("xmodal_freshness_seconds", "f", buckets=(0.05, 0.1, 0.2, 0.5, 1.0),
                                   registry=self.registry)
        self.events = Counter("xmodal_events_total", "e", ["outcome"], registry=self.registry)
        self.dead = Counter("xmodal_dead_letters_total", "d", ["reason"], registry=self.registry)
        self.paused = Gauge("xmodal_worker_paused", "p", registry=self.registry)
        self.retries = Counter("xmodal_worker_retries_total", "r", ["cause"], registry=self.registry)
        self.pauses = Counter("xmodal_worker_pauses_total", "p", ["cause"], registry=self.registry)
        self.pause_cause = Gauge("xmodal_worker_pause_cause", "c", ["cause"], registry=self.registry)
        self.skipped = Counter("xmodal_consumer_skipped_offsets_total", "s", ["topic", "partition"],
                               registry=self.registry)

    async def metrics(self, request: web.Request) -> web.Response:
        if self.status != 200:
            return web.Response(status=self.status)
        return web.Response(body=generate_latest(self.registry), content_type="text/plain")


@pytest.fixture
async def fake_worker() -> AsyncIterator[FakeWorker]:
    worker = FakeWorker()
    app = web.Application()
    app.router.add_get("/metrics", worker.metrics)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    worker.url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    yield worker
    await runner.cleanup()


def offline_settings(*urls: str, interval_s: float = 2.0) -> GatewaySettings:
    """Gateway settings whose Kafka is a closed loopback port (unit tests have no broker)."""
    return GatewaySettings(kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{closed_port()}"),
                           worker_metrics_urls=list(urls), status_interval_s=interval_s)
