"""Connections to Weaviate and Kafka that survive those services being down when the gateway starts.

The gateway must come up (and say so on /readyz) even while Weaviate or Kafka is still starting:
:class:`StoreLink` keeps trying to connect in the background and answers 503 meanwhile; :class:`KafkaLink`
starts its producer and offset reader on first use and again after a failed start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from aiokafka.errors import KafkaError

from schemas.asset_event import AssetEvent
from services.config import KafkaSettings
from services.errors import TransientError
from services.gateway.errors import DependencyDown
from services.monitoring.lag import LagReader
from services.publish.producer import EventPublisher, Published
from services.store.errors import StoreError
from services.store.models import Hit, SearchQuery, StoredAsset
from services.store.store import AssetStore

log = logging.getLogger(__name__)


class StoreLink:
    """An AssetStore that connects in the background until Weaviate answers."""

    def __init__(self, store: AssetStore, *, retry_s: float = 2.0) -> None:
        self.store = store
        self._retry_s = retry_s
        self._connected = False
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._connected

    async def start(self) -> None:
        """Connect now if Weaviate answers; else keep trying in the background and return."""
        if not await self._try_connect():
            self._task = asyncio.create_task(self._keep_trying(), name="xmodal-store-connect")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.store.close()

    async def _try_connect(self) -> bool:
        try:
            await self.store.start()
            # The gateway creates the collection too, so a search before the first write answers
            # "no results" instead of 503 (ensure_collection is idempotent and safe to race).
            await self.store.ensure_collection()
        except StoreError as exc:
            log.warning("Weaviate not usable yet (%s); retrying every %.0f s", exc, self._retry_s)
            return False
        self._connected = True
        return True

    async def _keep_trying(self) -> None:
        while True:
            await asyncio.sleep(self._retry_s)
            if await self._try_connect():
                log.info("connected to Weaviate")
                return

    def _live(self) -> AssetStore:
        if not self._connected:
            raise DependencyDown("Weaviate is not reachable yet; the gateway keeps trying")
        return self.store

    async def search(self, q: SearchQuery) -> list[Hit]:
        return await self._live().search(q)

    async def get(self, asset_id: str, *, tenant: str | None = None) -> StoredAsset | None:
        return await self._live().get(asset_id, tenant=tenant)

    async def thumbnail(self, asset_id: str, *, tenant: str | None = None) -> bytes | None:
        return await self._live().thumbnail(asset_id, tenant=tenant)

    async def playback(self, asset_id: str, *, tenant: str | None = None) -> tuple[bytes, str] | None:
        return await self._live().playback(asset_id, tenant=tenant)

    async def vector_of(self, asset_id: str, space: str, *, tenant: str | None = None) -> list[float] | None:
        return await self._live().vector_of(asset_id, space, tenant=tenant)

    async def count(self, *, tenant: str | None = None) -> int:
        return await self._live().count(tenant=tenant)

    async def tenant_counts(self) -> dict[str, int]:
        return await self._live().tenant_counts()

    async def ready(self) -> bool:
        return self._connected and await self.store.ready()


class KafkaLink:
    """The event producer and the committed-offset reader, each started on first use."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._publisher: EventPublisher | None = None
        self._readers: dict[str, LagReader] = {}  # group -> its reader (the workers', a migration's)
        self._lock = asyncio.Lock()

    async def publish(self, event: AssetEvent) -> Published:
        publisher = await self._started_publisher()
        return await publisher.publish(event)

    async def wait_committed(self, targets: Mapping[int, int], *, timeout_s: float, group: str | None = None
                             ) -> tuple[bool, float]:
        reader = await self._started_reader(group or self.settings.group_id)
        try:
            return await reader.wait_committed(targets, timeout_s=timeout_s)
        except KafkaError as exc:
            raise DependencyDown(f"reading the worker group's committed offsets failed: {exc}") from exc

    async def close(self) -> None:
        if self._publisher is not None:
            await self._publisher.close()
        for reader in self._readers.values():
            await reader.close()

    async def _started_publisher(self) -> EventPublisher:
        async with self._lock:
            if self._publisher is None:
                publisher = EventPublisher(self.settings)
                await _start_or_close(publisher)
                self._publisher = publisher
            return self._publisher

    async def _started_reader(self, group: str) -> LagReader:
        async with self._lock:
            if group not in self._readers:
                reader = LagReader(self.settings.model_copy(update={"group_id": group}))
                await _start_or_close(reader)
                self._readers[group] = reader
            return self._readers[group]


async def _start_or_close(client: EventPublisher | LagReader) -> None:
    """Start ``client``; on failure close it (it is rebuilt on the next request) and answer 503."""
    try:
        await client.start()
    except (TransientError, KafkaError) as exc:
        with contextlib.suppress(KafkaError, TransientError, RuntimeError):
            await client.close()
        raise DependencyDown(f"Kafka is not reachable at {client.settings.bootstrap_servers}: {exc}") from exc
