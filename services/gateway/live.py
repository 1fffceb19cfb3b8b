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
from dataclasses import dataclass, replace
from typing import Any

from aiokafka.errors import KafkaError

from services.config import GatewaySettings, ModelSettings
from services.errors import TransientError, XmodalError
from services.gateway.encoder import QueryEncoder
from services.monitoring.lag import ConsumeRate, LagReader, LagSnapshot
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
    group: str | None = None  # a migration's group while it writes this side (read-your-writes waits on it)


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
        self._lag: tuple[str, LagReader, ConsumeRate] | None = None  # the migration group's, once asked

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
        if self._lag is not None:
            await self._lag[1].close()
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
        if target is None:
            return
        state = await self._registry.get(self._s.weaviate.collection)
        writer = state.group_id if state is not None and state.phase != "finished" \
            and target == state.new_collection else None
        if target == self.current.collection:
            if writer != self.current.group:  # the migration finished: the workers' group writes it now
                self.current = self._built[target] = replace(self.current, group=writer)
            return
        gen = replace(self._built.get(target) or await self._build(target), group=writer)
        self._built[target] = gen
        if self.current.collection is not None:
            log.info("the alias %s now points at %s: searching it with %s", self._s.weaviate.collection, target,
                     ", ".join(f"{s} = {e.model_id}" for s, e in gen.encoders.items()))
        self.current = gen

    async def _build(self, collection: str) -> Generation:
        encoders = dict(self._base)
        state = await self._registry.get(self._s.weaviate.collection)
        model = None if state is None else state.model_of(collection)
        # the state records configured model names (a stored model id may add "@<revision>")
        if state is not None and model is not None and state.space in encoders \
                and self._s.spaces[state.space].name != model:
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

    async def status(self) -> dict[str, Any] | None:
        """The migration section of /v1/status: the last migration of the alias and its progress (the
        new side's consumer group: done/total, rate over the recent requests, ETA), which side this gateway
        answers from and with which model; None when the collection was never migrated."""
        try:
            await self._registry.start()
            state = await self._registry.get(self._s.weaviate.collection)
        except XmodalError as exc:
            return {"error": f"Weaviate: {exc}"}
        if state is None:
            return None
        current = self.current
        body: dict[str, Any] = {
            "alias": state.alias, "space": state.space, "phase": state.phase,
            "old": {"collection": state.old_collection, "model": state.old_model},
            "new": {"collection": state.new_collection, "model": state.new_model, "group": state.group_id},
            "serving": current.collection,
            "answering_model": current.encoders[state.space].model_id if state.space in current.encoders else None,
            "watermark": state.watermark, "history": state.history,
        }
        try:
            snap, rate = await self._group_lag(state.group_id)
        except XmodalError as exc:
            return body | {"error": f"Kafka: {exc}"}
        start = sum(p.start_offset for p in snap.partitions)
        done, total = snap.consumed - start, snap.produced - start
        left = max(0, total - done)
        eta = 0.0 if left == 0 else (left / rate if rate else None)
        return body | {"done": done, "total": total, "rate": rate, "eta_s": eta, "members": snap.members}

    async def _group_lag(self, group: str) -> tuple[LagSnapshot, float | None]:
        if self._lag is None or self._lag[0] != group:
            if self._lag is not None:
                await self._lag[1].close()
            self._lag = None
            reader = LagReader(self._s.kafka.model_copy(update={"group_id": group}))
            await reader.start()
            self._lag = (group, reader, ConsumeRate(window_s=30.0))
        _, reader, rate = self._lag
        try:
            snap = await reader.snapshot(export_metrics=False)  # the gauges are the live group's
        except KafkaError as exc:
            raise TransientError(f"reading {group}'s offsets: {exc}") from exc
        rate.add(snap)
        return snap, rate.rate()
