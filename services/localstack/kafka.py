"""Apache Kafka from the official jars: fetch with Maven, format KRaft storage once, run combined nodes.

One node (the default) or the nodes of a local cluster: each is a broker and a KRaft controller, the
controllers a static quorum of all nodes.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from services.config import StackSettings
from services.localstack.process import StackError, port_open, run_with_progress

POM = Path(__file__).with_name("kafka-pom.xml")


def min_insync(replication: int) -> int:
    """min.insync.replicas for a replication factor: 2 of 3 survives one broker down and loses no write."""
    return min(2, replication)


class KafkaNode:
    """Node ``node`` (1-based) of the stack's Kafka: ``kafka`` alone, ``kafka-<node>`` in a cluster."""

    def __init__(self, settings: StackSettings, node: int = 1) -> None:
        self.s = settings
        self.node = node
        self.name = "kafka" if settings.nodes == 1 else f"kafka-{node}"
        self.label = "Kafka" if settings.nodes == 1 else f"Kafka node {node}"
        self.port = settings.node_port(settings.kafka_port, node)
        self.controller_port = settings.node_port(settings.kafka_controller_port, node)
        self.home = settings.cache_dir / "kafka" / settings.kafka_version
        self.libs = self.home / "libs"
        self.state = settings.state_dir / self.name
        self.data = self.state / "data"
        self.log_file = self.state / "kafka.log"
        self.pid_file = self.state / "kafka.pid"
        self.props = self.state / "server.properties"
        self.cluster_id_file = settings.state_dir / "kafka-cluster.id"

    @property
    def installed(self) -> bool:
        return (self.home / ".complete").exists()

    def install(self) -> None:
        if self.installed:
            return
        if shutil.which("mvn") is None or shutil.which("java") is None:
            raise StackError("Kafka needs java (17+) and mvn on PATH: apt-get install openjdk-17-jdk maven")
        self.libs.mkdir(parents=True, exist_ok=True)
        run_with_progress(
            ["mvn", "-q", "-B", "-f", str(POM), f"-Dkafka.version={self.s.kafka_version}",
             "dependency:copy-dependencies", f"-DoutputDirectory={self.libs}", "-DincludeScope=runtime"],
            what=f"fetching Apache Kafka {self.s.kafka_version} jars from Maven Central",
            env=os.environ, log_file=self.home / "mvn.log",
        )
        (self.home / ".complete").write_text("ok\n")

    def _java(self, main: str, *args: str) -> list[str]:
        heap = self.s.kafka_heap
        return ["java", f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                "-Dslf4j.internal.verbosity=WARN", "-cp", f"{self.libs}/*", main, *args]

    def ready(self) -> bool:
        return port_open("127.0.0.1", self.port)

    def write_config(self) -> None:
        if self.s.nodes > 1:
            self._write_cluster_config()
            return
        s = self.s
        port, ctl = s.kafka_port, s.kafka_controller_port
        self.data.mkdir(parents=True, exist_ok=True)
        self.props.write_text(
            "\n".join([
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers=127.0.0.1:{ctl}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctl}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={self.data}",
                "auto.create.topics.enable=false",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=8",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "log.retention.hours=168",
                "",
            ])
        )

    def _write_cluster_config(self) -> None:
        s, n = self.s, self.s.nodes
        rf = topic_replication(s)
        voters = ",".join(f"{i}@127.0.0.1:{s.node_port(s.kafka_controller_port, i)}" for i in range(1, n + 1))
        self.data.mkdir(parents=True, exist_ok=True)
        self.props.write_text(
            "\n".join([
                "process.roles=broker,controller",
                f"node.id={self.node}",
                f"controller.quorum.voters={voters}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={self.data}",
                "auto.create.topics.enable=false",
                "num.partitions=1",
                f"default.replication.factor={rf}",
                f"min.insync.replicas={min_insync(rf)}",
                "unclean.leader.election.enable=false",
                f"offsets.topic.replication.factor={rf}",
                "offsets.topic.num.partitions=8",
                f"transaction.state.log.replication.factor={rf}",
                f"transaction.state.log.min.isr={min_insync(rf)}",
                f"share.coordinator.state.topic.replication.factor={rf}",
                f"share.coordinator.state.topic.min.isr={min_insync(rf)}",
                # A killed broker is fenced (its partitions led elsewhere, it leaves their ISRs) after this long
                # without a heartbeat; the default 9 s stalls acks=all writes that long.
                "broker.session.timeout.ms=6000",
                "broker.heartbeat.interval.ms=1000",
                "group.initial.rebalance.delay.ms=0",
                "log.retention.hours=168",
                "",
            ])
        )

    def _cluster_id(self) -> str:
        """One id for every node of the stack (they format their storage with it); made once."""
        if not self.cluster_id_file.exists():
            self.cluster_id_file.parent.mkdir(parents=True, exist_ok=True)
            fresh = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            self.cluster_id_file.write_text(fresh + "\n")
        return self.cluster_id_file.read_text().strip()

    def format_once(self) -> None:
        if (self.data / "meta.properties").exists():
            return
        if self.s.nodes > 1:  # a static quorum (controller.quorum.voters): no --standalone
            args = ["format", "-t", self._cluster_id(), "-c", str(self.props)]
        else:
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            args = ["format", "--standalone", "-t", cluster_id, "-c", str(self.props)]
        proc = subprocess.run(
            self._java("kafka.tools.StorageTool", *args), capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{proc.stdout}\n{proc.stderr}")

    def argv(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.props))

    def create_topics(self) -> None:
        asyncio.run(ensure_topics(bootstrap_servers(self.s),
                                  {self.s.kafka.topic: self.s.kafka.partitions,
                                   self.s.kafka.dlq_topic: self.s.kafka.partitions},
                                  replication=topic_replication(self.s)))


def bootstrap_servers(settings: StackSettings) -> str:
    """Every broker of the stack, for clients: the setting itself for one node."""
    if settings.nodes == 1:
        return settings.kafka.bootstrap_servers
    return ",".join(f"127.0.0.1:{settings.node_port(settings.kafka_port, i)}" for i in range(1, settings.nodes + 1))


def topic_replication(settings: StackSettings) -> int:
    """Replicas of the topics the stack creates: the setting for one node, min(3, nodes) in a cluster."""
    return settings.kafka.replication_factor if settings.nodes == 1 else min(3, settings.nodes)


async def ensure_topics(bootstrap: str, topics: dict[str, int], *, replication: int = 1) -> None:
    """Create the topics that do not exist yet (auto-creation is off on purpose)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(name, num_partitions=n, replication_factor=replication)
               for name, n in topics.items() if name not in existing]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()
