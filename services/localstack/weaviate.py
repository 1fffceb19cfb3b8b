"""Weaviate built from its Go module with ``go install`` and run as a local binary on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import urllib.request

from services.config import StackSettings
from services.localstack.process import StackError, run_with_progress

MODULE = "github.com/weaviate/weaviate/cmd/weaviate-server"


class WeaviateNode:
    def __init__(self, settings: StackSettings) -> None:
        self.s = settings
        self.home = settings.cache_dir / "weaviate" / settings.weaviate_version
        self.binary = self.home / "bin" / "weaviate-server"
        self.state = settings.state_dir / "weaviate"
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
        }

    def argv(self) -> list[str]:
        return [str(self.binary), "--host", "127.0.0.1", "--port", str(self.s.weaviate.http_port),
                "--scheme", "http"]

    def ready(self) -> bool:
        url = f"http://{self.s.weaviate.host}:{self.s.weaviate.http_port}/v1/.well-known/ready"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False
