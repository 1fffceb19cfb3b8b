"""A real `xmodal gateway` process over a lane, for the tests and the bench that need one (overload, latency)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cli.invoke import XMODAL, with_root
from tests.harness.lanes import Lane, free_port


@dataclass
class GatewayProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_gateway(lane: Lane, env: dict[str, str] | None = None) -> GatewayProcess:
    """The gateway on a free port over the lane's collection, the reranker off, the lane's worker's metrics on
    /status; ``env`` adds to (or overrides) the lane's settings."""
    port = free_port()
    full = {**lane.env(), **(env or {}), "XMODAL_PORT": str(port), "XMODAL_RERANK__KIND": "none",
            "XMODAL_WORKER_METRICS_URLS": json.dumps([f"http://127.0.0.1:{lane.web_port}/metrics"])}
    log = lane.tmp / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*XMODAL, "gateway"], env=with_root(full), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return GatewayProcess(f"http://127.0.0.1:{port}", proc, log)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


async def wait_ready(gw: GatewayProcess, timeout_s: float = 300) -> None:
    """Until /readyz answers 200; RuntimeError (with the log's tail) if the gateway exits or takes longer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if gw.proc.poll() is not None:
            raise RuntimeError(f"the gateway exited with {gw.proc.returncode}:\n{gw.tail()}")
        if await asyncio.to_thread(_ready, gw.url):
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the gateway was not ready within {timeout_s}s:\n{gw.tail()}")
