"""Weaviate built from its Go module with ``go install`` and run as a local binary on 127.0.0.1.

One node (the default) or the nodes of a local cluster: memberlist gossip between them, one Raft group
for the schema (every node a voter), and data replicated per collection (REPLICATION_MINIMUM_FACTOR).
"""

from __future__ import annotations

import os
import shutil
import urllib.request

from services.config import StackSettings
from services.localstack.process import StackError, run_with_progress

MODULE = "github.com/weaviate/weaviate/cmd/weaviate-server"


class WeaviateNode:
    """Node ``node`` (1-based) of the stack's Weaviate: ``weaviate`` alone, ``weaviate-<node>`` in a cluster."""

    def __init__(self, settings: StackSettings, node: int = 1) -> None:
        self.s = settings
        self.node = node
        self.name = "weaviate" if settings.nodes == 1 else f"weaviate-{node}"
        self.label = "Weaviate" if settings.nodes == 1 else f"Weaviate node {node}"
        self.http_port = settings.node_port(settings.weaviate.http_port, node)
        self.grpc_port = settings.node_port(settings.weaviate.grpc_port, node)
        self.home = settings.cache_dir / "weaviate" / settings.weaviate_version
        self.binary = self.home / "bin" / "weaviate-server"
        self.state = settings.state_dir / self.name
        self.log_file = self.state / "weaviate.log"
        self.pid_file = self.state / "weaviate.pid"

    @property
    def installed(self) -> bool:
        return self.binary.exists()

    def install(self) -> None:
        if self.installed:
            return
        if shutil.which("go") is None:
            raise StackError("Weaviate is built with the Go toolchain: install Go 1.24+ (apt-get install golang)")
        env = dict(os.environ, GOBIN=str(self.binary.parent), CGO_ENABLED="0")
        run_with_progress(
            ["go", "install", f"{MODULE}@{self.s.weaviate_version}"],
            what=f"building weaviate-server {self.s.weaviate_version} with go install (2-3 min on 2 cores, once)",
            env=env, log_file=self.home / "go-install.log",
        )

    def env(self) -> dict[str, str]:
        s = self.s
        data = self.state / "data"
        data.mkdir(parents=True, exist_ok=True)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "PERSISTENCE_DATA_PATH": str(data),
            "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "true",
            "DEFAULT_VECTORIZER_MODULE": "none",
            "ENABLE_MODULES": "",
            "QUERY_DEFAULTS_LIMIT": "25",
            "DISABLE_TELEMETRY": "true",
            "GO_PROFILING_DISABLE": "true",
            "PROMETHEUS_MONITORING_ENABLED": "false",
            "CLUSTER_HOSTNAME": "node1",
            "CLUSTER_ADVERTISE_ADDR": "127.0.0.1",
            "CLUSTER_BIND_ADDR": "127.0.0.1",
            "CLUSTER_GOSSIP_BIND_PORT": str(s.weaviate_gossip_port),
            "CLUSTER_DATA_BIND_PORT": str(s.weaviate_data_port),
            "RAFT_PORT": str(s.weaviate_raft_port),
            "RAFT_INTERNAL_RPC_PORT": str(s.weaviate_raft_rpc_port),
            "RAFT_BOOTSTRAP_EXPECT": "1",
            "RAFT_JOIN": "node1",
            "GRPC_PORT": str(s.weaviate.grpc_port),
            "GO_PROFILING_PORT": str(s.weaviate_profiling_port),
            "LOG_LEVEL": "warning",
        } | (self._cluster_env() if s.nodes > 1 else {})

    def _cluster_env(self) -> dict[str, str]:
        s, n = self.s, self.s.nodes

        def port(base: int, node: int = self.node) -> int:
            return s.node_port(base, node)

        others = [i for i in range(1, n + 1) if i != self.node]
        return {
            "CLUSTER_HOSTNAME": f"node{self.node}",
            # One host: memberlist's local profile, and Raft peers found by the ports in RAFT_JOIN (each
            # node's RPC port is its Raft port + 1).
            "CLUSTER_IN_LOCALHOST": "true",
            "CLUSTER_GOSSIP_BIND_PORT": str(port(s.weaviate_gossip_port)),
            "CLUSTER_DATA_BIND_PORT": str(port(s.weaviate_data_port)),
            # Every other node, not only node1: a restarted node1 then finds the cluster at once too.
            "CLUSTER_JOIN": ",".join(f"127.0.0.1:{port(s.weaviate_gossip_port, i)}" for i in others),
            "RAFT_PORT": str(port(s.weaviate_raft_port)),
            "RAFT_INTERNAL_RPC_PORT": str(port(s.weaviate_raft_rpc_port)),
            "RAFT_JOIN": ",".join(f"node{i}:{port(s.weaviate_raft_port, i)}" for i in range(1, n + 1)),
            "RAFT_BOOTSTRAP_EXPECT": str(n),
            "GRPC_PORT": str(self.grpc_port),
            "GO_PROFILING_PORT": str(port(s.weaviate_profiling_port)),
            # A collection created without a factor gets one copy per node, up to 3.
            "REPLICATION_MINIMUM_FACTOR": str(min(3, n)),
            # Async replication brings a node that was down up to date; the server's 30 s between hash
            # comparisons and 30 s before an object is propagated suit big clusters, not a laptop's.
            "ASYNC_REPLICATION_FREQUENCY": "5s",
            "ASYNC_REPLICATION_PROPAGATION_DELAY": "5s",
        }

    def argv(self) -> list[str]:
        return [str(self.binary), "--host", "127.0.0.1", "--port", str(self.http_port), "--scheme", "http"]

    def ready(self) -> bool:
        url = f"http://{self.s.weaviate.host}:{self.http_port}/v1/.well-known/ready"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False
