"""AssetStore: the asset collection in Weaviate, over the async client (REST for schema, gRPC for data).

One instance per process, started once (``async with AssetStore(...)``) and shared by all tasks on the
event loop. Every call runs under ``settings.timeout_s`` and raises StoreUnavailable when Weaviate is
down or slow, so callers back off without knowing the client's exceptions.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import weaviate
from pydantic import ValidationError
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.client import WeaviateAsyncClient
from weaviate.collections.collection import CollectionAsync
from weaviate.exceptions import WeaviateInsertManyAllFailedError

from services.config import WeaviateSettings
from services.errors import ConfigError
from services.lifecycle import AsyncResource
from services.store.errors import InvalidQuery, StoreError, StoreUnavailable, UnknownField, WriteRejected
from services.store.failures import Call, calling, is_transient_message
from services.store.models import AssetObject, Hit, SearchQuery, StoredAsset, StoredState, asset_uuid
from services.store.reads import hit, search_filter, stored_asset, stored_state, vectors_of
from services.store.schema import (
    RESULT_PROPERTIES,
    STATE_PROPERTIES,
    PropKind,
    SchemaView,
    base_properties,
    meta_property_config,
    vector_config,
)
from services.store.writes import (
    WeaviateObject,
    check_disjoint,
    rejected,
    to_weaviate_object,
    wanted_properties,
)

log = logging.getLogger(__name__)

_SPACE = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,229}$")
_COLLECTION = re.compile(r"^[A-Z][_0-9A-Za-z]{0,254}$")
_WRITE_CHUNK = 256  # objects per gRPC batch request
_ID_CHUNK = 1000  # ids per delete / state lookup (Weaviate caps a result window at 10,000)
_SCHEMA_ATTEMPTS = 5  # rounds of read-create/extend-reread when workers race on the schema

Collection = CollectionAsync[dict[str, Any], None]
T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class AssetStore(AsyncResource):
    """The asset collection. ``spaces`` maps each embedding space (a named vector) to its dimension."""

    def __init__(
        self, settings: WeaviateSettings, spaces: Mapping[str, int], *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        bad = [s for s, dim in spaces.items() if not _SPACE.match(s) or dim < 1]
        if bad:
            raise ConfigError(f"vector spaces need GraphQL names and a dimension >= 1: {bad}")
        name = settings.collection[:1].upper() + settings.collection[1:]
        if not _COLLECTION.match(name):
            raise ConfigError(f"collection name {settings.collection!r} is not a valid Weaviate class name")
        self._s = settings
        self.name = name
        self._spaces = dict(spaces)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._client: WeaviateAsyncClient | None = None
        self._handle: Collection | None = None
        self._schema: SchemaView | None = None
        self._schema_lock = asyncio.Lock()

    # -- lifecycle --

    async def start(self) -> None:
        """Connect (REST and gRPC). Raises StoreUnavailable when Weaviate cannot be reached."""
        if self._client is not None:
            return
        t = self._s.timeout_s
        try:
            client = weaviate.use_async_with_custom(
                http_host=self._s.host, http_port=self._s.http_port, http_secure=self._s.secure,
                grpc_host=self._s.host, grpc_port=self._s.grpc_port, grpc_secure=self._s.secure,
                additional_config=AdditionalConfig(timeout=Timeout(query=t, insert=t, init=t)),
                auth_credentials=Auth.api_key(self._s.api_key.get_secret_value()) if self._s.api_key else None,
                # The init checks call pypi.org on every connect (a version nag): no outside calls from here.
                skip_init_checks=True,
            )
        except ValidationError as e:  # the client validates its connection parameters with pydantic
            raise ConfigError(f"Weaviate connection settings: {e}") from e
        try:
            async with calling("connect", Call.ADMIN, t):
                await client.connect()
        except StoreError:
            await client.close()
            raise
        self._client = client

    async def close(self) -> None:
        client, self._client, self._handle = self._client, None, None
        if client is not None:
            await client.close()


    def _connected(self) -> WeaviateAsyncClient:
        if self._client is None:
            raise StoreError("the store is not started: call start() or use `async with`")
        return self._client

    def _collection(self) -> Collection:
        if self._handle is None:  # a local object (no request), built once since every call uses it
            self._handle = self._connected().collections.use(self.name)
        return self._handle

    async def ready(self) -> bool:
        """Weaviate answers and the collection exists."""
        if self._client is None:
            return False
        try:
            async with calling("ready", Call.ADMIN, self._s.timeout_s):
                return await self._client.collections.exists(self.name)
        except StoreError:
            return False

    # -- schema --

    async def ensure_collection(self) -> None:
        """Create the collection, or add the spaces (named vectors) and base properties it lacks.

        Idempotent, and safe when workers race: every change is followed by a re-read, and a change that
        failed because another worker made it first is simply found done on the re-read.
        """
        async with self._schema_lock:
            last_error: StoreError | None = None
            for attempt in range(_SCHEMA_ATTEMPTS + 1):
                view = await self._read_schema()
                missing = sorted(set(self._spaces) - view.vectors) if view else []
                props = [p for p in base_properties() if p.name not in view.properties] if view else []
                if view is not None and not missing and not props:
                    return
                if attempt == _SCHEMA_ATTEMPTS:
                    break
                if view is None:
                    last_error = await self._attempt("create collection", self._create())
                    continue
                col = self._collection()
                if missing:
                    configs = [vector_config(s) for s in missing]
                    last_error = await self._attempt(
                        f"add vectors {missing}", col.config.add_vector(vector_config=configs)
                    )
                for prop in props:
                    change = col.config.add_property(prop)
                    last_error = await self._attempt(f"add property {prop.name}", change)
        raise StoreError(f"collection {self.name} not set up after {_SCHEMA_ATTEMPTS} rounds: {last_error}")

    async def drop_collection(self) -> None:
        """Delete the collection and everything in it (tests, and re-indexing from the topic)."""
        async with self._schema_lock, calling("drop collection", Call.ADMIN, self._s.timeout_s):
            await self._connected().collections.delete(self.name)
        self._handle = None
        self._schema = None

    async def _create(self) -> None:
        await self._connected().collections.create(
            self.name, properties=base_properties(), vector_config=[vector_config(s) for s in self._spaces]
        )

    async def _attempt(self, what: str, change: Awaitable[object]) -> StoreError | None:
        """Run one schema change; a refusal is returned (the caller re-reads), unavailability raised."""
        try:
            async with calling(what, Call.ADMIN, self._s.timeout_s):
                await change
        except StoreUnavailable:
            raise
        except StoreError as e:
            log.info("schema change refused (another worker may have made it): %s", e)
            return e
        return None

    async def _read_schema(self) -> SchemaView | None:
        client = self._connected()
        async with calling("read schema", Call.ADMIN, self._s.timeout_s):
            if not await client.collections.exists(self.name):
                return None
            config = await self._collection().config.get()
        self._schema = SchemaView.of(config)
        return self._schema

    async def _reread(self) -> SchemaView:
        view = await self._read_schema()
        if view is None:
            raise StoreUnavailable(f"collection {self.name} is missing; ensure_collection() creates it")
        return view

    async def _view(self, *, refresh: bool = False) -> SchemaView:
        """The cached schema, or a fresh read. Callers refresh only on a miss (an unknown field or space:
        another worker may have added it), so a steady state costs no schema reads."""
        if self._schema is None or refresh:
            return await self._reread()
        return self._schema

    async def _ensure_properties(self, wanted: Mapping[str, PropKind]) -> SchemaView:
        """Add the metadata properties the batch needs; the first type seen for a key wins, for good."""
        view = await self._view()
        if all(name in view.properties for name in wanted):
            return view
        async with self._schema_lock:
            view = await self._reread()  # another worker may have added some meanwhile
            col = self._collection()
            for name, kind in wanted.items():
                if name not in view.properties:
                    await self._attempt(f"add property {name}", col.config.add_property(
                        meta_property_config(name, kind)))
            return await self._reread()

    # -- writes --

    async def write(self, upserts: Sequence[AssetObject], deletes: Sequence[str]) -> dict[str, StoreError]:
        """Upsert (replace) and delete; return the assets that can never be stored, with the reason.

        Raises StoreUnavailable when Weaviate is down, slow or overloaded: nothing is known to be stored
        then, and the whole call may be retried (uuid5 ids make it idempotent).
        """
        check_disjoint(upserts, deletes)
        failures: dict[str, StoreError] = {}
        objects: list[tuple[str, WeaviateObject]] = []
        if upserts:
            view = await self._ensure_properties(wanted_properties(upserts))
            for obj in upserts:
                try:
                    objects.append((obj.asset_id, to_weaviate_object(obj, view, self._spaces, self._clock)))
                except WriteRejected as e:
                    failures[obj.asset_id] = e
        for chunk in _chunks(objects, _WRITE_CHUNK):
            failures.update(await self._insert(chunk))
        for ids in _chunks(deletes, _ID_CHUNK):
            await self._delete(ids)
        return failures

    async def _insert(self, chunk: Sequence[tuple[str, WeaviateObject]]) -> dict[str, StoreError]:
        all_failed: str | None = None
        async with calling("batch write", Call.WRITE, self._s.timeout_s):
            try:
                result = await self._collection().data.insert_many([o for _, o in chunk])
            except WeaviateInsertManyAllFailedError as e:
                # The client drops the per-object errors when every object fails.
                all_failed = str(e).split("Here is the set of all errors: ", 1)[-1]
        if all_failed is not None:
            return await self._all_failed(chunk, all_failed)
        return {chunk[i][0]: rejected(chunk[i][0], err.message) for i, err in result.errors.items()}

    async def _all_failed(
        self, chunk: Sequence[tuple[str, WeaviateObject]], message: str
    ) -> dict[str, StoreError]:
        if is_transient_message(message):
            raise StoreUnavailable(f"batch write: {message}")
        if len(chunk) == 1:
            return {chunk[0][0]: rejected(chunk[0][0], message)}
        log.warning("all %d objects of a batch failed; writing them one by one for their errors", len(chunk))
        failures: dict[str, StoreError] = {}
        for item in chunk:
            failures.update(await self._insert([item]))
        return failures

    async def _delete(self, asset_ids: Sequence[str]) -> None:
        where = Filter.by_id().contains_any([asset_uuid(a) for a in asset_ids])
        async with calling("batch delete", Call.WRITE, self._s.timeout_s):
            result = await self._collection().data.delete_many(where=where)
        if result.failed:
            raise StoreUnavailable(f"batch delete: {result.failed} of {len(asset_ids)} deletes failed")

    # -- reads --

    async def states(self, asset_ids: Sequence[str], *, with_vectors: bool = False) -> dict[str, StoredState]:
        """What is stored for these assets (missing ones are absent from the result)."""
        found: dict[str, StoredState] = {}
        for ids in _chunks(list(dict.fromkeys(asset_ids)), _ID_CHUNK):
            async with calling("read states", Call.QUERY, self._s.timeout_s):
                result = await self._collection().query.fetch_objects(
                    filters=Filter.by_id().contains_any([asset_uuid(a) for a in ids]), limit=len(ids),
                    return_properties=STATE_PROPERTIES, include_vector=with_vectors,
                )
            for obj in result.objects:
                state = stored_state(obj.properties, obj.vector if with_vectors else None)
                found[state.asset_id] = state
        return found

    async def get(self, asset_id: str) -> StoredAsset | None:
        async with calling("get asset", Call.QUERY, self._s.timeout_s):
            obj = await self._collection().query.fetch_object_by_id(
                asset_uuid(asset_id), include_vector=True, return_properties=RESULT_PROPERTIES
            )
        return None if obj is None else stored_asset(obj.properties, list(obj.vector))

    async def thumbnail(self, asset_id: str) -> bytes | None:
        async with calling("get thumbnail", Call.QUERY, self._s.timeout_s):
            obj = await self._collection().query.fetch_object_by_id(
                asset_uuid(asset_id), return_properties=["thumbnail"]
            )
        blob = None if obj is None else obj.properties.get("thumbnail")
        return base64.b64decode(blob) if blob else None

    async def vector_of(self, asset_id: str, space: str) -> list[float] | None:
        """The asset's vector in ``space`` (for "more like this"); None if the asset or vector is missing."""
        await self._known_space(space)
        async with calling("get vector", Call.QUERY, self._s.timeout_s):
            obj = await self._collection().query.fetch_object_by_id(
                asset_uuid(asset_id), include_vector=[space], return_properties=["asset_id"]
            )
        vector = None if obj is None else obj.vector.get(space)
        return None if vector is None else vectors_of({space: vector})[space]

    async def count(self) -> int:
        async with calling("count", Call.QUERY, self._s.timeout_s):
            result = await self._collection().aggregate.over_all(total_count=True)
        return result.total_count or 0

    async def _known_space(self, space: str) -> SchemaView:
        view = await self._view()
        if space not in view.vectors:
            view = await self._view(refresh=True)
        if space not in view.vectors:
            raise InvalidQuery(f"unknown vector space {space!r}; the collection has {sorted(view.vectors)}")
        return view

    # -- search --

    async def search(self, q: SearchQuery) -> list[Hit]:
        """Nearest assets to ``q.vector`` (vector mode) or fused BM25 + vector ranking (hybrid mode)."""
        view = await self._known_space(q.space)
        dim = self._spaces.get(q.space)
        if q.vector is not None and dim is not None and len(q.vector) != dim:
            raise InvalidQuery(f"{q.space} query vector has {len(q.vector)} dimensions, not {dim}")
        try:
            where = search_filter(q, view)
        except UnknownField:
            where = search_filter(q, await self._view(refresh=True))  # another worker may have added it
        query = self._collection().query
        common: dict[str, Any] = {
            "limit": q.limit, "offset": q.offset, "filters": where, "return_properties": RESULT_PROPERTIES,
        }
        async with calling("search", Call.QUERY, self._s.timeout_s):
            if q.mode == "vector":
                assert q.vector is not None  # SearchQuery checked it
                result = await query.near_vector(
                    q.vector, target_vector=q.space, return_metadata=MetadataQuery(distance=True), **common
                )
            elif q.vector is not None:
                result = await query.hybrid(
                    q.text, vector=q.vector, alpha=q.alpha, target_vector=q.space, query_properties=["text"],
                    return_metadata=MetadataQuery(score=True), **common,
                )
            else:
                result = await query.bm25(
                    q.text or "", query_properties=["text"], return_metadata=MetadataQuery(score=True),
                    **common,
                )
        return [hit(o.properties, self._score(q, o.metadata)) for o in result.objects]

    @staticmethod
    def _score(q: SearchQuery, metadata: Any) -> float:
        if q.mode == "vector":
            # cosine distance is 1 - cosine similarity, so this is the similarity itself, in [-1, 1]
            return 1.0 - float(metadata.distance if metadata.distance is not None else 1.0)
        return float(metadata.score or 0.0)
