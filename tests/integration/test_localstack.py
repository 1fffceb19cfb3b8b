"""The local stack itself: real Kafka round trips, and a crashed service found and restarted with its data."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.config import WeaviateSettings
from services.localstack import LocalStack
from services.localstack.kafka import ensure_topics
from services.localstack.process import pid_alive, read_pid
from services.store import AssetStore

pytestmark = pytest.mark.integration


async def test_produce_and_consume_with_aiokafka(stack: LocalStack, unique_name: str) -> None:
    bootstrap = stack.s.kafka.bootstrap_servers
    await ensure_topics(bootstrap, {unique_name: 2})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for i in range(20):
            await producer.send_and_wait(unique_name, key=f"k{i % 3}".encode(), value=f"v{i}".encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(unique_name, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"{unique_name}-g", enable_auto_commit=False)
    await consumer.start()
    got: list[tuple[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + 20
        while len(got) < 20 and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                got.extend((m.key, m.value) for m in msgs)
    finally:
        await consumer.stop()
    assert sorted(v for _, v in got) == sorted(f"v{i}".encode() for i in range(20))
    per_key = [v for k, v in got if k == b"k0"]
    assert per_key == sorted(per_key, key=lambda v: int(v[1:])), "one key's records stay in order"


async def test_crashed_weaviate_is_restarted_with_its_data(stack: LocalStack, unique_name: str) -> None:
    settings = WeaviateSettings(collection="C" + unique_name)
    async with AssetStore(settings, {"clip": 4}) as store:
        await store.ensure_collection()
    pid = read_pid(stack.weaviate.pid_file)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    while pid_alive(pid):  # noqa: ASYNC110 (waiting for a process, not for a task)
        await asyncio.sleep(0.05)
    assert not stack.healthy()
    # what `make up` runs (synchronous, it has its own event loop): finds the dead server, starts it again
    statuses = await asyncio.to_thread(stack.up)
    assert all(s.healthy for s in statuses), statuses
    async with AssetStore(settings, {"clip": 4}) as store:
        assert await store.ready(), "the collection survived the crash: the data dir persists"
        await store.drop_collection()
