"""The running request's deadline, visible to the code it calls.

The error middleware bounds each request with ``request_timeout_s``; when that passes, asyncio cancels
whatever the request awaits at that moment. Code deep in the request (the query encoder) sees only a
cancellation; `deadline_passed` tells it that this cancellation is the deadline, so it can count a timeout
where it happened rather than guess.

>>> import asyncio
>>> async def wait_forever() -> None:
...     try:
...         await asyncio.sleep(3600)
...     except asyncio.CancelledError:
...         print("cancelled; passed:", deadline_passed())
...         raise
>>> async def request() -> None:
...     async with request_deadline(None) as deadline:
...         print("passed:", deadline_passed())
...         deadline.reschedule(asyncio.get_running_loop().time())  # due at once
...         await wait_forever()
>>> try:
...     asyncio.run(request())
... except TimeoutError:
...     print("TimeoutError")
passed: False
cancelled; passed: True
TimeoutError
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

_DEADLINE: ContextVar[asyncio.Timeout | None] = ContextVar("xmodal_request_deadline", default=None)


@asynccontextmanager
async def request_deadline(seconds: float | None) -> AsyncIterator[asyncio.Timeout]:
    """``asyncio.timeout(seconds)`` (TimeoutError on expiry), published to everything awaited inside."""
    async with asyncio.timeout(seconds) as deadline:
        token = _DEADLINE.set(deadline)
        try:
            yield deadline
        finally:
            _DEADLINE.reset(token)


def deadline_passed() -> bool:
    """True when the enclosing request's deadline has expired (outside a request: False)."""
    deadline = _DEADLINE.get()
    return deadline is not None and deadline.expired()
