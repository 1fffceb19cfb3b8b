"""Apache Kafka from the official jars: fetch with Maven, format KRaft storage once, run one combined node."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from services.config import StackSettings
from services.localstack.process import StackError, run_with_progress

POM = Path(__file__).with_name("kafka-pom.xml")


class KafkaNode:
    def __init__(self, settings: StackSettings) -> None:
        self.s = settings
        self.home = settings.cache_dir / "kafka" / settings.kafka_version
        self.libs = self.home / "libs"
        self.state = settings.state_dir / "kafka"
        self.data = self.state / "data"
        self.log_file = self.state / "kafka.log"
        self.pid_file = self.state / "kafka.pid"
        self.props = self.state / "server.properties"

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

    def write_config(self) -> None:
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

    def format_once(self) -> None:
        if (self.data / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        proc = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id,
                       "-c", str(self.props)),
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{proc.stdout}\n{proc.stderr}")

    def argv(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.props))

    def create_topics(self) -> None:
        asyncio.run(ensure_topics(self.s.kafka.bootstrap_servers,
                                  {self.s.kafka.topic: self.s.kafka.partitions,
                                   self.s.kafka.dlq_topic: self.s.kafka.partitions},
                                  replication=self.s.kafka.replication_factor))


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
