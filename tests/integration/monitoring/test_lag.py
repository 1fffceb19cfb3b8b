"""Lag on the real stack: N events published while the worker is stopped show as lag N in `xmodal lag
--json`, in LagReader and in the exported gauges; once the worker runs, the lag drains to 0 and exactly N
freshness observations were made."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
from prometheus_client import REGISTRY

from cli.invoke import XMODAL, with_root
from services.monitoring.lag import LagReader
from services.publish import EventPublisher
from tests.harness.lanes import Lane, WorkerProcess, wait_stored
from tests.integration.monitoring.helpers import eventually, labelled, text_events

pytestmark = pytest.mark.integration
N = 40


async def lag_cli(lane: Lane) -> dict[str, object]:
    proc = await asyncio.create_subprocess_exec(*XMODAL, "lag", "--json", env=with_root(lane.env()),
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    doc: dict[str, object] = json.loads(out)
    return doc


def exported_lag(lane: Lane) -> float:
    return sum(REGISTRY.get_sample_value("xmodal_consumer_lag", {"topic": lane.kafka.topic, "partition": str(p)})
               or 0.0 for p in range(lane.partitions))


async def test_lag_is_reported_while_stopped_and_drains_when_the_worker_runs(lane: Lane) -> None:
    async with EventPublisher(lane.kafka) as pub:
        published = await pub.publish_many(text_events(N))

    doc = await lag_cli(lane)
    assert doc["topic"] == lane.kafka.topic and doc["group"] == lane.kafka.group_id
    assert doc["total_lag"] == N and doc["members"] == 0
    parts = doc["partitions"]
    assert isinstance(parts, list) and len(parts) == lane.partitions
    assert sum(p["lag"] for p in parts) == N and all(p["committed"] is None for p in parts)
    assert doc["consume_rate"] == 0.0

    async with LagReader(lane.kafka) as reader:
        snap = await reader.snapshot()
    assert snap.total_lag == N
    assert exported_lag(lane) == N  # LagReader.snapshot() exports the gauges it read

    worker = WorkerProcess(lane)
    worker.start()
    try:
        await worker.wait_ready()
        await wait_stored(lane, published)
        async with LagReader(lane.kafka) as reader:
            snap = await reader.snapshot()
        assert snap.total_lag == 0 and snap.members == 1
        assert worker.metric("xmodal_freshness_seconds_count") == N
        assert worker.metric("xmodal_events_total", outcome="stored") == N

        # the worker's background loop exports the group's lag on its own /metrics
        def drained_in_worker_gauges() -> bool:
            lag = labelled(worker, "xmodal_consumer_lag")
            mine = {k: v for k, v in lag.items() if ("topic", lane.kafka.topic) in k}
            return len(mine) == lane.partitions and sum(mine.values()) == 0

        await eventually(drained_in_worker_gauges, "the worker's xmodal_consumer_lag gauges show 0 lag")
        assert worker.metric("xmodal_consumer_group_members", group=lane.kafka.group_id) == 1
        assert worker.metric("xmodal_committed_offset", topic=lane.kafka.topic) == N
    finally:
        worker.stop()
    assert (await lag_cli(lane))["total_lag"] == 0
