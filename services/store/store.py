"""AssetStore: the asset collection in Weaviate, over the async client (REST for schema, gRPC for data).

One instance per process, started once (``async with AssetStore(...)``) and shared by all tasks on the
event loop. Every call runs under ``settings.timeout_s`` and raises StoreUnavailable when Weaviate is
down or slow, so callers back off without knowing the client's exceptions. On a cluster it uses one node at
a time and moves on when that one goes away (nodes.py); writes wait longer there (cluster_write_timeout_s).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from weaviate.classes.config import Configure, ConsistencyLevel, Property, Reconfigure
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.client import WeaviateAsyncClient
from weaviate.collections.classes.config_vectors import VectorConfigCreate
from weaviate.collections.collection import CollectionAsync
from weaviate.exceptions import WeaviateInsertManyAllFailedError

from services.config import WeaviateSettings, segments_space, segments_vector
from services.errors import ConfigError
from services.lifecycle import AsyncResource
from services.store.errors import (
    InvalidQuery,
    StoreError,
    StoreUnavailable,
    TenantMismatch,
    TenantNotFound,
    UnknownField,
    WriteRejected,
)
from services.store.failures import Call, calling, cause_of_message, is_transient_message, rest_error
from services.store.migrations import read_state, side_for
from services.store.models import AssetObject, Hit, SearchQuery, StoredAsset, StoredState, asset_uuid
from services.store.nodes import NodeClient
from services.store.reads import (
    hit,
    rest_state,
    search_filter,
    segment_matches,
    stored_asset,
    stored_state,
    vectors_of,
)
from services.store.schema import (
    HIT_PROPERTIES,
    RESULT_PROPERTIES,
    SEGMENT_HIT_PROPERTIES,
    STATE_PROPERTIES,
    PropKind,
    SchemaView,
    base_properties,
    check_index_settings,
    fixed_changes_message,
    index_changes,
    index_update,
    meta_property_config,
    replication_config,
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
#: What a keyword (BM25) search matches: a text asset's text and an image's or a clip's caption.
KEYWORD_PROPERTIES = ["text", "caption"]
_BY_ID_CONCURRENCY = 16  # reads by id in flight at once (replicated collections)
_ID_CHUNK = 1000  # ids per delete / state lookup (Weaviate caps a result window at 10,000)
_SCHEMA_ATTEMPTS = 5  # rounds of read-create/extend-reread when workers race on the schema

Collection = CollectionAsync[dict[str, Any], None]
T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _adding_property(prop: Property) -> Callable[[Collection], Awaitable[object]]:
    return lambda col: col.config.add_property(prop)


def _adding_vectors(configs: list[VectorConfigCreate]) -> Callable[[Collection], Awaitable[object]]:
    return lambda col: col.config.add_vector(vector_config=configs)


class AssetStore(AsyncResource):
    """The asset collection. ``spaces`` maps each embedding space (a named vector) to its dimension."""

    def __init__(
        self, settings: WeaviateSettings, spaces: Mapping[str, int], *,
        clock: Callable[[], datetime] | None = None, models: Mapping[str, str] | None = None,
    ) -> None:
        bad = [s for s, dim in spaces.items() if not _SPACE.match(s) or dim < 1]
        if bad:
            raise ConfigError(f"vector spaces need GraphQL names and a dimension >= 1: {bad}")
        name = settings.collection[:1].upper() + settings.collection[1:]
        if not _COLLECTION.match(name):
            raise ConfigError(f"collection name {settings.collection!r} is not a valid Weaviate class name")
        self._s = settings
        self.name = name  # the physical collection: the alias's target once started (resolve_alias)
        self.alias_name = name  # what the settings name, an alias or a collection
        # space -> model id of a writer (the worker): during a migration it writes the side of its model
        self._models = dict(models) if models is not None else None
        self._spaces = dict(spaces)
        self._indexes = {space: settings.index_of(space) for space in spaces}
        for space, dim in spaces.items():
            check_index_settings(space, self._indexes[space], dim)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._nodes = NodeClient(settings)
        replicated = bool(settings.nodes) or settings.replication_factor > 1
        self._write_timeout_s = max(settings.timeout_s, settings.cluster_write_timeout_s if replicated else 0.0)
        self._reads_at = ConsistencyLevel(settings.read_consistency)
        self._writes_at = ConsistencyLevel(settings.write_consistency)
        # Collection handles are local objects (no request), built once per client since every call uses them.
        self._handles_of: WeaviateAsyncClient | None = None
        self._handles: dict[ConsistencyLevel | None, Collection] = {}
        self._schema: SchemaView | None = None
        self._schema_lock = asyncio.Lock()

    # -- lifecycle --

    async def start(self) -> None:
        """Connect (REST and gRPC) to the first node that answers (StoreUnavailable when none does), and pin the
        collection the configured name points at when it is an alias: a worker started before a migration's
        cutover keeps writing its side after it (the old model's vectors never reach the new side)."""
        await self._nodes.start()
        await self.resolve_alias()

    async def resolve_alias(self, *, check_models: bool = False) -> str:
        """Use the collection the configured name points at now (itself when it is no alias); returns it.
        ``check_models`` (a writer's store, from ensure_collection): during a migration, the side whose model
        this writer runs instead (migrations.side_for; ConfigError when it runs neither side's)."""
        async with self._calling("read alias", Call.ADMIN):
            got = await self._connected().alias.get(alias_name=self.alias_name)
            state = await read_state(self._connected(), self.alias_name) \
                if got is not None and check_models and self._models is not None else None
        target = self.alias_name if got is None else str(got.collection)
        if state is not None and self._models is not None:
            side = side_for(state, target, self._models)
            if side != target:
                log.warning("the alias %s points at %s (%s), but this worker runs %s: writing %s, its model's side",
                            self.alias_name, target, state.model_of(target), self._models[state.space], side)
            target = side
        if target != self.name:
            self.name, self._handles, self._schema = target, {}, None
        return target

    async def close(self) -> None:
        self._handles_of, self._handles = None, {}
        await self._nodes.close()

    @asynccontextmanager
    async def _calling(self, what: str, call: Call) -> AsyncIterator[None]:
        """``calling`` on the node in use. After a retriable failure the next call first checks that node
        and moves to another one when it is gone: so the body must reach the client from inside."""
        await self._nodes.recheck()
        try:
            async with calling(what, call, self._write_timeout_s if call is Call.WRITE else self._s.timeout_s):
                yield
        except StoreUnavailable:
            self._nodes.suspect()
            raise

    def _connected(self) -> WeaviateAsyncClient:
        if self._nodes.client is None:
            raise StoreError("the store is not started: call start() or use `async with`")
        return self._nodes.client

    def _collection(self, level: ConsistencyLevel | None = None) -> Collection:
        client = self._connected()
        if self._handles_of is not client:  # started, or moved to another node
            self._handles_of, self._handles = client, {}
        if level not in self._handles:
            base = client.collections.use(self.name)
            self._handles[level] = base if level is None else base.with_consistency_level(level)
        return self._handles[level]

    def _reads(self, tenant: str | None = None) -> Collection:
        return self._scoped(self._collection(self._reads_at), tenant)

    def _writes(self, tenant: str | None = None) -> Collection:
        return self._scoped(self._collection(self._writes_at), tenant)

    def _scoped(self, col: Collection, tenant: str | None) -> Collection:
        """The collection as one tenant sees it (a local object, no request). A data call must name a tenant
        exactly when the collection is multi-tenant: the check is here, so no call can forget it."""
        if self._s.multi_tenancy != (tenant is not None):
            raise TenantMismatch(
                f"collection {self.name} is multi-tenant: name a tenant" if self._s.multi_tenancy
                else f"collection {self.name} is single-tenant: got tenant {tenant!r}")
        return col if tenant is None else col.with_tenant(tenant)

    @property
    def multi_tenant(self) -> bool:
        return self._s.multi_tenancy

    async def ready(self) -> bool:
        """Weaviate answers and the collection exists."""
        if self._nodes.client is None:
            return False
        try:
            async with self._calling("ready", Call.ADMIN):
                return await self._connected().collections.exists(self.name)
        except StoreError:
            return False

    # -- schema --

    async def ensure_collection(self) -> None:
        """Create the collection, or add the spaces (named vectors) and base properties it lacks.

        Idempotent, and safe when workers race: every change is followed by a re-read, and a change that
        failed because another worker made it first is simply found done on the re-read.
        """
        async with self._schema_lock:
            await self.resolve_alias(check_models=True)  # made an alias since start, or a migration's side
            last_error: StoreError | None = None
            for attempt in range(_SCHEMA_ATTEMPTS + 1):
                view = await self._read_schema()
                missing = sorted(set(self._spaces) - view.vectors) if view else []
                props = [p for p in base_properties() if p.name not in view.properties] if view else []
                if view is not None:
                    await self._check_tenancy(view)
                if view is not None and not missing and not props:
                    return await self._apply_index_settings(view)
                if attempt == _SCHEMA_ATTEMPTS:
                    break
                if view is None:
                    last_error = await self._attempt("create collection", lambda _: self._create())
                    continue
                self._check_replication(view)
                if missing:
                    configs = [vector_config(s, self._indexes[s]) for s in missing]
                    last_error = await self._attempt(f"add vectors {missing}", _adding_vectors(configs))
                for prop in props:
                    last_error = await self._attempt(f"add property {prop.name}", _adding_property(prop))
        raise StoreError(f"collection {self.name} not set up after {_SCHEMA_ATTEMPTS} rounds: {last_error}")

    async def drop_collection(self) -> None:
        """Delete the collection and everything in it (tests, and re-indexing from the topic)."""
        async with self._schema_lock, self._calling("drop collection", Call.ADMIN):
            client = self._connected()
            alias = await client.alias.get(alias_name=self.alias_name) if self.alias_name != self.name else None
            if alias is not None and alias.collection == self.name:
                await client.alias.delete(alias_name=self.alias_name)  # an alias may not point at nothing
            await client.collections.delete(self.name)
        self._handles = {}
        self._schema = None

    async def _create(self) -> None:
        if self._s.behind_alias and self.name == self.alias_name:
            # `<name>_v1` behind the alias `<name>`: a worker racing us may make either first, so each step
            # tolerates the other's, and the re-read after it (ensure_collection) finds the result.
            physical = f"{self.alias_name}_v1"
            if not await self._connected().collections.exists(physical):
                await self._create_physical(physical)
            if await self._connected().alias.get(alias_name=self.alias_name) is None:
                await self._connected().alias.create(alias_name=self.alias_name, target_collection=physical)
            self.name, self._handles, self._schema = physical, {}, None
            return
        await self._create_physical(self.name)

    async def _create_physical(self, name: str) -> None:
        tenancy = Configure.multi_tenancy(enabled=True, auto_tenant_creation=self._s.auto_tenant_creation) \
            if self._s.multi_tenancy else None
        await self._connected().collections.create(
            name, properties=base_properties(),
            vector_config=[vector_config(s, self._indexes[s]) for s in self._spaces],
            replication_config=replication_config(self._s.replication_factor),
            multi_tenancy_config=tenancy,
        )

    async def _check_tenancy(self, view: SchemaView) -> None:
        """Multi-tenancy is fixed when a collection is created (Weaviate cannot switch it in place): a setting
        that disagrees stops the start. Automatic tenant creation can change, and is changed in place."""
        want = self._s.multi_tenancy
        if view.multi_tenancy != want:
            has = "multi-tenant" if view.multi_tenancy else "single-tenant"
            raise ConfigError(
                f"collection {self.name} is {has} in Weaviate but XMODAL_WEAVIATE__MULTI_TENANCY={str(want).lower()}"
                f": multi-tenancy is fixed when a collection is created. Set it back to "
                f"{str(view.multi_tenancy).lower()}, or index into a new collection (XMODAL_WEAVIATE__COLLECTION,"
                " filled again from the topic) and switch to it")
        if want and view.auto_tenant_creation != self._s.auto_tenant_creation:
            log.warning("collection %s: changing autoTenantCreation in place to %s", self.name,
                        self._s.auto_tenant_creation)
            update = Reconfigure.multi_tenancy(auto_tenant_creation=self._s.auto_tenant_creation)
            async with self._calling("update multi-tenancy", Call.ADMIN):
                await self._collection().config.update(multi_tenancy_config=update)
            await self._reread()

    # -- tenants --

    async def tenants(self) -> list[str]:
        """The collection's tenants, sorted (multi-tenant collections only)."""
        await self._multi_tenant_collection()
        async with self._calling("list tenants", Call.ADMIN):
            got = await self._collection().tenants.get()
        return sorted(got)

    async def add_tenant(self, tenant: str) -> bool:
        """Create ``tenant``; False when it already existed."""
        await self._multi_tenant_collection()
        async with self._calling("add tenant", Call.ADMIN):
            col = self._collection()
            if await col.tenants.exists(tenant):
                return False
            await col.tenants.create([tenant])
        return True

    async def delete_tenant(self, tenant: str) -> bool:
        """Delete ``tenant`` with all its objects (its shard); nothing of any other tenant. False when there was
        no such tenant. With automatic tenant creation on, a later write into it creates it again, empty."""
        await self._multi_tenant_collection()
        async with self._calling("delete tenant", Call.ADMIN):
            col = self._collection()
            if not await col.tenants.exists(tenant):
                return False
            await col.tenants.remove([tenant])
        return True

    async def _multi_tenant_collection(self) -> None:
        """Tenant administration needs the collection, made multi-tenant (by a worker or gateway started with
        XMODAL_WEAVIATE__MULTI_TENANCY=true)."""
        if not self._s.multi_tenancy:
            raise TenantMismatch("tenants need XMODAL_WEAVIATE__MULTI_TENANCY=true (and a collection created so)")
        view = await self._read_schema()
        if view is None:
            raise StoreError(f"collection {self.name} does not exist yet: start a worker or a gateway with "
                             "XMODAL_WEAVIATE__MULTI_TENANCY=true first (they create it)")
        await self._check_tenancy(view)

    async def _apply_index_settings(self, view: SchemaView) -> None:
        """Change the spaces' indexes in place where they differ from their settings and Weaviate can; raise
        ConfigError, changing nothing, where it cannot (the operator chooses: old settings or a new index)."""
        changes = [c for s in self._spaces if s in view.indexes
                   for c in index_changes(s, self._indexes[s], view.indexes[s])]
        if fixed := [c for c in changes if not c.in_place]:
            raise ConfigError(fixed_changes_message(self.name, fixed))
        if not changes:
            return
        log.warning("collection %s: changing the vector index in place: %s", self.name,
                    "; ".join(map(str, changes)))
        updates = [index_update(s, self._indexes[s]) for s in sorted({c.space for c in changes})]
        async with self._calling("update vector index", Call.ADMIN):
            await self._collection().config.update(vector_config=updates)
        await self._reread()

    def _check_replication(self, view: SchemaView) -> None:
        if view.replication_factor < self._s.replication_factor:
            log.warning("collection %s keeps %d replica(s) per shard, not the %d configured: a collection's "
                        "factor is set when it is created", self.name, view.replication_factor,
                        self._s.replication_factor)

    async def _attempt(self, what: str, change: Callable[[Collection], Awaitable[object]]) -> StoreError | None:
        """Run one schema change; a refusal is returned (the caller re-reads), unavailability raised."""
        try:
            async with self._calling(what, Call.ADMIN):
                await change(self._collection())
        except StoreUnavailable:
            raise
        except StoreError as e:
            log.info("schema change refused (another worker may have made it): %s", e)
            return e
        return None

    async def _read_schema(self) -> SchemaView | None:
        async with self._calling("read schema", Call.ADMIN):
            if not await self._connected().collections.exists(self.name):
                return None
        if self.name == self.alias_name:
            # exists() answers for an alias too, and one another process made a moment ago must be resolved
            # now, or this store would write through the alias and follow a later switch (alias.get after a
            # True exists() sees the alias if there was one: an alias in use is switched, not dropped).
            await self.resolve_alias()
        async with self._calling("read schema", Call.ADMIN):
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
            for name, kind in wanted.items():
                if name not in view.properties:
                    await self._attempt(f"add property {name}", _adding_property(meta_property_config(name, kind)))
            return await self._reread()

    # -- writes --

    async def write(self, upserts: Sequence[AssetObject], deletes: Sequence[str], *, tenant: str | None = None
                    ) -> dict[str, StoreError]:
        """Upsert (replace) and delete in ``tenant``; return the assets that can never be stored, with the reason.

        Raises StoreUnavailable when Weaviate is down, slow or overloaded: nothing is known to be stored
        then, and the whole call may be retried (uuid5 ids make it idempotent).
        """
        check_disjoint(upserts, deletes)
        self._writes(tenant)  # a tenant mismatch is the caller's bug: raised before anything is written
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
            failures.update(await self._insert(chunk, tenant))
        for ids in _chunks(deletes, _ID_CHUNK):
            await self._delete(ids, tenant)
        return failures

    async def _insert(self, chunk: Sequence[tuple[str, WeaviateObject]], tenant: str | None
                      ) -> dict[str, StoreError]:
        all_failed: str | None = None
        async with self._calling("batch write", Call.WRITE):
            try:
                result = await self._writes(tenant).data.insert_many([o for _, o in chunk])
            except WeaviateInsertManyAllFailedError as e:
                # The client drops the per-object errors when every object fails.
                all_failed = str(e).split("Here is the set of all errors: ", 1)[-1]
        if all_failed is not None:
            return await self._all_failed(chunk, all_failed, tenant)
        return {chunk[i][0]: rejected(chunk[i][0], err.message) for i, err in result.errors.items()}

    async def _all_failed(
        self, chunk: Sequence[tuple[str, WeaviateObject]], message: str, tenant: str | None
    ) -> dict[str, StoreError]:
        if is_transient_message(message):
            raise StoreUnavailable(f"batch write: {message}", cause=cause_of_message(message))
        if len(chunk) == 1:
            return {chunk[0][0]: rejected(chunk[0][0], message)}
        log.warning("all %d objects of a batch failed; writing them one by one for their errors", len(chunk))
        failures: dict[str, StoreError] = {}
        for item in chunk:
            failures.update(await self._insert([item], tenant))
        return failures

    async def _delete(self, asset_ids: Sequence[str], tenant: str | None) -> None:
        where = Filter.by_id().contains_any([asset_uuid(a) for a in asset_ids])
        try:
            async with self._calling("batch delete", Call.WRITE):
                result = await self._writes(tenant).data.delete_many(where=where)
        except TenantNotFound:
            return  # no such tenant: nothing of it to delete
        if result.failed:
            raise StoreUnavailable(f"batch delete: {result.failed} of {len(asset_ids)} deletes failed")

    # -- reads --

    async def states(self, asset_ids: Sequence[str], *, with_vectors: bool = False, tenant: str | None = None
                     ) -> dict[str, StoredState]:
        """What is stored for these assets of ``tenant`` (missing ones are absent from the result).

        The worker decides skip / update / insert from these states, so on a replicated collection they
        must be what a quorum holds, never one replica's older copy. A filtered search reads the node's own
        replica, and Weaviate checks only the objects it found against the others: a node back from an
        outage (or one whose commit a dying coordinator never sent) reports a missing or older copy, and
        an older event would then be stored over a newer one. So a replicated collection is read object
        by object over REST (``_read_by_id``), which is Weaviate's replicated read: it compares the
        replicas at the read consistency, returns the newest and repairs the others.
        """
        ids = list(dict.fromkeys(asset_ids))
        try:
            if (await self._view()).replication_factor > 1:
                return await self._read_by_id(ids, with_vectors, tenant)
            return await self._search_states(ids, with_vectors, tenant)
        except TenantNotFound:
            return {}  # a tenant not created yet holds nothing

    async def _read_by_id(self, asset_ids: list[str], with_vectors: bool, tenant: str | None
                          ) -> dict[str, StoredState]:
        """Each object by id at the read consistency, ``_BY_ID_CONCURRENCY`` at a time (the v4 client's
        ``fetch_object_by_id`` is a gRPC filtered search, so it has the same blind spot)."""
        params = {"consistency_level": self._reads_at.value}
        if tenant is not None:
            params["tenant"] = tenant
        if with_vectors:
            params["include"] = "vector"
        gate = asyncio.Semaphore(_BY_ID_CONCURRENCY)

        async def one(asset_id: str) -> StoredState | None:
            async with gate, self._calling("read state", Call.QUERY):
                response = await self._nodes.rest_get(f"objects/{self.name}/{asset_uuid(asset_id)}", params)
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise rest_error(f"read state of {asset_id!r}", response.status_code, response.text)
            return rest_state(response.json())

        states = await asyncio.gather(*map(one, asset_ids))
        return {st.asset_id: st for st in states if st is not None}

    async def _search_states(self, asset_ids: list[str], with_vectors: bool, tenant: str | None
                             ) -> dict[str, StoredState]:
        found: dict[str, StoredState] = {}
        for ids in _chunks(asset_ids, _ID_CHUNK):
            async with self._calling("read states", Call.QUERY):
                result = await self._reads(tenant).query.fetch_objects(
                    filters=Filter.by_id().contains_any([asset_uuid(a) for a in ids]), limit=len(ids),
                    return_properties=STATE_PROPERTIES, include_vector=with_vectors,
                )
            for obj in result.objects:
                state = stored_state(obj.properties, obj.vector if with_vectors else None)
                found[state.asset_id] = state
        return found

    async def _by_id(self, what: str, asset_id: str, tenant: str | None, **options: Any) -> Any:
        """One object by id in ``tenant``, or None: absent, or its tenant does not exist (the same answer, so
        no caller can tell another tenant's ids, or tenants, from ids that never existed)."""
        try:
            async with self._calling(what, Call.QUERY):
                return await self._reads(tenant).query.fetch_object_by_id(asset_uuid(asset_id), **options)
        except TenantNotFound:
            return None

    async def get(self, asset_id: str, *, tenant: str | None = None) -> StoredAsset | None:
        obj = await self._by_id("get asset", asset_id, tenant, include_vector=True,
                                return_properties=RESULT_PROPERTIES)
        return None if obj is None else stored_asset(obj.properties, list(obj.vector))

    async def thumbnail(self, asset_id: str, *, tenant: str | None = None) -> bytes | None:
        obj = await self._by_id("get thumbnail", asset_id, tenant, return_properties=["thumbnail"])
        blob = None if obj is None else obj.properties.get("thumbnail")
        return base64.b64decode(blob) if blob else None

    async def playback(self, asset_id: str, *, tenant: str | None = None) -> tuple[bytes, str] | None:
        """A video's stored file and its MIME type, for the search page's player; None when there is none."""
        obj = await self._by_id("get playback", asset_id, tenant, return_properties=["playback", "playback_mime"])
        blob = None if obj is None else obj.properties.get("playback")
        if not blob:
            return None
        return base64.b64decode(blob), str(obj.properties.get("playback_mime") or "application/octet-stream")

    async def vector_of(self, asset_id: str, space: str, *, tenant: str | None = None) -> list[float] | None:
        """The asset's vector in ``space`` (for "more like this"); None if the asset or vector is missing."""
        await self._known_space(space)
        obj = await self._by_id("get vector", asset_id, tenant, include_vector=[space], return_properties=["asset_id"])
        vector = None if obj is None else obj.vector.get(space)
        return None if vector is None else vectors_of({space: vector})[space]

    async def count(self, *, tenant: str | None = None) -> int:
        try:
            async with self._calling("count", Call.QUERY):
                result = await self._reads(tenant).aggregate.over_all(total_count=True)
        except TenantNotFound:
            return 0
        return result.total_count or 0

    async def tenant_counts(self) -> dict[str, int]:
        """tenant -> objects it holds (the status page)."""
        return {t: await self.count(tenant=t) for t in await self.tenants()}

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
        scored_segments = q.mode == "vector" and (segments_space(q.space) is not None or q.target == "video")
        common: dict[str, Any] = {
            "limit": q.limit, "offset": q.offset, "filters": where,
            "return_properties": SEGMENT_HIT_PROPERTIES if scored_segments else HIT_PROPERTIES,
        }
        try:
            return await self._search(q, common)
        except TenantNotFound:
            return []  # a tenant not created yet: nothing to find

    async def _search(self, q: SearchQuery, common: dict[str, Any]) -> list[Hit]:
        async with self._calling("search", Call.QUERY):
            query = self._reads(q.tenant).query
            if q.mode == "vector" and segments_space(q.space) is not None:
                assert q.vector is not None  # SearchQuery checked it
                # A multi-vector takes a query of vectors: one, so MaxSim is its best dot product with a segment.
                result = await query.near_vector(
                    [q.vector], target_vector=q.space, return_metadata=MetadataQuery(distance=True),
                    include_vector=[q.space], **common,
                )
                return [hit(o.properties, -float(o.metadata.distance or 0.0),
                            segment_matches(o.properties, o.vector.get(q.space), q.vector)) for o in result.objects]
            if q.mode == "vector":
                assert q.vector is not None  # SearchQuery checked it
                segments = segments_vector(q.space) if q.target == "video" else None
                include: bool | list[str] = [segments] if segments in (await self._view()).vectors else False
                result = await query.near_vector(
                    q.vector, target_vector=q.space, return_metadata=MetadataQuery(distance=True),
                    include_vector=include, **common,
                )
                if segments is not None:
                    return [hit(o.properties, self._score(q, o.metadata),
                                segment_matches(o.properties, o.vector.get(segments), q.vector))
                            for o in result.objects]
            elif q.vector is not None:
                result = await query.hybrid(
                    q.text, vector=q.vector, alpha=q.alpha, target_vector=q.space, query_properties=KEYWORD_PROPERTIES,
                    return_metadata=MetadataQuery(score=True), **common,
                )
            else:
                result = await query.bm25(
                    q.text or "", query_properties=KEYWORD_PROPERTIES, return_metadata=MetadataQuery(score=True),
                    **common,
                )
        return [hit(o.properties, self._score(q, o.metadata)) for o in result.objects]

    @staticmethod
    def _score(q: SearchQuery, metadata: Any) -> float:
        if q.mode == "vector":
            # cosine distance is 1 - cosine similarity, so this is the similarity itself, in [-1, 1]
            return 1.0 - float(metadata.distance if metadata.distance is not None else 1.0)
        return float(metadata.score or 0.0)
