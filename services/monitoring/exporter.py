"""The worker's background exporter: lag gauges (and GPU gauges) refreshed on a timer.

The lag figures come from Kafka, not from the worker's own state, so every worker exports the whole group's
lag; dashboards take ``max by (topic, partition)``. A refresh loop (rather than reading Kafka on each scrape)
keeps /metrics cheap and the figures current between scrapes. Kafka being down is logged once per outage
and retried; it never stops the worker.

Wiring (streams/agents.py, in ``register``)::

    app.task(lambda: export_loop(settings.kafka, gpu_stats=gpu_stats))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.errors import KafkaError

from services.config import KafkaSettings
from services.errors import TransientError
from services.monitoring.gpu import GpuStats, sample_and_export
from services.monitoring.lag import ConsumeRate, LagReader, LagSnapshot, open_reader

log = logging.getLogger(__name__)

#: Seconds between refreshes: a few per Prometheus scrape interval (15 s by default; 5 s in deploy/).
EXPORT_INTERVAL_S = 2.0


class LagExporter:
    """One refresh per ``tick()``: read the lag, set the gauges; reconnects after a failure."""

    def __init__(self, kafka: KafkaSettings, *, rate_window_s: float = 30.0) -> None:
        self.kafka = kafka
        self.rate = ConsumeRate(rate_window_s)
        self.error: str | None = None  # why the last tick failed; None after a good one
        self._reader: LagReader | None = None

    async def tick(self) -> LagSnapshot | None:
        """The snapshot the gauges were refreshed from; None when Kafka could not be read."""
        try:
            if self._reader is None:
                self._reader = await open_reader(self.kafka)
            snap = await self._reader.snapshot()
        except (TransientError, KafkaError) as exc:
            if self.error is None:
                log.warning("lag export paused, Kafka unreachable: %s", exc)
            self.error = str(exc) or type(exc).__name__
            await self.close()
            return None
        if self.error is not None:
            log.info("lag export resumed")
        self.error = None
        self.rate.export(snap)
        return snap

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(KafkaError, RuntimeError):
                await reader.close()


async def export_loop(
    kafka: KafkaSettings, *, gpu_stats: GpuStats | None = None, interval_s: float = EXPORT_INTERVAL_S
) -> None:
    """Refresh the lag gauges (and the GPU gauges when ``gpu_stats`` is given) every ``interval_s`` until
    cancelled."""
    exporter = LagExporter(kafka)
    try:
        while True:
            if gpu_stats is not None:
                sample_and_export(gpu_stats)
            await exporter.tick()
            await asyncio.sleep(interval_s)
    finally:
        await exporter.close()
