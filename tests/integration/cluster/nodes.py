"""Helpers shared by the cluster tests: settings for the whole cluster or one node, and killing a node."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from services.config import WeaviateEndpoint, WeaviateSettings
from services.localstack import LocalStack
from services.localstack.process import pid_alive, read_pid

STORE_TIMEOUT_S = 3.0  # per call: how long a call to a node that just died takes to fail


def cluster_weaviate(stack: LocalStack, collection: str, *, node: int | None = None,
                     read_consistency: str = "QUORUM") -> WeaviateSettings:
    """Settings for every node of the cluster (node None) or for that node alone."""
    nodes = stack.weaviate_nodes if node is None else [stack.weaviate_nodes[node - 1]]
    first, *others = nodes
    return WeaviateSettings.model_validate({
        "http_port": first.http_port, "grpc_port": first.grpc_port, "collection": collection,
        "nodes": [WeaviateEndpoint(host="127.0.0.1", http_port=w.http_port, grpc_port=w.grpc_port) for w in others],
        "replication_factor": 3, "timeout_s": STORE_TIMEOUT_S, "read_consistency": read_consistency,
    })


def kill9(pid_file: Path) -> None:
    pid = read_pid(pid_file)
    assert pid is not None, f"{pid_file} names no running process"
    os.kill(pid, signal.SIGKILL)
    while pid_alive(pid):
        time.sleep(0.02)
