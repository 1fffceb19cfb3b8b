"""The publish tests' lane: topics of their own, no worker, no collection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.lanes import Lane


@pytest.fixture
async def lane(stack: Any, unique_name: str, tmp_path: Path) -> AsyncIterator[Lane]:
    lane = Lane(unique_name, tmp_path)
    await lane.create_topics()
    yield lane
    await lane.drop(collection=False)
