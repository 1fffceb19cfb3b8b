"""Admission control: slots, the line bounded by expected wait, the hard wait bound, callers that go away."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from services.gateway.admission import LINE_PER_SLOT, Admission
from services.gateway.errors import Shed, classify


class StepClock:
    """Each slot held takes ``step`` seconds on this clock: a known service time without real waiting."""

    def __init__(self, step: float) -> None:
        self.now, self.step, self.calls = 0.0, step, 0

    def __call__(self) -> float:
        self.calls += 1
        if self.calls % 2 == 0:  # the second reading of a pair is the release
            self.now += self.step
        return self.now


async def hold(adm: Admission, entered: asyncio.Event, leave: asyncio.Event) -> None:
    async with adm.slot():
        entered.set()
        await leave.wait()


def holders(adm: Admission, n: int) -> tuple[list[asyncio.Task[None]], list[asyncio.Event], asyncio.Event]:
    leave = asyncio.Event()
    entered = [asyncio.Event() for _ in range(n)]
    tasks = [asyncio.create_task(hold(adm, e, leave)) for e in entered]
    return tasks, entered, leave


async def test_a_waiter_gets_the_slot_a_finished_request_gives_back() -> None:
    adm = Admission(1, max_wait_s=5.0)
    tasks, entered, leave = holders(adm, 2)
    await entered[0].wait()
    await asyncio.sleep(0)
    assert (adm.in_flight, adm.queued) == (1, 1)  # the second waits in line
    assert not entered[1].is_set()
    leave.set()
    await asyncio.gather(*tasks)
    assert entered[1].is_set()
    assert (adm.in_flight, adm.queued) == (0, 0)


async def test_a_wait_past_the_bound_is_shed_as_queue_timeout() -> None:
    adm = Admission(1, max_wait_s=0.02)
    tasks, entered, leave = holders(adm, 1)
    await entered[0].wait()
    with pytest.raises(Shed) as caught:
        async with adm.slot():
            pytest.fail("admitted while the only slot was held")
    assert caught.value.reason == "queue_timeout"
    assert (adm.in_flight, adm.queued) == (1, 0)
    leave.set()
    await asyncio.gather(*tasks)
    assert adm.in_flight == 0


async def test_a_long_expected_wait_is_shed_at_once() -> None:
    adm = Admission(2, max_wait_s=0.5, clock=StepClock(1.0))
    async with adm.slot():
        pass
    assert adm.service_s == 1.0
    tasks, entered, leave = holders(adm, 3)  # 2 run; the third's expected wait is 1 x 1.0 s / 2 = 0.5: in line
    await asyncio.gather(entered[0].wait(), entered[1].wait())
    await asyncio.sleep(0)
    assert (adm.in_flight, adm.queued) == (2, 1)
    assert adm.expected_wait_s() == 1.0  # the next one would wait 2 x 1.0 s / 2
    with pytest.raises(Shed) as caught:
        async with adm.slot():
            pytest.fail("admitted past the expected-wait bound")
    assert caught.value.reason == "expected_wait"
    assert caught.value.details[0]["expected_wait_ms"] == 1000.0
    assert adm.queued == 1  # the refused one never joined
    leave.set()
    await asyncio.gather(*tasks)
    assert (adm.in_flight, adm.queued) == (0, 0)


async def test_no_line_means_a_plain_semaphore() -> None:
    adm = Admission(1, max_wait_s=0.0)
    tasks, entered, leave = holders(adm, 1)
    await entered[0].wait()
    with pytest.raises(Shed) as caught:
        async with adm.slot():
            pytest.fail("admitted with no free slot and no line")
    assert caught.value.reason == "expected_wait"
    leave.set()
    await asyncio.gather(*tasks)


async def test_the_line_is_bounded_while_the_service_time_is_unknown() -> None:
    adm = Admission(1, max_wait_s=5.0)
    tasks, entered, leave = holders(adm, 1 + LINE_PER_SLOT)
    await entered[0].wait()
    await asyncio.sleep(0)
    assert adm.queued == LINE_PER_SLOT
    with pytest.raises(Shed):
        async with adm.slot():
            pytest.fail("admitted past the longest line")
    leave.set()
    await asyncio.gather(*tasks)
    assert all(e.is_set() for e in entered)
    assert (adm.in_flight, adm.queued) == (0, 0)


@pytest.mark.parametrize("when", ["in line", "slot handed over"])
async def test_a_caller_that_goes_away_gives_back_its_place(when: str) -> None:
    adm = Admission(1, max_wait_s=5.0)
    assert adm.try_acquire()
    entered, leave = asyncio.Event(), asyncio.Event()
    waiter = asyncio.create_task(hold(adm, entered, leave))
    await asyncio.sleep(0)
    assert adm.queued == 1
    if when == "slot handed over":
        adm.release()  # the slot is now the waiter's, which has not resumed yet
        assert (adm.in_flight, adm.queued) == (1, 0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    if when == "in line":
        assert (adm.in_flight, adm.queued) == (1, 0)
        adm.release()
    assert not entered.is_set()
    assert (adm.in_flight, adm.queued) == (0, 0)
    assert adm.try_acquire()  # the slot is free again


def test_a_shed_request_is_a_429_with_retry_after_and_its_reason() -> None:
    c = classify(Shed("busy", reason="queue_timeout", retry_after=1.0, details=[{"reason": "queue_timeout"}]))
    assert (c.status, c.code, c.retry_after, c.details) == (429, "overloaded", 1.0, [{"reason": "queue_timeout"}])


@pytest.mark.parametrize("bad", [lambda: Admission(0, max_wait_s=1.0), lambda: Admission(1, max_wait_s=-1.0)])
def test_bad_bounds_are_refused(bad: Callable[[], Admission]) -> None:
    with pytest.raises(ValueError, match="limit must be"):
        bad()
