"""Admission control: a few searches run at once, a short line waits for them, and the rest get 429 at once.

Why not a wide semaphore: on a small machine the CPU is the bottleneck, and every search admitted beyond what
the CPU serves in parallel only waits inside (the event loop, the model's queue, Weaviate), so a limit of 32
on 2 cores let admitted searches take 10x their unloaded time under overload. Here:

- ``limit`` requests hold a slot and run; the slots are what the machine can overlap (model, Weaviate, I/O);
- a request that finds every slot taken joins a FIFO line only if its *expected* wait, its place in the
  line x the recent service time / ``limit`` (the departures of ``limit`` servers), is within
  ``max_wait_s``; otherwise it is refused at once (429, reason ``expected_wait``);
- one that waited ``max_wait_s`` without getting a slot is refused then (429, reason ``queue_timeout``): the
  estimate may be wrong, the bound on waiting is not. An admitted request so waited at most ``max_wait_s``
  and then ran with at most ``limit - 1`` others: its latency stays near the unloaded one;
- the service time is an exponentially weighted mean of the slot holding times, so the line adapts to the
  query mix (a re-ranked or image search holds a slot longer than a cached text search);
- ``max_wait_s`` 0 turns the line off: all slots taken means 429 at once (a plain non-blocking semaphore).

Everything runs on one event loop: nothing awaits between a check and its update, so no lock is needed.

>>> adm = Admission(1, max_wait_s=0.0)
>>> adm.try_acquire(), adm.try_acquire()
(True, False)
>>> adm.release(); adm.try_acquire()
True
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from services.gateway.errors import Shed

#: Weight of the newest holding time in the service-time mean (about the last 10 requests count).
SMOOTHING = 0.1
#: Longest line, in slots: a hard bound for the moments the service time is not known yet (the start).
LINE_PER_SLOT = 8


class Admission:
    """``limit`` slots and a line bounded by expected wait; see the module docstring."""

    def __init__(self, limit: int, *, max_wait_s: float, retry_after_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or max_wait_s < 0:
            raise ValueError("limit must be >= 1 and max_wait_s >= 0")
        self.limit = limit
        self.max_wait_s = max_wait_s
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.service_s = 0.0  # 0 until the first request finished
        self._clock = clock
        self._line: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self._line)

    def expected_wait_s(self) -> float:
        """The wait of a request that joined the line now (0 while a slot is free)."""
        if self.in_flight < self.limit and not self._line:
            return 0.0
        return (len(self._line) + 1) * self.service_s / self.limit

    def try_acquire(self) -> bool:
        """A slot if one is free now (the line is not joined)."""
        if self.in_flight >= self.limit or self._line:
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        """Give the slot to the first in line, or free it."""
        while self._line:
            waiter = self._line.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: in_flight unchanged
                return
        self.in_flight -= 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for the block; `Shed` (429) when the wait would be, or was, longer than max_wait_s."""
        await self._acquire()
        started = self._clock()
        try:
            yield
        finally:
            held = self._clock() - started
            self.service_s = held if self.service_s == 0.0 else self.service_s + SMOOTHING * (held - self.service_s)
            self.release()

    async def _acquire(self) -> None:
        if self.try_acquire():
            return
        expected = self.expected_wait_s()
        if self.max_wait_s == 0.0 or expected > self.max_wait_s or len(self._line) >= LINE_PER_SLOT * self.limit:
            raise self._shed("expected_wait", f"{self.in_flight} searches running and {len(self._line)} waiting; "
                             "retry shortly", expected_wait_ms=round(expected * 1000, 1))
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._line.append(waiter)
        try:
            async with asyncio.timeout(self.max_wait_s):
                await waiter
        except TimeoutError:
            if not _holds_slot(waiter):
                self._leave(waiter)
                raise self._shed("queue_timeout", f"no search slot within {self.max_wait_s * 1000:.0f} ms; "
                                 "retry shortly", waited_ms=round(self.max_wait_s * 1000, 1)) from None
        except asyncio.CancelledError:  # the request went away (deadline, client gone) while in line
            if _holds_slot(waiter):
                self.release()
            else:
                self._leave(waiter)
            raise

    def _leave(self, waiter: asyncio.Future[None]) -> None:
        waiter.cancel()
        with contextlib.suppress(ValueError):  # release() already skipped it
            self._line.remove(waiter)

    def _shed(self, reason: str, message: str, **figures: float) -> Shed:
        details: dict[str, object] = {"reason": reason, "running": self.in_flight, "waiting": len(self._line),
                                      "service_ms": round(self.service_s * 1000, 1), **figures}
        return Shed(message, reason=reason, retry_after=self.retry_after_s, details=[details])


def _holds_slot(waiter: asyncio.Future[None]) -> bool:
    """Whether release() handed ``waiter`` a slot (its result set) before the wait was cut short."""
    return waiter.done() and not waiter.cancelled()
