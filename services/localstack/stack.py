"""Orchestrates the local Kafka and Weaviate: install (cached), up (idempotent, restarts a crashed one), down.

``StackSettings.nodes`` picks one node of each (the default) or a local cluster of them; a single node and
a cluster share their base ports, so one runs at a time.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from services.config import StackSettings
from services.localstack.kafka import KafkaNode, bootstrap_servers
from services.localstack.process import (
    StackError,
    port_open,
    read_pid,
    spawn,
    stop,
    wait_until,
)
from services.localstack.toxiproxy import ToxiproxyBinary
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
        return f"{self.name:<10} {state:<18} {self.address:<24} {pid:<12} log: {self.log_file}"


class LocalStack:
    def __init__(self, settings: StackSettings | None = None) -> None:
        self.s = settings or StackSettings()
        self.kafka_nodes = [KafkaNode(self.s, i) for i in range(1, self.s.nodes + 1)]
        self.weaviate_nodes = [WeaviateNode(self.s, i) for i in range(1, self.s.nodes + 1)]
        self.kafka, self.weaviate = self.kafka_nodes[0], self.weaviate_nodes[0]  # the single node, or node 1

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
        ToxiproxyBinary(self.s).install()  # only the fault-injection tests run it

    def up(self) -> list[ServiceStatus]:
        """Start what is not running; restart what crashed. Returns the final status."""
        self.install()
        with self._lock():
            self._refuse_other_layout()
            self._up_kafka()
            self._up_weaviate()
        return self.status()

    def _up_kafka(self) -> None:
        # The nodes of a cluster wait for each other (a quorum of controllers): start every one that is
        # down, then wait for them.
        t0 = time.monotonic()
        started = [(k, pid) for k in self.kafka_nodes if (pid := self._start_kafka(k)) is not None]
        for k, pid in started:
            wait_until(k.ready, what=k.label, timeout_s=self.s.start_timeout_s, pid=pid, log_file=k.log_file)
        self._create_topics_with_retry()
        for k, _ in started:
            print(f"  {k.label} ready on 127.0.0.1:{k.port} in {time.monotonic() - t0:.1f}s")

    def _start_kafka(self, k: KafkaNode) -> int | None:
        """Start node ``k`` unless it runs and answers; the pid to wait for, or None when it was fine."""
        pid = read_pid(k.pid_file)
        if pid is not None and k.ready():
            return None
        if pid is not None and self.s.nodes > 1:
            return pid  # a cluster's node may be waiting for its peers: wait for it too, never kill it
        if pid is not None:  # alive but not answering: a hung broker is restarted, not trusted
            stop(k.pid_file)
        self._refuse_foreign(k.label, k.port)
        k.write_config()
        k.format_once()
        return spawn(k.argv(), env=os.environ, cwd=k.state, log_file=k.log_file, pid_file=k.pid_file)

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
        t0 = time.monotonic()
        started = [(w, pid) for w in self.weaviate_nodes if (pid := self._start_weaviate(w)) is not None]
        for w, pid in started:  # a cluster's nodes are ready once their Raft quorum has formed
            wait_until(w.ready, what=w.label, timeout_s=self.s.start_timeout_s, pid=pid, log_file=w.log_file)
            print(f"  {w.label} ready on 127.0.0.1:{w.http_port} in {time.monotonic() - t0:.1f}s")

    def _start_weaviate(self, w: WeaviateNode) -> int | None:
        pid = read_pid(w.pid_file)
        if pid is not None and w.ready():
            return None
        if pid is not None and self.s.nodes > 1:
            # A live node says it is not ready while a peer is down (memberlist health, Raft election):
            # restarting it would take a second node away. Wait for it with the nodes started now.
            return pid
        if pid is not None:
            stop(w.pid_file)
        self._refuse_foreign(w.label, w.http_port)
        return spawn(w.argv(), env=w.env(), cwd=w.state, log_file=w.log_file, pid_file=w.pid_file)

    def _pid_files(self, engine: str) -> list[Path]:
        """The pid files of every node of ``engine`` this state dir has had, whichever layout made them."""
        return sorted(self.s.state_dir.glob(f"{engine}*/{engine}.pid"))

    def _refuse_other_layout(self) -> None:
        mine = {k.pid_file for k in self.kafka_nodes} | {w.pid_file for w in self.weaviate_nodes}
        for engine in ("kafka", "weaviate"):
            for pid_file in self._pid_files(engine):
                if pid_file not in mine and read_pid(pid_file) is not None:
                    raise StackError(
                        f"{pid_file.parent.name} of another layout is running (this one has {self.s.nodes} "
                        "node(s) each; XMODAL_NODES): `xmodal stack down` stops every node first."
                    )

    def client_env(self) -> dict[str, str]:
        """The settings a worker or gateway needs to use every node of this stack (none for one node)."""
        if self.s.nodes == 1:
            return {}
        first, *others = self.weaviate_nodes
        return {
            "XMODAL_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers(self.s),
            "XMODAL_KAFKA__REPLICATION_FACTOR": str(min(3, self.s.nodes)),
            "XMODAL_WEAVIATE__HTTP_PORT": str(first.http_port),
            "XMODAL_WEAVIATE__GRPC_PORT": str(first.grpc_port),
            "XMODAL_WEAVIATE__NODES": ",".join(f"127.0.0.1:{w.http_port}:{w.grpc_port}" for w in others),
            "XMODAL_WEAVIATE__REPLICATION_FACTOR": str(min(3, self.s.nodes)),
        }

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
        """Stop every node, of either layout (Weaviate first: it holds no Kafka state). Returns what was stopped."""
        with self._lock():
            return self._stop_all("weaviate", timeout_s=30) + self._stop_all("kafka", timeout_s=45)

    def _stop_all(self, engine: str, *, timeout_s: float) -> list[str]:
        pid_files = self._pid_files(engine)
        if not pid_files:
            return []
        # A cluster's nodes all at once: one by one, the last ones would wait for a quorum that is gone.
        with ThreadPoolExecutor(len(pid_files)) as pool:
            were_running = list(pool.map(lambda f: stop(f, timeout_s=timeout_s), pid_files))
        names = [f.parent.name for f, was in zip(pid_files, were_running, strict=True) if was]
        return [n.capitalize().replace("-", " node ") for n in names]

    def status(self) -> list[ServiceStatus]:
        out = []
        for k in self.kafka_nodes:
            pid = read_pid(k.pid_file)
            address = self.s.kafka.bootstrap_servers if self.s.nodes == 1 else f"127.0.0.1:{k.port}"
            out.append(ServiceStatus(k.name, pid, pid is not None and k.ready(), address, str(k.log_file)))
        for w in self.weaviate_nodes:
            pid = read_pid(w.pid_file)
            out.append(ServiceStatus(w.name, pid, pid is not None and w.ready(),
                                     f"http://127.0.0.1:{w.http_port}", str(w.log_file)))
        return out

    def healthy(self) -> bool:
        return all(st.healthy for st in self.status())
