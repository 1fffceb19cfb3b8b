"""`xmodal publish --tenant` on the real Kafka: every event of a folder lands in the topic in that tenant."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from PIL import Image

from cli.invoke import XMODAL, with_root
from tests.harness.lanes import Lane

pytestmark = pytest.mark.integration


@pytest.fixture
async def lane(stack: Any, unique_name: str, tmp_path: Path) -> AsyncIterator[Lane]:
    lane = Lane(unique_name, tmp_path)
    await lane.create_topics()
    yield lane
    await lane.drop(collection=False)


async def values_in(lane: Lane) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=lane.kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(lane.kafka.topic, p) for p in range(lane.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "could not read the topic to its end"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out += [json.loads(r.value) for r in records]
        return out
    finally:
        await consumer.stop()


async def test_a_folder_published_with_a_tenant_lands_in_that_tenant(lane: Lane, tmp_path: Path) -> None:
    folder = tmp_path / "catalogue"
    folder.mkdir()
    for color in ("red", "blue"):
        Image.new("RGB", (16, 16), color).save(folder / f"{color}.png")
    (folder / "about.txt").write_text("two squares")
    proc = await asyncio.create_subprocess_exec(
        *XMODAL, "publish", str(folder), "--tenant", "acme", "--checkpoint", str(tmp_path / "ck.json"),
        env=with_root(lane.env()), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=180)
    assert proc.returncode == 0, out.decode()
    events = await values_in(lane)
    assert sorted((e["asset_id"], e["tenant"]) for e in events) == [
        ("about.txt", "acme"), ("blue.png", "acme"), ("red.png", "acme")]
    saved = json.loads((tmp_path / "ck.json").read_text())
    assert (saved["tenant"], saved["state"]) == ("acme", "done")
