"""StatusCollector without a broker: bounded ring, per-interval quantiles from bucket deltas, unreachable
workers and Kafka reported rather than raised, worker restarts, one series per replica, paused workers with
the cause of their retries."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

from services.monitoring.promtext import WorkerFigures
from services.monitoring.scrape import WorkerState, resolve
from services.monitoring.status import StatusCollector, _worker_json
from tests.unit.monitoring.conftest import FakeWorker, closed_port, offline_settings


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


async def test_unreachable_worker_and_kafka_are_shown_not_raised() -> None:
    url = f"http://127.0.0.1:{closed_port()}/metrics"
    collector = StatusCollector(offline_settings(url))
    try:
        await collector.sample()
        snap = collector.snapshot()
    finally:
        await collector.stop()
    json.dumps(snap, allow_nan=False)  # the page parses it with JSON.parse: no NaN/Infinity
    assert snap["kafka"]["up"] is False and "cannot reach Kafka" in snap["kafka"]["error"]
    [worker] = snap["workers"]
    assert worker["url"] == url and worker["up"] is False and worker["last_ok"] is None
    assert "connect" in worker["error"].lower()
    assert snap["now"]["total_lag"] is None and snap["now"]["workers_up"] == 0
    assert snap["series"]["total_lag"] == [None]


async def test_the_ring_holds_the_window_and_no_more() -> None:
    collector = StatusCollector(offline_settings(interval_s=2.0), window_s=20.0)
    assert collector.capacity == 10
    try:
        for _ in range(25):
            await collector.sample()
    finally:
        await collector.stop()
    assert len(collector.points) == 10
    assert len(collector.snapshot()["series"]["t"]) == 10


async def test_freshness_quantiles_come_from_each_interval_s_deltas(fake_worker: FakeWorker) -> None:
    clock = Clock()
    collector = StatusCollector(offline_settings(fake_worker.url), clock=clock)
    try:
        for v in (5.0,) * 50:  # history before the page started: must not leak into any interval
            fake_worker.freshness.observe(v)
        first = await collector.sample()
        for v in [0.03] * 60 + [0.15] * 40:
            fake_worker.freshness.observe(v)
        fake_worker.events.labels("stored").inc(100)
        clock.t += 2
        second = await collector.sample()
        clock.t += 2
        third = await collector.sample()  # nothing new
    finally:
        await collector.stop()
    assert first.freshness is None  # no baseline yet
    assert second.freshness is not None and second.freshness.total == 100
    snap = collector.snapshot()
    p50, p99 = snap["series"]["freshness_p50"], snap["series"]["freshness_p99"]
    # rank 50 of 100 in (0, 0.05] holding 60 -> 0.05 * 50/60; rank 99 in (0.1, 0.2] holding 40 -> 0.1 + 0.1 * 39/40
    assert p50[1] == pytest.approx(0.05 * 50 / 60)
    assert p99[1] == pytest.approx(0.1 + 0.1 * 39 / 40)
    assert third.freshness is not None and third.freshness.total == 0
    assert p50[0] is None and p50[2] is None
    assert snap["now"]["freshness_count"] == 100
    assert snap["now"]["freshness_p99"] == pytest.approx(p99[1])
    assert snap["now"]["events"] == {"stored": 100.0}
    assert snap["series"]["t"] == [1000.0, 1002.0, 1004.0]


async def test_dead_letters_by_reason_and_a_worker_restart(fake_worker: FakeWorker) -> None:
    collector = StatusCollector(offline_settings(fake_worker.url))
    try:
        fake_worker.dead.labels("invalid_json").inc(3)
        await collector.sample()
        fake_worker.dead.labels("invalid_json").inc(2)
        fake_worker.dead.labels("fetch_not_found").inc(1)
        await collector.sample()
        fake_worker.reset()  # restarted: counters start from zero again
        fake_worker.dead.labels("invalid_json").inc(1)
        for v in (0.07, 0.07):
            fake_worker.freshness.observe(v)
        restarted = await collector.sample()
    finally:
        await collector.stop()
    snap = collector.snapshot()
    assert snap["now"]["dead_letters"] == {"invalid_json": 1.0}  # what the running workers report
    assert snap["now"]["dead_letters_window"] == {"invalid_json": 3.0, "fetch_not_found": 1.0}
    assert restarted.freshness is not None and restarted.freshness.total == 2  # reset: all new, none lost


async def test_a_worker_answering_errors_is_down_then_recovers(fake_worker: FakeWorker) -> None:
    collector = StatusCollector(offline_settings(fake_worker.url))
    try:
        fake_worker.status = 503
        await collector.sample()
        down = collector.snapshot()["workers"][0]
        fake_worker.status = 200
        await collector.sample()
        up = collector.snapshot()["workers"][0]
    finally:
        await collector.stop()
    assert down["up"] is False and down["error"] == "HTTP 503"
    assert up["up"] is True and up["error"] is None and up["last_ok"] is not None


async def test_start_and_stop_run_the_sampling_task() -> None:
    collector = StatusCollector(offline_settings(interval_s=0.05))
    await collector.start()
    try:
        for _ in range(3000):  # the timer samples every 0.05 s; wait for three (at most 30 s)
            if len(collector.points) >= 3:
                break
            await asyncio.sleep(0.01)
        assert len(collector.points) >= 3
        assert collector.snapshot()["sampling"] is True
    finally:
        await collector.stop()
    assert collector.snapshot()["sampling"] is False


async def test_a_name_with_several_addresses_is_scraped_per_replica(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()

    async def two_replicas(host: str, port: Any, **kw: Any) -> list[Any]:
        assert host == "worker" and kw["family"] == socket.AF_INET
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ("10.0.0.7", "10.0.0.5")]

    monkeypatch.setattr(loop, "getaddrinfo", two_replicas)
    targets, error = await resolve("http://worker:6066/metrics")
    assert error is None
    assert targets == ["http://10.0.0.5:6066/metrics", "http://10.0.0.7:6066/metrics"]
    assert await resolve("http://127.0.0.1:6066/metrics") == (["http://127.0.0.1:6066/metrics"], None)
    assert (await resolve("not a url"))[1] is not None



async def test_a_paused_worker_shows_why_since_when_and_its_retries(fake_worker: FakeWorker) -> None:
    clock = Clock()
    collector = StatusCollector(offline_settings(fake_worker.url), clock=clock)

    async def step(**retries: int) -> dict[str, Any]:
        for cause, n in retries.items():
            fake_worker.retries.labels(cause).inc(n)
        clock.t += 2
        await collector.sample()
        return collector.snapshot()

    try:
        fake_worker.retries.labels("store_timeout").inc(4)  # an earlier outage, before the page started
        first = await step()
        fake_worker.paused.set(1)  # Weaviate goes away
        fake_worker.pauses.labels("store_unreachable").inc()
        down = await step(store_unreachable=3)
        quiet = await step()  # backoff longer than the interval: no retry in this one, still paused
        changed = await step(store_overloaded=1)
        fake_worker.paused.set(0)
        back = await step()
    finally:
        await collector.stop()
    [w] = first["workers"]
    assert w["paused"] is False and w["pause"] is None and first["now"]["workers_paused"] == 0
    assert w["retries"] == {"store_timeout": 4.0} and w["retries_interval"] is None  # no baseline yet

    [w] = down["workers"]
    assert w["paused"] is True and down["now"]["workers_paused"] == 1
    assert w["pause"] == {"cause": "store_unreachable", "text": "paused: Weaviate unreachable, retrying",
                          "since": 1004.0}
    assert w["retries_interval"] == {"store_unreachable": 3.0}
    assert w["retries"] == {"store_timeout": 4.0, "store_unreachable": 3.0}
    assert w["pauses"] == {"store_unreachable": 1.0}
    assert down["now"]["retries_interval"] == {"store_unreachable": 3.0}

    [w] = quiet["workers"]
    assert w["pause"] == {"cause": "store_unreachable", "text": "paused: Weaviate unreachable, retrying",
                          "since": 1004.0}
    assert w["retries_interval"] == {} and quiet["now"]["retries_interval"] == {}

    [w] = changed["workers"]
    assert w["pause"]["cause"] == "store_overloaded" and w["pause"]["since"] == 1004.0
    assert w["pause"]["text"] == "paused: Weaviate overloaded, retrying"

    [w] = back["workers"]
    assert w["paused"] is False and w["pause"] is None and back["now"]["workers_paused"] == 0
    assert back["now"]["retries"] == {"store_timeout": 4.0, "store_unreachable": 3.0, "store_overloaded": 1.0}
    assert back["now"]["retries_window"] == {"store_unreachable": 3.0, "store_overloaded": 1.0}
    json.dumps(back, allow_nan=False)


async def test_a_worker_paused_before_the_first_scrape_shows_the_cause_once_it_retries(
    fake_worker: FakeWorker,
) -> None:
    collector = StatusCollector(offline_settings(fake_worker.url))
    try:
        fake_worker.paused.set(1)
        fake_worker.pauses.labels("dead_letter").inc()
        fake_worker.retries.labels("dead_letter").inc(9)
        await collector.sample()
        [unknown] = collector.snapshot()["workers"]
        fake_worker.retries.labels("dead_letter").inc()
        await collector.sample()
        [known] = collector.snapshot()["workers"]
    finally:
        await collector.stop()
    # nothing to compare yet: paused, but which of its causes holds it now cannot be told
    assert unknown["paused"] is True and unknown["retries_interval"] is None
    assert unknown["pause"]["cause"] is None
    assert unknown["pause"]["text"] == "paused after a transient failure, retrying"
    assert known["pause"]["cause"] == "dead_letter"
    assert known["pause"]["text"] == "paused: dead-letter topic not confirming, retrying"


async def test_a_worker_that_says_its_pause_cause_is_believed_from_the_first_scrape(
    fake_worker: FakeWorker,
) -> None:
    collector = StatusCollector(offline_settings(fake_worker.url))
    try:
        fake_worker.paused.set(1)
        fake_worker.retries.labels("dead_letter").inc(9)  # older retries of another cause
        fake_worker.pause_cause.labels("store_overloaded").set(1)
        fake_worker.pause_cause.labels("dead_letter").set(0)
        await collector.sample()
        [first] = collector.snapshot()["workers"]
        fake_worker.retries.labels("dead_letter").inc(5)  # counters say dead_letter; the gauge says otherwise
        await collector.sample()
        [second] = collector.snapshot()["workers"]
    finally:
        await collector.stop()
    assert first["pause"]["cause"] == second["pause"]["cause"] == "store_overloaded"
    assert first["pause"]["text"] == "paused: Weaviate overloaded, retrying"


async def test_a_restarted_worker_s_retries_all_count_as_new(fake_worker: FakeWorker) -> None:
    collector = StatusCollector(offline_settings(fake_worker.url))
    try:
        fake_worker.retries.labels("store_unreachable").inc(50)
        await collector.sample()
        fake_worker.reset()
        fake_worker.paused.set(1)
        fake_worker.retries.labels("store_unreachable").inc(2)
        await collector.sample()
    finally:
        await collector.stop()
    [w] = collector.snapshot()["workers"]
    assert w["retries_interval"] == {"store_unreachable": 2.0}
    assert w["pause"]["cause"] == "store_unreachable"


def test_a_down_worker_or_one_without_the_gauge_is_not_called_paused() -> None:
    old_build = WorkerState("http://w:6066/metrics", "http://w:6066/metrics", up=True, error=None,
                            figures=WorkerFigures(events={"stored": 3.0}))
    row = _worker_json(old_build)
    assert row["paused"] is None and row["pause"] is None and row["retries"] == {}
    gone = WorkerState("http://w:6066/metrics", "http://w:6066/metrics", up=False, error="HTTP 503",
                       figures=WorkerFigures(paused=True, retries={"store_unreachable": 4.0}))
    row = _worker_json(gone)  # its last figures are stale: say nothing about them
    assert row["paused"] is None and row["pause"] is None and row["retries"] == {}
    assert row["retries_interval"] is None


async def test_offsets_a_worker_skipped_are_shown_per_worker_and_in_all(fake_worker: FakeWorker) -> None:
    collector = StatusCollector(offline_settings(fake_worker.url), clock=Clock())
    try:
        await collector.sample()
        healthy = collector.snapshot()
        fake_worker.skipped.labels("assets", "2").inc(4)  # p2/35..38 never reached it
        fake_worker.skipped.labels("assets", "0").inc(1)
        await collector.sample()
        lost = collector.snapshot()
    finally:
        await collector.stop()
    assert healthy["workers"][0]["skipped_offsets"] == 0 and healthy["now"]["skipped_offsets"] == 0
    assert lost["workers"][0]["skipped_offsets"] == 5.0 and lost["now"]["skipped_offsets"] == 5.0
