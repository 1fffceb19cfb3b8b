"""`xmodal demo`: the whole thing on one machine, offline, with the shapes sample set."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from services.config import GatewaySettings, StackSettings, WorkerSettings
from services.errors import ConfigError
from services.localstack import LocalStack
from services.localstack.lanes import XMODAL, with_root
from services.localstack.process import port_open, read_pid, spawn, stop, wait_until

QUERIES = ("a photo of a red circle", "a photo of a yellow star", "something blue")


def _demo_dir() -> Path:
    d = StackSettings().state_dir.parent / "demo"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _start(name: str, ready: Any, timeout_s: float) -> None:
    d = _demo_dir()
    pid_file, log_file = d / f"{name}.pid", d / f"{name}.log"
    if read_pid(pid_file) is not None and ready():
        print(f"  {name} already running (log: {log_file})")
        return
    stop(pid_file)
    t0 = time.monotonic()
    pid = spawn([*XMODAL, name], env=with_root(dict(os.environ)), cwd=d, log_file=log_file, pid_file=pid_file)
    wait_until(ready, what=f"xmodal {name}", timeout_s=timeout_s, pid=pid, log_file=log_file)
    print(f"  {name} ready in {time.monotonic() - t0:.1f}s (pid {pid}, log: {log_file})")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def run_demo() -> int:
    stack = LocalStack()
    if not stack.healthy():
        raise ConfigError("the local stack is not up: run `make up` (or `make demo`, which does it)")
    w, g = WorkerSettings(), GatewaySettings()
    print("==> starting the worker and the gateway")
    _start("worker", lambda: port_open(w.web_host, w.web_port), 180)
    base = f"http://{g.host}:{g.port}"
    _start("gateway", lambda: _http_ok(f"{base}/readyz"), 180)

    print("==> publishing the shapes sample set (96 images, 24 texts) and waiting until it is searchable")
    from streams.publishing import publish_source

    args = type("Args", (), {"sample": "shapes", "per_class": 4, "source": None, "wait": True,
                             "timeout": 300.0})()
    rc = asyncio.run(publish_source(args, w.kafka))
    if rc != 0:
        return rc
    print("==> sample searches (text -> image)")
    for q in QUERIES:
        url = f"{base}/v1/search?" + urllib.parse.urlencode({"q": q, "target": "image", "limit": 5})
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        top = ", ".join(f"{r['metadata'].get('color')} {r['metadata'].get('shape')} ({r['score']:.2f})"
                        for r in body["results"])
        print(f"  {q!r:<28} -> {top}")
    print(f"""
xmodal is running.
  search page     {base}/
  status page     {base}/status
  search API      curl '{base}/v1/search?q=a+photo+of+a+green+triangle&target=image&limit=3'
  worker metrics  http://{w.web_host}:{w.web_port}/metrics
  stream lag      .venv/bin/xmodal lag
Stop everything with `make down`.""")
    return 0


def stop_demo() -> int:
    d = _demo_dir()
    stopped = [name for name in ("gateway", "worker") if stop(d / f"{name}.pid")]
    print("stopped:", ", ".join(stopped) if stopped else "no demo process was running")
    return 0
