"""Fixtures of the fault tests (the Toxiproxy ones, shared with the store tests, are in tests/integration/conftest.py).

Each test runs at one of two sizes: the short one in `make test`, the long one (the issue's figures: 2,000
events and a 30 s outage, a 20,000-event backlog behind a slow store, ...) under `make soak`
(XMODAL_SOAK=1).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.localstack import LocalStack
from services.store import AssetStore
from tests.harness.lanes import Lane

SOAK = os.environ.get("XMODAL_SOAK") == "1"


def sized(short: Any, soak: Any) -> Any:
    return soak if SOAK else short


@pytest.fixture
async def lane(stack: LocalStack, unique_name: str, tmp_path: Path) -> AsyncIterator[Lane]:
    lane = Lane(unique_name, tmp_path)
    await lane.create_topics()
    yield lane
    async with AssetStore(lane.weaviate, {"clip": 1}) as store:
        await store.drop_collection()


async def eventually(check: Any, what: str, timeout_s: float = 60.0) -> None:
    """Poll ``check()`` (sync) until true; generous bound, the failure says what did not happen."""
    import asyncio

    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError as exc:
            last = exc
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout_s:g}s (last error: {last!r})")
