"""One shape for everything that holds a connection: ``start()``, ``close()``, and ``async with``."""

from __future__ import annotations

from types import TracebackType
from typing import Self


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
