"""Model migrations in Weaviate: the alias that is the one atomic switch, and the state a migration keeps.

A migrated collection name (``XMODAL_WEAVIATE__COLLECTION``, e.g. ``Asset``) is a Weaviate alias. It points at
one physical collection (``Asset_v1``); a migration fills another one (``Asset_v2``) with a new model's vectors
and then moves the alias (``alias.update``: one Raft operation, so every reader sees the old side or the new
one, never a mix). Rollback is the same move back. The alias is the truth about which side serves; the
state record says what the migration is (space, models, the consumer group filling the new side, the
watermark of the last switch) and survives any crash: it is an object of its own small collection
(``XmodalMigration``, uuid5 of the alias), written before and after each step.

>>> s = MigrationState(alias="Asset", space="clip", old_collection="Asset_v1", new_collection="Asset_v2",
...                    old_model="m1", new_model="m2", group_id="g", started_at="2026-12-02T00:00:00Z")
>>> s.model_of("Asset_v2"), s.model_of("Asset_v1"), s.model_of("Other")
('m2', 'm1', None)
>>> MigrationState.from_json(s.to_json()) == s
True
>>> next_collection("Asset", "Asset_v1"), next_collection("Asset", "Asset_v7"), next_collection("Asset", "X")
('Asset_v2', 'Asset_v8', 'Asset_v2')
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from weaviate.classes.config import DataType, Property
from weaviate.classes.data import DataObject
from weaviate.exceptions import WeaviateBaseError

from services.config import WeaviateSettings
from services.errors import ConfigError
from services.lifecycle import AsyncResource
from services.store.errors import StoreError
from services.store.failures import Call, calling
from services.store.nodes import NodeClient

#: The collection of migration states, one object per alias.
REGISTRY = "XmodalMigration"
_NAMESPACE = uuid.UUID("5b0c1d2e-7a43-4f6e-9f3e-6d1f2a7b9c40")
_VERSION = re.compile(r"^(?P<base>.+)_v(?P<n>\d+)$")

#: backfilling: the new side is being filled (the old one serves); cut_over: the new side serves;
#: rolled_back: the old side serves again (cutover may follow); finished: the migration is over.
Phase = Literal["backfilling", "cut_over", "rolled_back", "finished"]
ACTIVE: frozenset[str] = frozenset({"backfilling", "cut_over", "rolled_back"})


@dataclass(frozen=True)
class MigrationState:
    """One migration of ``alias``: ``space`` moves from ``old_model`` (in ``old_collection``) to ``new_model``
    (in ``new_collection``, filled by the consumer group ``group_id``)."""

    alias: str
    space: str
    old_collection: str
    new_collection: str
    old_model: str
    new_model: str
    group_id: str
    started_at: str
    phase: Phase = "backfilling"
    #: partition -> end offset at the last cutover or rollback: the side switched to had stored everything before
    watermark: dict[int, int] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)  # "<time> <phase>" per step, oldest first

    def model_of(self, collection: str) -> str | None:
        """The model that made ``space`` in ``collection``; None for a collection this migration is not about."""
        return {self.old_collection: self.old_model, self.new_collection: self.new_model}.get(collection)

    def stepped(self, phase: Phase, at: str, watermark: dict[int, int] | None = None) -> MigrationState:
        return replace(self, phase=phase, watermark=self.watermark if watermark is None else watermark,
                       history=[*self.history, f"{at} {phase}"])

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> MigrationState:
        data: dict[str, Any] = json.loads(raw)
        data["watermark"] = {int(p): int(o) for p, o in data.get("watermark", {}).items()}
        return cls(**data)


def next_collection(alias: str, current: str) -> str:
    """The physical collection a migration of ``alias`` fills: the current one's version plus one."""
    m = _VERSION.match(current)
    n = int(m["n"]) + 1 if m and m["base"] == alias else 2
    return f"{alias}_v{n}"


