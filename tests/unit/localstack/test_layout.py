"""The local stack's layouts: one node exactly as before, or a cluster of nodes on strided ports (no process runs
a server here; `down` is checked on stand-in processes)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from cli.main import build_parser
from services.config import NODE_PORT_STRIDE, StackSettings
from services.localstack import LocalStack
from services.localstack.kafka import KafkaNode, bootstrap_servers, topic_replication
from services.localstack.process import StackError, pid_alive, read_pid, spawn
from services.localstack.weaviate import WeaviateNode

SINGLE_PROPERTIES = """process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:9093
listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://127.0.0.1:9092
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={state}/kafka/data
auto.create.topics.enable=false
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
"""


def props(node: KafkaNode) -> dict[str, str]:
    node.write_config()
    return dict(line.split("=", 1) for line in node.props.read_text().splitlines() if line)


def test_one_node_is_the_stack_of_before(tmp_path: Path) -> None:
    s = StackSettings(state_dir=tmp_path)
    stack = LocalStack(s)
    assert [k.name for k in stack.kafka_nodes] == ["kafka"] and [w.name for w in stack.weaviate_nodes] == ["weaviate"]
    k = stack.kafka
    k.write_config()
    assert k.props.read_text() == SINGLE_PROPERTIES.format(state=tmp_path)
    assert (k.state, k.pid_file) == (tmp_path / "kafka", tmp_path / "kafka" / "kafka.pid")
    assert (bootstrap_servers(s), topic_replication(s)) == ("127.0.0.1:9092", 1)
    env = stack.weaviate.env()
    assert {k: v for k, v in env.items() if k.startswith(("CLUSTER_", "RAFT_", "GRPC", "REPLICATION"))} == {
        "CLUSTER_HOSTNAME": "node1", "CLUSTER_ADVERTISE_ADDR": "127.0.0.1", "CLUSTER_BIND_ADDR": "127.0.0.1",
        "CLUSTER_GOSSIP_BIND_PORT": "7946", "CLUSTER_DATA_BIND_PORT": "7947", "RAFT_PORT": "8300",
        "RAFT_INTERNAL_RPC_PORT": "8301", "RAFT_BOOTSTRAP_EXPECT": "1", "RAFT_JOIN": "node1", "GRPC_PORT": "50051",
    }
    assert env["PERSISTENCE_DATA_PATH"] == str(tmp_path / "weaviate" / "data")
    assert stack.weaviate.argv()[-4:] == ["--port", "8080", "--scheme", "http"]
    assert stack.client_env() == {}


def test_cluster_brokers_are_a_static_quorum_with_replicated_topics(tmp_path: Path) -> None:
    s = StackSettings(state_dir=tmp_path, nodes=3)
    second = props(KafkaNode(s, 2))
    assert second["node.id"] == "2"
    assert second["controller.quorum.voters"] == "1@127.0.0.1:9093,2@127.0.0.1:9103,3@127.0.0.1:9113"
    assert "controller.quorum.bootstrap.servers" not in second
    assert second["listeners"] == "PLAINTEXT://127.0.0.1:9102,CONTROLLER://127.0.0.1:9103"
    assert second["log.dirs"] == str(tmp_path / "kafka-2" / "data")
    for key in ("default.replication.factor", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor"):
        assert second[key] == "3", key
    assert second["min.insync.replicas"] == second["transaction.state.log.min.isr"] == "2"
    assert (bootstrap_servers(s), topic_replication(s)) == ("127.0.0.1:9092,127.0.0.1:9102,127.0.0.1:9112", 3)
    # every node formats its storage with the same cluster id, made once
    ids = {KafkaNode(s, i)._cluster_id() for i in (1, 2, 3)}
    assert len(ids) == 1 and (tmp_path / "kafka-cluster.id").read_text().strip() in ids


def test_cluster_weaviate_nodes_join_each_other(tmp_path: Path) -> None:
    s = StackSettings(state_dir=tmp_path, nodes=3)
    env = WeaviateNode(s, 3).env()
    assert env["CLUSTER_HOSTNAME"] == "node3" and env["CLUSTER_IN_LOCALHOST"] == "true"
    assert env["CLUSTER_JOIN"] == "127.0.0.1:7946,127.0.0.1:7956"  # the others: a restarted node finds them
    assert env["RAFT_JOIN"] == "node1:8300,node2:8310,node3:8320" and env["RAFT_BOOTSTRAP_EXPECT"] == "3"
    assert (env["RAFT_PORT"], env["RAFT_INTERNAL_RPC_PORT"]) == ("8320", "8321")
    assert (env["CLUSTER_GOSSIP_BIND_PORT"], env["CLUSTER_DATA_BIND_PORT"], env["GRPC_PORT"]) == (
        "7966", "7967", "50071")
    assert env["REPLICATION_MINIMUM_FACTOR"] == "3"
    assert env["PERSISTENCE_DATA_PATH"] == str(tmp_path / "weaviate-3" / "data")
    assert WeaviateNode(s, 3).argv()[-4:] == ["--port", "8100", "--scheme", "http"]
    assert LocalStack(s).client_env() == {
        "XMODAL_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9092,127.0.0.1:9102,127.0.0.1:9112",
        "XMODAL_KAFKA__REPLICATION_FACTOR": "3",
        "XMODAL_WEAVIATE__HTTP_PORT": "8080", "XMODAL_WEAVIATE__GRPC_PORT": "50051",
        "XMODAL_WEAVIATE__NODES": "127.0.0.1:8090:50061,127.0.0.1:8100:50071",
        "XMODAL_WEAVIATE__REPLICATION_FACTOR": "3",
    }


def test_a_cluster_does_not_start_over_a_running_single_node(tmp_path: Path) -> None:
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "kafka.pid").write_text(f"{os.getpid()}\n")  # "running": this very process
    with pytest.raises(StackError, match="kafka of another layout is running"):
        LocalStack(StackSettings(state_dir=tmp_path, nodes=3))._refuse_other_layout()
    LocalStack(StackSettings(state_dir=tmp_path))._refuse_other_layout()  # its own layout: fine


def test_down_stops_every_node_of_either_layout(tmp_path: Path) -> None:
    pids = {}
    for name in ("weaviate", "weaviate-2", "kafka-1", "kafka-3"):
        engine = name.split("-")[0]
        state = tmp_path / name
        pids[name] = spawn(["sleep", "60"], env=os.environ, cwd=tmp_path, log_file=state / f"{engine}.log",
                           pid_file=state / f"{engine}.pid")
    stopped = LocalStack(StackSettings(state_dir=tmp_path)).down()
    assert stopped == ["Weaviate", "Weaviate node 2", "Kafka node 1", "Kafka node 3"]
    assert not any(pid_alive(pid) for pid in pids.values())
    assert all(read_pid(tmp_path / n / f"{n.split('-')[0]}.pid") is None for n in pids)


def test_stack_help_documents_the_port_stride() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    stack_help = sub.choices["stack"].format_help()
    assert NODE_PORT_STRIDE == 10 and "+ 10*(i-1)" in " ".join(stack_help.split())
    assert "--nodes" in stack_help


def test_up_waits_for_a_live_cluster_node_that_is_not_ready_instead_of_restarting_it(tmp_path: Path) -> None:
    stack = LocalStack(StackSettings(state_dir=tmp_path, nodes=3))
    node = stack.weaviate_nodes[1]  # nothing answers on its port: "not ready", as while a peer is down
    pid = spawn(["sleep", "60"], env=os.environ, cwd=tmp_path, log_file=node.log_file, pid_file=node.pid_file)
    try:
        assert stack._start_weaviate(node) == pid  # the pid to wait for
        assert pid_alive(pid)
    finally:
        stack.down()
