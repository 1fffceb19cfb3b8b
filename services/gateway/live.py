"""Which collection the gateway searches, and with which models: it follows the alias (`xmodal migrate`).

XMODAL_WEAVIATE__COLLECTION may be a Weaviate alias whose target a migration moves from the old model's
collection to the new one's (cutover) and back (rollback). A query vector must come from the model that made
the vectors it is compared with, so each search is answered wholly by one :class:`Generation`: one physical
collection and the query encoders of its models, taken once at the start of the request. A background task
reads the alias every ``alias_poll_s``; when it points elsewhere, the generation for the new target is built
(its store connected, the migration's model loaded from the state record) and only then made current. So a
switch never fails a search: requests in flight finish on the side they began on (both sides exist through
the migration), later ones use the other side, and every response names the model that answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from services.config import GatewaySettings, ModelSettings
from services.errors import XmodalError
from services.gateway.encoder import QueryEncoder
from services.store.errors import StoreError
from services.store.migrations import Migrations
from services.store.store import AssetStore

log = logging.getLogger(__name__)

#: Loads the query encoder of one space's model (server.py: load_embedder + QueryEncoder, in a thread).
EncoderLoader = Callable[[ModelSettings], Awaitable[QueryEncoder]]


@dataclass(frozen=True)
class Generation:
    """One side a search may be answered from: ``store`` reads ``collection``, ``encoders`` are its models."""

    collection: str | None  # None: the configured name as it is (before the alias was first read)
    store: AssetStore | None  # None: the gateway's own store (deps.store)
    encoders: Mapping[str, QueryEncoder]


class LiveCollection:
    """The generation in use, kept in step with the alias by a background task (``start``/``close``)."""

    def __init__(self, settings: GatewaySettings, encoders: Mapping[str, QueryEncoder], load: EncoderLoader) -> None:
        self._s = settings
        self._base = dict(encoders)
        self._load = load
        self.current = Generation(None, None, self._base)
        self._built: dict[str, Generation] = {}
        self._loaded: dict[tuple[str, str], QueryEncoder] = {}
        self._registry = Migrations(settings.weaviate)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Read the alias once now (when Weaviate answers), then follow it in the background."""
        with contextlib.suppress(XmodalError):
            await self._registry.start()
            await self.refresh()
        self._task = asyncio.create_task(self._follow(), name="xmodal-live-collection")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for gen in self._built.values():
            if gen.store is not None:
                await gen.store.close()
        for encoder in self._loaded.values():
            await encoder.close()
        await self._registry.close()

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self._s.alias_poll_s)
            try:
                await self._registry.start()  # idempotent; connects once Weaviate answers
                await self.refresh()
            except XmodalError as exc:  # Weaviate away, a model that does not load: keep the side in use
                log.warning("following the collection alias: %s (still answering from %s)", exc,
                            self.current.collection or self._s.weaviate.collection)

    async def refresh(self) -> None:
        """Make the generation of the alias's target current (built first when it is new)."""
        target = await self._registry.target(self._s.weaviate.collection)
        if target is None or target == self.current.collection:
            return
        gen = self._built.get(target) or await self._build(target)
        self._built[target] = gen
        if self.current.collection is not None:
            log.info("the alias %s now points at %s: searching it with %s", self._s.weaviate.collection, target,
                     ", ".join(f"{s} = {e.model_id}" for s, e in gen.encoders.items()))
        self.current = gen

    async def _build(self, collection: str) -> Generation:
        encoders = dict(self._base)
        state = await self._registry.get(self._s.weaviate.collection)
        model = None if state is None else state.model_of(collection)
        if state is not None and model is not None and state.space in encoders \
                and encoders[state.space].model_id != model:
            encoders[state.space] = await self._encoder(state.space, model)
        store = AssetStore(self._s.weaviate.model_copy(update={"collection": collection, "behind_alias": False}),
                           {})
        try:
            await store.start()
        except StoreError:
            await store.close()
            raise
        return Generation(collection, store, encoders)

    async def _encoder(self, space: str, model: str) -> QueryEncoder:
        key = (space, model)
        if key not in self._loaded:
            log.info("loading %s for space %s (a migration's model)", model, space)
            self._loaded[key] = await self._load(self._s.spaces[space].model_copy(update={"name": model}))
        return self._loaded[key]
