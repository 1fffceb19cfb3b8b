"""A local 3+3 cluster of its own: 3 Kafka brokers and 3 Weaviate nodes, on ports and a state dir no other test uses.

Base ports (node i adds 10*(i-1), see `xmodal stack --help`): Kafka 29092 (controllers 29093), Weaviate HTTP
28080, gRPC 25051, gossip/data 27946/27947, Raft 28300/28301, profiling 26060; all below the ephemeral range.
The single-node stack of the other tests (9092, 8080, 50051, ...) may run beside it. A cluster that cannot
start fails the tests (StackError with the node's log tail), never skips them; at the end every process is
stopped and the state dir removed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.config import KafkaSettings, StackSettings, WeaviateSettings
from services.localstack import LocalStack


def cluster_settings(state_dir: Path) -> StackSettings:
    return StackSettings(
        nodes=3, state_dir=state_dir, kafka=KafkaSettings(bootstrap_servers="127.0.0.1:29092"),
        kafka_controller_port=29093, kafka_heap="512m",
        weaviate=WeaviateSettings(http_port=28080, grpc_port=25051), weaviate_gossip_port=27946,
        weaviate_data_port=27947, weaviate_raft_port=28300, weaviate_raft_rpc_port=28301,
        weaviate_profiling_port=26060,
    )


@pytest.fixture(scope="package")  # one cluster for the tests of this folder
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state_dir = tmp_path_factory.mktemp("cluster")
    stack = LocalStack(cluster_settings(state_dir))
    try:
        t0 = time.monotonic()
        stack.up()
        assert stack.healthy(), "\n".join(s.line() for s in stack.status())
        print(f"3+3 cluster up in {time.monotonic() - t0:.1f}s")
        yield stack
    finally:
        stack.down()
        shutil.rmtree(state_dir, ignore_errors=True)
