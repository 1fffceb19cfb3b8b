"""Orchestrates the local Kafka and Weaviate: install (cached), up (idempotent, restarts a crashed one), down."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from services.config import StackSettings
from services.localstack.kafka import KafkaNode
from services.localstack.process import (
    StackError,
    port_open,
    read_pid,
    spawn,
    stop,
    wait_until,
)
from services.localstack.weaviate import WeaviateNode


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    healthy: bool
    address: str
    log_file: str

    def line(self) -> str:
        state = "healthy" if self.healthy else ("running, not ready" if self.pid else "stopped")
        pid = f"pid {self.pid}" if self.pid else "no process"
        return f"{self.name:<9} {state:<18} {self.address:<24} {pid:<12} log: {self.log_file}"


class LocalStack:
    def __init__(self, settings: StackSettings | None = None) -> None:
        self.s = settings or StackSettings()
        self.kafka = KafkaNode(self.s)
        self.weaviate = WeaviateNode(self.s)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        # One `up`/`down` at a time per machine: make targets and test sessions may race.
        self.s.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.s.state_dir / ".lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def install(self) -> None:
        self.kafka.install()
        self.weaviate.install()

    def up(self) -> list[ServiceStatus]:
        """Start what is not running; restart what crashed. Returns the final status."""
        self.install()
        with self._lock():
            self._up_kafka()
            self._up_weaviate()
        return self.status()

    def _up_kafka(self) -> None:
        k, s = self.kafka, self.s
        pid = read_pid(k.pid_file)
        if pid is not None and port_open("127.0.0.1", s.kafka_port):
            k.create_topics()
            return
        if pid is not None:  # alive but not answering: a hung broker is restarted, not trusted
            stop(k.pid_file)
        self._refuse_foreign("Kafka", s.kafka_port)
        k.write_config()
        k.format_once()
        t0 = time.monotonic()
        pid = spawn(k.argv(), env=os.environ, cwd=k.state, log_file=k.log_file, pid_file=k.pid_file)
        wait_until(lambda: port_open("127.0.0.1", s.kafka_port), what="Kafka", timeout_s=s.start_timeout_s,
                   pid=pid, log_file=k.log_file)
        self._create_topics_with_retry()
        print(f"  Kafka ready on 127.0.0.1:{s.kafka_port} in {time.monotonic() - t0:.1f}s")

    def _create_topics_with_retry(self) -> None:
        deadline = time.monotonic() + self.s.start_timeout_s
        while True:
            try:
                self.kafka.create_topics()
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise StackError(f"Kafka is up but topics could not be created: {exc!r}") from exc
                time.sleep(0.5)

    def _up_weaviate(self) -> None:
        w, s = self.weaviate, self.s
        pid = read_pid(w.pid_file)
        if pid is not None and w.ready():
            return
        if pid is not None:
            stop(w.pid_file)
        self._refuse_foreign("Weaviate", s.weaviate.http_port)
        t0 = time.monotonic()
        pid = spawn(w.argv(), env=w.env(), cwd=w.state, log_file=w.log_file, pid_file=w.pid_file)
        wait_until(w.ready, what="Weaviate", timeout_s=s.start_timeout_s, pid=pid, log_file=w.log_file)
        print(f"  Weaviate ready on 127.0.0.1:{s.weaviate.http_port} in {time.monotonic() - t0:.1f}s")

    @staticmethod
    def _refuse_foreign(name: str, port: int) -> None:
        # A process killed a moment ago can hold its port a little longer than its pid: the group leader
        # turns zombie before the other threads have closed the shared file table.
        deadline = time.monotonic() + 5.0
        while port_open("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.1)
        if port_open("127.0.0.1", port):
            raise StackError(
                f"port {port} is taken by a process this stack did not start; stop it, or move {name} "
                "with the XMODAL_ settings (see `xmodal stack --help`)."
            )

    def down(self) -> list[str]:
        """Stop both services (Weaviate first: it holds no Kafka state). Returns what was stopped."""
        stopped = []
        with self._lock():
            if stop(self.weaviate.pid_file):
                stopped.append("Weaviate")
            if stop(self.kafka.pid_file, timeout_s=45):
                stopped.append("Kafka")
        return stopped

    def status(self) -> list[ServiceStatus]:
        k, w, s = self.kafka, self.weaviate, self.s
        kpid, wpid = read_pid(k.pid_file), read_pid(w.pid_file)
        return [
            ServiceStatus("kafka", kpid, kpid is not None and port_open("127.0.0.1", s.kafka_port),
                          s.kafka.bootstrap_servers, str(k.log_file)),
            ServiceStatus("weaviate", wpid, wpid is not None and w.ready(),
                          f"http://127.0.0.1:{s.weaviate.http_port}", str(w.log_file)),
        ]

    def healthy(self) -> bool:
        return all(st.healthy for st in self.status())
