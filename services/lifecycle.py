"""One shape for everything that holds a connection (``start()``, ``close()``, ``async with``), and one for a
loop run in the background (``BackgroundTask``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self

log = logging.getLogger(__name__)


class AsyncResource:
    """Subclasses implement start() and close(); ``async with x:`` starts, and always closes."""

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class BackgroundTask:
    """One coroutine run in the background, e.g. a sampling loop: ``start()`` (idempotent), ``stop()`` (cancels
    and waits), ``running``. A crash is logged as an error with ``crashed`` as its message: a loop that died
    would otherwise leave its last figures looking current."""

    def __init__(self, run: Callable[[], Coroutine[Any, Any, None]], *, name: str, crashed: str) -> None:
        self._run = run
        self._name = name
        self._crashed = crashed
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)
            self._task.add_done_callback(self._log_crash)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _log_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(self._crashed, exc_info=task.exception())
