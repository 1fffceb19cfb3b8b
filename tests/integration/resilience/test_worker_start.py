"""A worker started while its broker is away waits for it (its /readyz says so) and joins by itself, and
one whose broker never comes exits with an error that says what to do (XMODAL_START_WAIT_S)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from services.localstack import LocalStack
from services.localstack.toxiproxy import Proxy, ToxiproxyServer
from streams.worker import NO_KAFKA_EXIT
from tests.harness.lanes import Lane, WorkerProcess, free_port, wait_stored
from tests.integration.resilience.checks import assert_exact, churn, publish
from tests.integration.resilience.conftest import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def kafka_proxy(stack: LocalStack, toxiproxy: ToxiproxyServer, unique_name: str) -> Iterator[Proxy]:
    """A bootstrap address that is down until the test enables it (the broker's metadata then names the
    broker itself, so only the bootstrap goes through the proxy)."""
    proxy = toxiproxy.api.create(f"{unique_name}-kafka", f"127.0.0.1:{free_port()}",
                                 stack.s.kafka.bootstrap_servers.split(",")[0])
    proxy.disable()
    yield proxy
    proxy.delete()


def reason(worker: WorkerProcess) -> str:
    status, body = worker.readyz()
    return "" if status == 200 else str(body.get("reason", ""))


async def test_a_worker_started_before_its_broker_waits_then_joins(lane: Lane, kafka_proxy: Proxy) -> None:
    sc = churn(200, seed=31)
    worker = WorkerProcess(lane, env={"XMODAL_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_proxy.port}"})
    worker.start()
    try:
        await eventually(lambda: "waiting for Kafka" in reason(worker), "the worker says it waits for Kafka",
                         timeout_s=180)  # the models load first
        await asyncio.sleep(3)
        assert worker.alive and "waiting for Kafka" in reason(worker), worker.tail()
        published = await publish(lane, sc.events)
        kafka_proxy.enable()
        await worker.wait_ready()
        await wait_stored(lane, published, timeout_s=300)
    finally:
        worker.stop()
    assert "does not answer" in worker.tail(200)
    await assert_exact(lane, sc)


async def test_a_worker_whose_broker_never_comes_exits_saying_what_to_do(lane: Lane, kafka_proxy: Proxy) -> None:
    worker = WorkerProcess(lane, env={"XMODAL_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_proxy.port}",
                                      "XMODAL_START_WAIT_S": "3"})
    worker.start()
    assert worker.proc is not None
    deadline = time.monotonic() + 240
    while worker.proc.poll() is None:
        assert time.monotonic() < deadline, f"still running:\n{worker.tail()}"
        await asyncio.sleep(0.2)
    assert worker.proc.returncode == NO_KAFKA_EXIT, worker.tail()
    assert "XMODAL_START_WAIT_S" in worker.tail() and "did not answer" in worker.tail()
