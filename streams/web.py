"""The worker's own small web server: /metrics, /livez and /readyz, on a thread of its own.

Why not Faust's web server: it starts only once the app has joined Kafka (a worker whose broker is gone could
not even say so), it binds one fixed port (a second worker on the same machine died at start with OSError on
6066), and it shares the event loop the batches run on. This one binds before the model loads, takes the
first free port of ``web_port .. web_port + web_port_span - 1`` (the chosen port is logged), and answers from
its own thread: a busy loop never makes a probe time out.

/readyz is 200 only while the worker consumes: 503 with a JSON ``reason`` while it loads its models, joins
the group, is paused by a transient failure (Weaviate away) or is stopping.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.errors import ConfigError
from services.ingest.protocol import Flow

log = logging.getLogger("xmodal.worker")


@dataclass
class WorkerHealth:
    """What /readyz reports; written by the worker's loop, read by the web thread (plain attributes)."""

    phase: str = "loading models"  # loading models -> joining the group -> consuming -> stopping
    flow: Flow | None = None  # the batch protocol's flow, once the agent runs
    partitions: list[str] = field(default_factory=list)  # "topic:partition" held, refreshed by the loop
    started: float = field(default_factory=time.monotonic)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        flow = self.flow
        body: dict[str, Any] = {"phase": self.phase, "uptime_s": round(time.monotonic() - self.started, 1)}
        # never app.consumer from this thread: touching it first would create Faust's consumer on this loop
        body["partitions"] = list(self.partitions)
        if flow is not None and flow.paused:
            since = flow.since or time.monotonic()
            body |= {"paused": True, "paused_s": round(time.monotonic() - since, 1),
                     "reason": f"paused after a transient failure, retrying with backoff: {flow.reason}"}
            return False, body
        body["paused"] = False
        if self.phase != "consuming":
            body["reason"] = self.phase
            return False, body
        return True, body


def bind(host: str, port: int, span: int) -> socket.socket:
    """A listening socket on the first free port of ``port .. port + span - 1`` (port 0: any free port)."""
    last: OSError | None = None
    for candidate in range(port, port + max(1, span)) if port else [0]:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT left by a restarted worker
        try:
            sock.bind((host, candidate))
            sock.listen(64)
        except OSError as exc:
            sock.close()
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise ConfigError(f"cannot listen on {host}:{candidate} ({exc}); check XMODAL_WEB_HOST") from exc
            last = exc
            continue
        sock.setblocking(False)
        return sock
    raise ConfigError(
        f"ports {port}-{port + max(1, span) - 1} on {host} are all taken ({last}): stop a worker, or give this one "
        "another XMODAL_WEB_PORT (or more XMODAL_WEB_PORT_SPAN)"
    )


class WorkerWeb:
    """Serves the routes from a daemon thread with its own event loop, on an already bound socket."""

    def __init__(self, sock: socket.socket, health: WorkerHealth) -> None:
        self.sock = sock
        self.health = health
        self.port = int(sock.getsockname()[1])
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="xmodal-worker-web", daemon=True)
        self._started = threading.Event()
        self._failed: BaseException | None = None

    def start(self) -> None:
        """Serve from the thread; raises what setting the server up raised (the worker must not run unprobed)."""
        self._thread.start()
        if not self._started.wait(timeout=30):
            raise ConfigError("the worker's web server did not start within 30 s")
        if self._failed is not None:
            raise ConfigError(f"the worker's web server could not start: {self._failed!r}") from self._failed

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=2)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        return app

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        try:
            self._loop.run_until_complete(runner.setup())
            self._loop.run_until_complete(web.SockSite(runner, self.sock).start())
        except Exception as exc:  # noqa: BLE001 (handed to start(), which raises it in the worker's thread)
            self._failed = exc
            self._started.set()
            return
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(runner.cleanup())
            self._loop.close()

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0],
                            charset="utf-8")

    async def _livez(self, request: web.Request) -> web.Response:
        return web.json_response({"alive": True, "phase": self.health.phase})

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, body = self.health.readiness()
        return web.Response(text=json.dumps({"ready": ready, **body}), status=200 if ready else 503,
                            content_type="application/json")
