"""A real `xmodal worker` subprocess on its own topics, group and collection: for tests, benchmarks and tools."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from cli.invoke import XMODAL, with_root
from cli.publish import targets_of
from services.config import KafkaSettings, WeaviateSettings
from services.localstack.kafka import ensure_topics
from services.monitoring.lag import LagReader
from services.publish import Published
from services.store import AssetStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Lane:
    """Isolated names for one test: topic, dead-letter topic, consumer group, collection, web port."""

    name: str
    tmp: Path
    partitions: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kafka = KafkaSettings(topic=self.name, dlq_topic=f"{self.name}.dlq", group_id=f"{self.name}-g",
                                   partitions=self.partitions)
        self.weaviate = WeaviateSettings(collection="C" + self.name)
        self.web_port = free_port()

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "XMODAL_KAFKA__TOPIC": self.kafka.topic,
            "XMODAL_KAFKA__DLQ_TOPIC": self.kafka.dlq_topic,
            "XMODAL_KAFKA__GROUP_ID": self.kafka.group_id,
            "XMODAL_KAFKA__PARTITIONS": str(self.partitions),
            "XMODAL_WEAVIATE__COLLECTION": self.weaviate.collection,
            "XMODAL_WEB_PORT": str(self.web_port),
            "XMODAL_DATA_DIR": str(self.tmp / "worker-data"),
            "XMODAL_LOG_LEVEL": "warn",
            **self.extra_env,
        }

    async def create_topics(self) -> None:
        await ensure_topics(self.kafka.bootstrap_servers,
                            {self.kafka.topic: self.partitions, self.kafka.dlq_topic: self.partitions})

    async def drop(self, *, collection: bool = True) -> None:
        """Remove the lane's topics (and its collection): tests and benches share one broker and Weaviate."""
        if collection:
            async with AssetStore(self.weaviate, {"clip": 1}) as store:
                await store.drop_collection()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.kafka.bootstrap_servers)
        await admin.start()
        try:
            with contextlib.suppress(KafkaError):
                await admin.delete_topics([self.kafka.topic, self.kafka.dlq_topic])
        finally:
            await admin.close()


class WorkerProcess:
    """One `xmodal worker` of the lane; several may run at once, each with its own ``name``, log and web port."""

    def __init__(self, lane: Lane, name: str = "worker", env: dict[str, str] | None = None,
                 web_port: int | None = None) -> None:
        self.lane = lane
        self.name = name
        self.extra_env = env or {}
        self.web_port = web_port or (lane.web_port if name == "worker" else free_port())
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = lane.tmp / f"{name}.log"
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        env = {**self.lane.env(), "XMODAL_WEB_PORT": str(self.web_port), **self.extra_env}
        with self.log.open("ab") as log:
            log.write(f"\n--- start {self.starts} ---\n".encode())
            self.proc = subprocess.Popen([*XMODAL, "worker"], env=with_root(env), stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_bytes(self) -> int:
        """Resident memory of the worker process now (Linux /proc)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc status")

    def readyz(self) -> tuple[int, dict[str, Any]]:
        """The worker's /readyz: (HTTP status, body)."""
        url = f"http://127.0.0.1:{self.web_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return int(resp.status), json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), json.loads(exc.read())

    def sigterm(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)

    async def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                status, _ = self.readyz()
            except OSError:
                status = 0
            if status == 200:  # the agent runs: store connected, collection ensured
                return
            await asyncio.sleep(0.25)
        raise AssertionError(f"worker not ready after {timeout_s}s:\n{self.tail()}")

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.web_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return str(resp.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples matching ``labels`` in the worker's own /metrics."""
        total = 0.0
        for line in self.metrics_text().splitlines():
            m = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
            if not m:
                continue
            got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
            if all(got.get(k) == v for k, v in labels.items()):
                total += float(m.group(2))
        return total


async def wait_stored(lane: Lane, published: list[Published], timeout_s: float = 120) -> float:
    targets = targets_of(published)
    async with LagReader(lane.kafka) as reader:
        ok, waited = await reader.wait_committed(targets, timeout_s=timeout_s)
    assert ok, f"the worker did not commit past {targets} within {timeout_s}s"
    return waited


async def read_dead_letters(lane: Lane, expected: int, timeout_s: float = 30) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(lane.kafka.dlq_topic, bootstrap_servers=lane.kafka.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                out.extend(json.loads(m.value) | {"_key": m.key} for m in msgs)
            if len(out) >= expected:
                # one more short poll: more letters than expected is a failure too
                extra = await consumer.getmany(timeout_ms=1000)
                for msgs in extra.values():
                    out.extend(json.loads(m.value) | {"_key": m.key} for m in msgs)
                break
    finally:
        await consumer.stop()
    return out


async def topic_records(lane: Lane, timeout_s: float = 60) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of the lane's topic, read from its first offsets to its end offsets as of the call."""
    consumer = AIOKafkaConsumer(bootstrap_servers=lane.kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(lane.kafka.topic, p) for p in range(lane.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        out: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, f"could not read {lane.kafka.topic} to its end in {timeout_s:g}s"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out += records
        return out
    finally:
        await consumer.stop()
