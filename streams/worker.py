"""`xmodal worker`: load the model, then run the Faust worker with the ingest agent."""

from __future__ import annotations

import logging

from services.config import WorkerSettings, enabled_spaces
from services.embedding.model import load_embedder
from services.embedding.runner import AsyncEmbedder
from services.fetch.images import preload_codecs
from streams.agents import register
from streams.app import create_app

_FAUST_LEVELS = {"debug": "debug", "info": "info", "warn": "warn", "warning": "warn", "error": "error"}


def run_worker(settings: WorkerSettings) -> None:
    from faust.worker import Worker

    level = _FAUST_LEVELS.get(settings.log_level.lower(), "info")
    logging.basicConfig(level=level.upper().replace("WARN", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "weaviate"):  # one line per request at INFO drowns the worker's own
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # Load the models before joining the consumer group: a slow load must not stall a rebalance.
    embedders = [AsyncEmbedder(load_embedder(space), max_batch=space.max_batch)
                 for space in enabled_spaces(settings.spaces).values()]
    preload_codecs()
    for e in embedders:
        logging.getLogger("xmodal.worker").info(
            "space %s: model %s (%s, %d dims) on %s", e.space, e.model_id, "+".join(sorted(e.modalities)), e.dim,
            e.device,
        )
    app = create_app(settings)
    register(app, settings, embedders)
    worker = Worker(app, loglevel=level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
