"""What the gateway needs from the rest of xmodal, and the bundle handed to create_app.

The protocols name only what the handlers call of parts outside the gateway, so the app is built the same
way in production (server.started_deps) and in tests, with real objects: a real model behind the gateway's
own QueryEncoder, a real AssetStore, a real Fetcher, a real StatusCollector (or none).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from schemas.asset_event import AssetEvent
from services.fetch.fetcher import Fetcher
from services.gateway.encoder import QueryEncoder
from services.gateway.live import LiveCollection
from services.gateway.rerank import Reranker
from services.monitoring.status import StatusCollector
from services.publish.producer import Published
from services.store.models import Hit, SearchQuery, StoredAsset


class SearchStore(Protocol):
    """The read side of services.store.AssetStore."""

    async def search(self, q: SearchQuery) -> list[Hit]: ...

    async def get(self, asset_id: str, *, tenant: str | None = None) -> StoredAsset | None: ...

    async def thumbnail(self, asset_id: str, *, tenant: str | None = None) -> bytes | None: ...

    async def playback(self, asset_id: str, *, tenant: str | None = None) -> tuple[bytes, str] | None: ...

    async def vector_of(self, asset_id: str, space: str, *, tenant: str | None = None) -> list[float] | None: ...

    async def count(self, *, tenant: str | None = None) -> int: ...

    async def tenant_counts(self) -> dict[str, int]: ...

    async def ready(self) -> bool: ...


class EventSink(Protocol):
    """Publishes an event and says where it landed (services.publish.EventPublisher)."""

    async def publish(self, event: AssetEvent) -> Published: ...


class OffsetWaiter(Protocol):
    """Waits until the worker group (or ``group``: a migration's, whose side answers) committed past offsets
    (services.monitoring.lag.LagReader)."""

    async def wait_committed(self, targets: Mapping[int, int], *, timeout_s: float, group: str | None = None
                             ) -> tuple[bool, float]: ...


@dataclass
class Deps:
    """Everything create_app wires into the handlers. The caller starts and closes them.

    ``status`` feeds /v1/status; without one the status page says it is not configured (create_app never
    makes one: a collector samples Kafka and the workers, which only a deployment should do). ``reranker``
    re-scores the first hits of `rerank: true` searches (gateway/rerank.py; server.started_deps loads the
    configured one); without one such a search answers 400 rerank_unavailable. ``live`` (server.started_deps
makes one) says which collection and models answer each search while a migration moves the alias.
    """

    encoders: dict[str, QueryEncoder]  # space -> its query encoder, in configured order
    store: SearchStore
    fetcher: Fetcher
    events: EventSink | None = None
    offsets: OffsetWaiter | None = None
    reranker: Reranker | None = None
    status: StatusCollector | None = None
    live: LiveCollection | None = None  # follows the collection alias (gateway/live.py); None: encoders + store