class Migrations(AsyncResource):
    """The alias and the migration states, over the store's own node handling (one node at a time)."""

    def __init__(self, settings: WeaviateSettings) -> None:
        self._s = settings
        self._nodes = NodeClient(settings)

    async def start(self) -> None:
        await self._nodes.start()

    async def close(self) -> None:
        await self._nodes.close()

    def _client(self) -> Any:
        if self._nodes.client is None:
            raise StoreError("migrations: not started (use `async with Migrations(...)`)")
        return self._nodes.client

    async def target(self, alias: str) -> str | None:
        """The collection ``alias`` points at; None when ``alias`` is no alias (absent, or a plain collection)."""
        async with calling("read alias", Call.ADMIN, self._s.timeout_s):
            got = await self._client().alias.get(alias_name=alias)
        return None if got is None else str(got.collection)

    async def exists(self, collection: str) -> bool:
        async with calling("collection exists", Call.ADMIN, self._s.timeout_s):
            return bool(await self._client().collections.exists(collection))

    async def point(self, alias: str, collection: str) -> None:
        """Make ``alias`` point at ``collection``: one atomic switch (created when it is not there yet)."""
        async with calling("switch alias", Call.ADMIN, self._s.timeout_s):
            client = self._client()
            if await client.alias.get(alias_name=alias) is None:
                await client.alias.create(alias_name=alias, target_collection=collection)
            else:
                await client.alias.update(alias_name=alias, new_target_collection=collection)

    async def get(self, alias: str) -> MigrationState | None:
        """The last migration of ``alias`` (finished or not), or None."""
        async with calling("read migration", Call.ADMIN, self._s.timeout_s):
            return await read_state(self._client(), alias)

    async def put(self, state: MigrationState) -> None:
        """Record ``state`` (replacing the alias's previous one); confirmed before it returns."""
        async with calling("write migration", Call.WRITE, self._s.timeout_s):
            client = self._client()
            if not await client.collections.exists(REGISTRY):
                try:
                    await client.collections.create(REGISTRY, properties=[
                        Property(name="alias", data_type=DataType.TEXT),
                        Property(name="state_json", data_type=DataType.TEXT, index_searchable=False,
                                 index_filterable=False)])
                except WeaviateBaseError as exc:  # another process may have made it first: checked below
                    if not await client.collections.exists(REGISTRY):
                        raise StoreError(f"cannot create {REGISTRY}: {exc}") from exc
            result = await client.collections.use(REGISTRY).data.insert_many([DataObject(
                properties={"alias": state.alias, "state_json": state.to_json()}, uuid=_uuid(state.alias))])
        if result.errors:
            raise StoreError(f"migration state of {state.alias} not stored: {result.errors}")

    async def forget(self, alias: str) -> None:
        """Delete the state of ``alias`` (tests, and after a finished migration's old side is dropped)."""
        async with calling("delete migration", Call.ADMIN, self._s.timeout_s):
            client = self._client()
            if await client.collections.exists(REGISTRY):
                await client.collections.use(REGISTRY).data.delete_by_id(_uuid(alias))

    async def drop(self, collection: str) -> None:
        """Delete a physical collection (a finished migration's old side, tests)."""
        async with calling("drop collection", Call.ADMIN, self._s.timeout_s):
            await self._client().collections.delete(collection)

    async def unalias(self, alias: str) -> None:
        async with calling("delete alias", Call.ADMIN, self._s.timeout_s):
            await self._client().alias.delete(alias_name=alias)


async def read_state(client: Any, alias: str) -> MigrationState | None:
    """The last migration of ``alias`` over a connected async client (the caller maps its errors)."""
    if not await client.collections.exists(REGISTRY):
        return None
    obj = await client.collections.use(REGISTRY).query.fetch_object_by_id(_uuid(alias))
    return None if obj is None else MigrationState.from_json(str(obj.properties["state_json"]))


def side_for(state: MigrationState | None, target: str, models: Mapping[str, str]) -> str:
    """The collection a worker running ``models`` (space -> model id) writes when the alias points at
    ``target``: the side whose model it runs. A worker restarted with the old model after a cutover must
    keep writing the old side, never put old vectors into the new one; a model that is neither side's, or the
    old one after the migration finished, is a ConfigError (the worker stops and says so).

    >>> s = MigrationState(alias="A", space="clip", old_collection="A_v1", new_collection="A_v2",
    ...                    old_model="m1", new_model="m2", group_id="g", started_at="t", phase="cut_over")
    >>> side_for(s, "A_v2", {"clip": "m2"}), side_for(s, "A_v2", {"clip": "m1"}), side_for(None, "A_v1", {})
    ('A_v2', 'A_v1', 'A_v1')
    >>> side_for(s, "A_v2", {"clip": "m3"})
    Traceback (most recent call last):
    ...
    services.errors.ConfigError: space clip runs m3, but the migration of A has m1 (A_v1) and m2 (A_v2): ...
    """
    if state is None or state.space not in models:
        return target
    mine = models[state.space]
    if state.model_of(target) == mine:
        return target
    other = state.old_collection if target == state.new_collection else state.new_collection
    if state.model_of(other) == mine and state.phase != "finished":
        return other
    raise ConfigError(
        f"space {state.space} runs {mine}, but the migration of {state.alias} has {state.old_model} "
        f"({state.old_collection}) and {state.new_model} ({state.new_collection}): it is {state.phase}, and "
        f"{state.model_of(target)} serves. Set XMODAL_SPACES__{state.space.upper()}__NAME to the model of the "
        "side this worker should write")


def _uuid(alias: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, alias))
