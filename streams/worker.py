"""`xmodal worker`: bind the web port, load the models, then run the Faust worker with the ingest agent.

Shutdown is bounded (XMODAL_SHUTDOWN_TIMEOUT_S): SIGTERM or SIGINT starts Faust's stop (the agent gets half the
bound to store and ack the batch in flight, then the worker leaves the group) and arms a watchdog; a stop that
is still running at the bound (Kafka or Weaviate unreachable: aiokafka keeps reconnecting) ends the process
with exit status 3. Nothing is lost either way: no event is acked before its effect is stored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

from services.config import WorkerSettings, enabled_spaces
from services.embedding.model import load_embedder, set_cpu_threads
from services.embedding.runner import AsyncEmbedder
from services.fetch.images import preload_codecs
from streams.agents import register
from streams.app import create_app
from streams.web import WorkerHealth, WorkerWeb, bind

_FAUST_LEVELS = {"debug": "debug", "info": "info", "warn": "warn", "warning": "warn", "error": "error"}
#: Exit status when the shutdown bound passed before the worker had stopped.
FORCED_EXIT = 3
#: Exit status when Kafka did not answer within XMODAL_START_WAIT_S.
NO_KAFKA_EXIT = 4
#: Longest pause between two tries to reach Kafka at start.
START_RETRY_MAX_S = 10.0
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


async def kafka_answers(bootstrap_servers: str, timeout_s: float = 5.0) -> str | None:
    """None when a broker answered a metadata request, else why not."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout_s * 1000))
    try:
        async with asyncio.timeout(timeout_s * 2):
            await client.bootstrap()
        return None
    except (KafkaError, OSError, TimeoutError) as e:
        return str(e) or type(e).__name__
    finally:
        await client.close()


def wait_for_kafka(settings: WorkerSettings, health: WorkerHealth) -> None:
    """Return once Kafka answers; exit (NO_KAFKA_EXIT) when it has not within ``start_wait_s``.

    Faust's own start gives up at once on a broker it cannot reach, so a worker started before its broker
    (a machine's boot, a broker restart, a Kubernetes rollout) would die. Here it retries with a growing
    pause and says so in /readyz. SIGTERM meanwhile ends it at once: nothing is consumed yet.
    """
    servers = settings.kafka.bootstrap_servers
    deadline = time.monotonic() + settings.start_wait_s
    pause = 0.5
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # one "Unable connect" error per try and node; our line says it once
    try:
        while (why := asyncio.run(kafka_answers(servers))) is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                log.error("Kafka at %s did not answer for %.0fs (%s). Start it (`make up` locally) or point "
                          "XMODAL_KAFKA__BOOTSTRAP_SERVERS at it; XMODAL_START_WAIT_S sets how long to wait",
                          servers, settings.start_wait_s, why)
                sys.exit(NO_KAFKA_EXIT)
            health.phase = f"waiting for Kafka at {servers}"
            log.warning("Kafka at %s does not answer (%s); trying again in %.1fs (giving up in %.0fs)",
                        servers, why, pause, left)
            time.sleep(min(pause, left))
            pause = min(pause * 2, START_RETRY_MAX_S)
    finally:
        quiet.setLevel(level)


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
    set_cpu_threads(settings.torch_threads)
    # Load the models before joining the consumer group: a slow load must not stall a rebalance.
    embedders = [AsyncEmbedder(load_embedder(space), max_batch=space.max_batch)
                 for space in enabled_spaces(settings.spaces).values()]
    preload_codecs()
    for e in embedders:
        log.info("space %s: model %s (%s, %d dims) on %s", e.space, e.model_id, "+".join(sorted(e.modalities)),
                 e.dim, e.device)
    wait_for_kafka(settings, health)
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
