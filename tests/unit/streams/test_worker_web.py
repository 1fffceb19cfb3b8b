"""The worker's own web server (streams/web.py): bind() walks its port range, and WorkerWeb answers /livez,
/readyz and /metrics from its own thread, over a real socket, asked with urllib like a probe would."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.errors import ConfigError
from services.ingest.protocol import Flow
from services.monitoring.promtext import parse_worker_metrics
from services.store.errors import StoreUnavailable
from streams.web import WorkerHealth, WorkerWeb, bind

HOST = "127.0.0.1"


def listening(port: int, stack: ExitStack) -> socket.socket:
    """Hold ``port`` the way another worker would: bound and listening."""
    sock = stack.enter_context(socket.socket())
    sock.bind((HOST, port))
    sock.listen(1)
    return sock


def free_run(n: int) -> int:
    """The first of ``n`` consecutive loopback ports that are free now (tried, then released)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            first = int(probe.getsockname()[1])
        if first + n > 65536:
            continue
        try:
            with ExitStack() as stack:
                for port in range(first, first + n):
                    listening(port, stack)
        except OSError:
            continue
        return first
    raise AssertionError(f"found no {n} consecutive free ports")


def test_bind_takes_the_next_free_port_when_the_first_is_taken() -> None:
    first = free_run(3)
    with ExitStack() as stack:
        listening(first, stack)
        sock = stack.enter_context(bind(HOST, first, 3))
        assert sock.getsockname()[1] == first + 1


def test_bind_says_which_ports_are_taken_and_what_to_do() -> None:
    first = free_run(2)
    with ExitStack() as stack:
        for port in (first, first + 1):
            listening(port, stack)
        with pytest.raises(ConfigError) as caught:
            bind(HOST, first, 2)
    message = str(caught.value)
    assert f"ports {first}-{first + 1} on {HOST} are all taken" in message
    assert "XMODAL_WEB_PORT" in message and "XMODAL_WEB_PORT_SPAN" in message


def test_bind_on_port_0_takes_any_free_port() -> None:
    with bind(HOST, 0, 1) as sock:
        assert sock.getsockname()[1] > 0
        assert sock.getblocking() is False  # handed to aiohttp's loop as it is


def test_bind_on_an_address_this_machine_lacks_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="XMODAL_WEB_HOST"):
        bind("192.0.2.1", 0, 1)  # TEST-NET-1: never a local address


@dataclass
class Served:
    web: WorkerWeb
    health: WorkerHealth

    def get(self, path: str) -> tuple[int, str, str]:
        """Status, Content-Type and body; an error status is an answer here, not an exception."""
        url = f"http://{HOST}:{self.web.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.headers["Content-Type"], resp.read().decode()
        except urllib.error.HTTPError as err:
            with err:
                return err.code, err.headers["Content-Type"], err.read().decode()

    def json(self, path: str) -> tuple[int, dict[str, Any]]:
        status, content_type, body = self.get(path)
        assert content_type.startswith("application/json"), content_type
        return status, json.loads(body)


@pytest.fixture
def served() -> Iterator[Served]:
    health = WorkerHealth()
    web = WorkerWeb(bind(HOST, 0, 1), health)
    web.start()
    try:
        yield Served(web, health)
    finally:
        web.stop()
    assert not web._thread.is_alive()


def test_livez_answers_from_the_start(served: Served) -> None:
    status, body = served.json("/livez")
    assert status == 200 and body == {"alive": True, "phase": "loading models"}


@pytest.mark.parametrize("phase", ["loading models", "joining the group", "stopping"])
def test_readyz_is_503_with_the_phase_until_consuming(served: Served, phase: str) -> None:
    served.health.phase = phase
    status, body = served.json("/readyz")
    assert status == 503
    assert body["ready"] is False and body["paused"] is False
    assert body["phase"] == phase and body["reason"] == phase


def test_readyz_is_200_while_consuming(served: Served) -> None:
    served.health.phase = "consuming"
    served.health.flow = Flow()
    served.health.partitions = ["events:0", "events:1"]
    status, body = served.json("/readyz")
    assert status == 200
    assert body["ready"] is True and body["paused"] is False and "reason" not in body
    assert body["partitions"] == ["events:0", "events:1"] and body["uptime_s"] >= 0


def test_readyz_is_503_and_metrics_say_paused_while_a_step_fails(served: Served) -> None:
    flow = Flow()
    served.health.phase, served.health.flow = "consuming", flow
    step = object()
    flow.failed(step, StoreUnavailable("down", cause="store_unreachable"))
    try:
        status, body = served.json("/readyz")
        _, _, text = served.get("/metrics")
    finally:
        flow.succeeded(step)  # the pause gauge is process-wide: leave it as it was
    assert status == 503
    assert body["ready"] is False and body["paused"] is True and body["paused_s"] >= 0
    assert body["reason"] == "paused after a transient failure, retrying with backoff: store_unreachable: down"
    figures = parse_worker_metrics(text)  # what the gateway's status page reads from it
    assert figures.paused is True and figures.pauses.get("store_unreachable", 0) >= 1
    status, body = served.json("/readyz")
    assert status == 200 and body["paused"] is False  # the step succeeded: consuming again
    assert parse_worker_metrics(served.get("/metrics")[2]).paused is False


def test_metrics_are_prometheus_text(served: Served) -> None:
    status, content_type, text = served.get("/metrics")
    assert status == 200
    assert content_type.startswith("text/plain") and "charset=utf-8" in content_type
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"xmodal_worker_paused", "xmodal_worker_retries", "xmodal_worker_pauses", "xmodal_events"} <= names


def test_after_stop_the_port_is_closed() -> None:
    web = WorkerWeb(bind(HOST, 0, 1), WorkerHealth())
    web.start()
    port = web.port
    web.stop()
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect((HOST, port))
