"""Toxiproxy (Shopify's TCP fault proxy) built with ``go install`` and cached like weaviate-server.

The tests put it between a worker or gateway and Weaviate to inject real network faults: a proxy that is
down (connections refused and cut), latency, timeouts (data swallowed), reset peers, bandwidth limits.
Kafka is not proxied: a client learns the brokers' advertised addresses from the first metadata answer and
then connects to them directly, so Kafka faults are made by stopping and restarting the broker itself.

The client below speaks Toxiproxy's REST API (a dozen lines of JSON over HTTP); the Python clients on PyPI
(toxiproxy-python 0.1.1, 2019) predate Toxiproxy 2.x's API and are unmaintained.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from services.config import StackSettings
from services.localstack.process import StackError, port_open, run_with_progress, spawn, stop, wait_until

MODULE = "github.com/Shopify/toxiproxy/v2/cmd/server"
VERSION = "v2.12.0"


class ToxiproxyBinary:
    def __init__(self, settings: StackSettings) -> None:
        self.home = settings.cache_dir / "toxiproxy" / VERSION
        self.path = self.home / "bin" / "server"

    @property
    def installed(self) -> bool:
        return self.path.exists()

    def install(self) -> None:
        if self.installed:
            return
        if shutil.which("go") is None:
            raise StackError("Toxiproxy is built with the Go toolchain: install Go 1.22+ (apt-get install golang)")
        env = dict(os.environ, GOBIN=str(self.path.parent), CGO_ENABLED="0")
        run_with_progress(["go", "install", f"{MODULE}@{VERSION}"],
                          what=f"building toxiproxy-server {VERSION} with go install (under a minute, once)",
                          env=env, log_file=self.home / "go-install.log")


class ToxiproxyServer:
    """One toxiproxy-server process on 127.0.0.1:``port`` (tests start one per session)."""

    def __init__(self, settings: StackSettings, port: int, state_dir: Path) -> None:
        self.binary = ToxiproxyBinary(settings)
        self.port = port
        self.state = state_dir
        self.log_file = state_dir / "toxiproxy.log"
        self.pid_file = state_dir / "toxiproxy.pid"
        self.api = ToxiproxyAPI(f"http://127.0.0.1:{port}")

    def start(self) -> None:
        self.binary.install()
        self.state.mkdir(parents=True, exist_ok=True)
        pid = spawn([str(self.binary.path), "-host", "127.0.0.1", "-port", str(self.port)], env=os.environ,
                    cwd=self.state, log_file=self.log_file, pid_file=self.pid_file)
        wait_until(lambda: port_open("127.0.0.1", self.port), what="Toxiproxy", timeout_s=30, pid=pid,
                   log_file=self.log_file)

    def stop(self) -> None:
        stop(self.pid_file)


class ToxiproxyAPI:
    """The REST API: proxies (listen -> upstream) and their toxics."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise StackError(f"toxiproxy {method} {path}: HTTP {exc.code} {exc.read().decode(errors='replace')}") \
                from exc
        return json.loads(raw) if raw else None

    def create(self, name: str, listen: str, upstream: str) -> Proxy:
        self._call("POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream, "enabled": True})
        return Proxy(self, name, listen)

    def reset(self) -> None:
        """Every proxy enabled, every toxic removed."""
        self._call("POST", "/reset")


class Proxy:
    def __init__(self, api: ToxiproxyAPI, name: str, listen: str) -> None:
        self.api = api
        self.name = name
        self.listen = listen

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    def enable(self) -> None:
        self.api._call("POST", f"/proxies/{self.name}", {"enabled": True})

    def disable(self) -> None:
        """Down: open connections are closed and new ones refused."""
        self.api._call("POST", f"/proxies/{self.name}", {"enabled": False})

    def add_toxic(self, kind: str, *, name: str | None = None, stream: str = "downstream", toxicity: float = 1.0,
                  **attributes: int) -> str:
        """latency(latency, jitter), timeout(timeout), reset_peer(timeout), bandwidth(rate), slow_close(delay),
        limit_data(bytes), slicer(...). Returns the toxic's name."""
        toxic = name or f"{kind}_{stream}_{time.monotonic_ns()}"
        self.api._call("POST", f"/proxies/{self.name}/toxics",
                       {"name": toxic, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes})
        return toxic

    def remove_toxic(self, toxic: str) -> None:
        self.api._call("DELETE", f"/proxies/{self.name}/toxics/{toxic}")

    def delete(self) -> None:
        self.api._call("DELETE", f"/proxies/{self.name}")
