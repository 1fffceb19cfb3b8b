"""Worker-side exports: GPU gauges from a stats callable, queue wait, consume rate and time to drain."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from prometheus_client import REGISTRY

from services.monitoring.gpu import export_gpu, sample_and_export
from services.monitoring.lag import ConsumeRate, LagSnapshot, PartitionLag
from services.monitoring.timing import observe_queue_wait


@dataclass(frozen=True)
class Sample:
    device: str
    allocated_bytes: int
    reserved_bytes: int
    used_bytes: int
    total_bytes: int
    utilization: float | None


def gauge(name: str, **labels: str) -> float | None:
    value: float | None = REGISTRY.get_sample_value(name, labels)
    return value


def test_gpu_gauges_per_device_and_kind() -> None:
    assert export_gpu([Sample("cuda:7", 1, 2, 3, 4, 0.25), Sample("cuda:8", 5, 6, 7, 8, None)]) == 2
    assert gauge("xmodal_gpu_memory_bytes", device="cuda:7", kind="reserved") == 2
    assert gauge("xmodal_gpu_memory_bytes", device="cuda:8", kind="total") == 8
    assert gauge("xmodal_gpu_utilization_ratio", device="cuda:7") == 0.25
    assert gauge("xmodal_gpu_utilization_ratio", device="cuda:8") is None  # unknown is not exported as 0


def test_a_failing_stats_call_exports_nothing_and_does_not_raise() -> None:
    def broken() -> list[Sample]:
        raise RuntimeError("CUDA error: device lost")

    assert sample_and_export(broken) == 0
    assert sample_and_export(list) == 0  # no GPU in use: no devices, no gauges


def test_queue_wait_is_the_oldest_record_s_wait() -> None:
    before = gauge("xmodal_stage_seconds_count", stage="queue_wait") or 0.0
    assert observe_queue_wait([5_000, 2_000, None], now=lambda: 12.5) == pytest.approx(10.5)
    assert observe_queue_wait([20_000], now=lambda: 12.5) == 0.0  # producer clock ahead: never negative
    assert observe_queue_wait([None]) is None
    assert gauge("xmodal_stage_seconds_count", stage="queue_wait") == before + 2


def snap(t: float, *committed: int | None, end: int = 100, start: int = 0) -> LagSnapshot:
    return LagSnapshot("t", "g", [PartitionLag(i, end, c, start) for i, c in enumerate(committed)], 1, "Stable",
                       taken_at=t)


def test_lag_counts_from_the_log_start_when_nothing_was_committed_or_it_was_deleted() -> None:
    s = snap(0, None, 10, 30, start=20)
    assert [p.lag for p in s.partitions] == [80, 80, 70]
    assert s.total_lag == 230 and s.consumed == 70 and s.produced == 300


def test_consume_rate_over_the_window_and_drain_estimate() -> None:
    rate = ConsumeRate(window_s=10)
    assert rate.rate() is None and rate.drain_seconds(5) is None
    for i in range(30):  # 4 events/s on one partition
        rate.add(snap(float(i), 4 * i))
    assert rate.rate() == pytest.approx(4.0)
    assert len(rate._points) <= 12  # bounded by the window, not by how long it ran
    assert rate.drain_seconds(40) == pytest.approx(10.0)
    assert rate.drain_seconds(0) == 0.0
    stalled = ConsumeRate(window_s=10)
    stalled.add(snap(0.0, 5))
    stalled.add(snap(5.0, 5))
    assert stalled.drain_seconds(3) == math.inf


def test_rate_and_drain_gauges() -> None:
    rate = ConsumeRate(window_s=10)
    rate.export(LagSnapshot("rate-topic", "g", [PartitionLag(0, 100, 0)], 1, "Stable", taken_at=0.0))
    rate.export(LagSnapshot("rate-topic", "g", [PartitionLag(0, 100, 50)], 1, "Stable", taken_at=10.0))
    assert gauge("xmodal_consume_rate", topic="rate-topic") == pytest.approx(5.0)
    assert gauge("xmodal_lag_drain_seconds", topic="rate-topic") == pytest.approx(10.0)
