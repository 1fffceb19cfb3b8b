"""A clock the test moves by hand, for the batcher's injected ``clock`` and ``sleep``."""

from __future__ import annotations

import asyncio


async def settle() -> None:
    """Let every task that can run do so (no real time passes)."""
    for _ in range(50):
        await asyncio.sleep(0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        timer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._timers.append((self.now + seconds, timer))
        await timer

    async def advance(self, seconds: float) -> None:
        """Move time on, wake the sleepers that are due, and let them run."""
        self.now += seconds
        for due, timer in self._timers:
            if due <= self.now and not timer.done():
                timer.set_result(None)
        self._timers = [(d, t) for d, t in self._timers if not t.done()]
        await settle()
