"""`xmodal worker`: bind the web port, load the models, then run the Faust worker with the ingest agent.

Shutdown is bounded (XMODAL_SHUTDOWN_TIMEOUT_S): SIGTERM or SIGINT starts Faust's stop (the agent gets half the
bound to store and ack the batch in flight, then the worker leaves the group) and arms a watchdog; a stop that
is still running at the bound (Kafka or Weaviate unreachable: aiokafka keeps reconnecting) ends the process
with exit status 3. Nothing is lost either way: no event is acked before its effect is stored.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from services.config import WorkerSettings, enabled_spaces
from services.embedding.model import load_embedder
from services.embedding.runner import AsyncEmbedder
from services.fetch.images import preload_codecs
from streams.agents import register
from streams.app import create_app
from streams.web import WorkerHealth, WorkerWeb, bind

_FAUST_LEVELS = {"debug": "debug", "info": "info", "warn": "warn", "warning": "warn", "error": "error"}
#: Exit status when the shutdown bound passed before the worker had stopped.
FORCED_EXIT = 3
log = logging.getLogger("xmodal.worker")


class ShutdownWatchdog:
    """Ends the process ``timeout_s`` after the first stop signal unless it has exited by then."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        if self._timer is not None:
            return
        log.info("stopping (bound %.0fs): finishing the batch in flight, then leaving the group", self.timeout_s)
        self._timer = threading.Timer(self.timeout_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        log.error("still stopping after %.0fs (is Kafka or Weaviate unreachable?); exiting now. Events not yet "
                  "acked will be consumed again", self.timeout_s)
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stderr.flush()
        os._exit(FORCED_EXIT)


def run_worker(settings: WorkerSettings) -> None:
    from faust.worker import Worker

    level = _FAUST_LEVELS.get(settings.log_level.lower(), "info")
    logging.basicConfig(level=level.upper().replace("WARN", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "weaviate"):  # one line per request at INFO drowns the worker's own
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # The port first: a worker that cannot serve its probes should say so before a minute of model loading.
    health = WorkerHealth()
    web = WorkerWeb(bind(settings.web_host, settings.web_port, settings.web_port_span), health)
    web.start()
    taken = f" ({settings.web_port} was taken)" if settings.web_port and web.port != settings.web_port else ""
    log.log(logging.WARNING if taken else logging.INFO, "worker web server on http://%s:%d (/metrics, /livez, "
            "/readyz)%s", settings.web_host, web.port, taken)
    # Load the models before joining the consumer group: a slow load must not stall a rebalance.
    embedders = [AsyncEmbedder(load_embedder(space), max_batch=space.max_batch)
                 for space in enabled_spaces(settings.spaces).values()]
    preload_codecs()
    for e in embedders:
        log.info("space %s: model %s (%s, %d dims) on %s", e.space, e.model_id, "+".join(sorted(e.modalities)),
                 e.dim, e.device)
    app = create_app(settings)
    health.phase = "joining the group"
    register(app, settings, embedders, health)
    watchdog = ShutdownWatchdog(settings.shutdown_timeout_s)

    class BoundedWorker(Worker):
        def _on_sigterm(self) -> None:
            health.phase = "stopping"
            watchdog.arm()
            super()._on_sigterm()

        def _on_sigint(self) -> None:
            health.phase = "stopping"
            watchdog.arm()
            super()._on_sigint()

    worker: Any = BoundedWorker(app, loglevel=level, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    finally:
        web.stop()
