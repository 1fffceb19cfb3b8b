"""The steps of a migration (see the package docstring): plan, begin, measure, switch, finish.

Each step reads the truth again (the alias, the state record, the groups' committed offsets), so any of them
may run after a crash of any other, from any machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from services.config import KafkaSettings, ModelSettings, WeaviateSettings, WorkerSettings
from services.errors import ConfigError, XmodalError
from services.monitoring.lag import LagReader, LagSnapshot, copy_committed
from services.store.migrations import ACTIVE, Migrations, MigrationState, next_collection
from services.store.store import AssetStore

Side = Literal["new", "old"]


class MigrationError(XmodalError):
    """A migration step that cannot be done now; the message says why and what to do."""

    retriable = False


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def migration_group(live_group: str, collection: str) -> str:
    """The consumer group that fills ``collection``: one per migration, so a new one starts from offset 0."""
    return f"{live_group}-migrate-{collection.lower()}"


def worker_settings(settings: WorkerSettings, state: MigrationState) -> WorkerSettings:
    """The settings of the worker that fills the new side: its collection, its group, the new model."""
    spaces = dict(settings.spaces)
    if state.space not in spaces:
        raise ConfigError(f"space {state.space!r} of the migration is not configured (XMODAL_SPACES)")
    spaces[state.space] = spaces[state.space].model_copy(update={"name": state.new_model})
    return settings.model_copy(update={
        "weaviate": settings.weaviate.model_copy(update={"collection": state.new_collection, "behind_alias": False}),
        "kafka": settings.kafka.model_copy(update={"group_id": state.group_id}),
        "spaces": spaces,
        # Faust's own directory, apart from the live worker's (the caller creates it: Faust makes no parents)
        "data_dir": settings.data_dir / "migrations" / state.new_collection.lower(),
    })


def _group(kafka: KafkaSettings, group_id: str) -> KafkaSettings:
    return kafka.model_copy(update={"group_id": group_id})


async def _count(settings: WeaviateSettings, collection: str) -> int | None:
    """Objects in ``collection`` (single-tenant: the sum over tenants otherwise); None when it does not exist."""
    async with AssetStore(settings.model_copy(update={"collection": collection, "behind_alias": False}),
                          {}) as store:
        if not await store.ready():
            return None
        if store.multi_tenant:
            return sum((await store.tenant_counts()).values())
        return await store.count()


@dataclass(frozen=True)
class Plan:
    alias: str
    space: str
    serving: str | None  # the collection the alias points at; None: the name is no alias
    new_collection: str
    old_model: str
    new_model: str
    objects: int | None
    events: int  # events the new side replays: all the topic holds now
    problems: list[str] = field(default_factory=list)


async def make_plan(settings: WorkerSettings, space: str, model: str) -> Plan:
    alias = settings.weaviate.collection
    problems: list[str] = []
    if space not in settings.spaces or not settings.spaces[space].enabled:
        problems.append(f"space {space!r} is not configured here (XMODAL_SPACES: {', '.join(settings.spaces)})")
    old_model = settings.spaces[space].name if space in settings.spaces else "?"
    if model == old_model:
        problems.append(f"space {space} already uses {model}")
    async with Migrations(settings.weaviate) as reg:
        serving = await reg.target(alias)
        state = await reg.get(alias)
    if serving is None:
        problems.append(f"{alias} is not a Weaviate alias: a migration switches an alias. Index a new deployment "
                        f"with XMODAL_WEAVIATE__BEHIND_ALIAS=true (it creates {alias}_v1 behind the alias {alias})")
    if state is not None and state.phase in ACTIVE:
        problems.append(f"a migration of {alias} is under way ({state.space}: {state.old_model} -> "
                        f"{state.new_model}, {state.phase}); `xmodal migrate status`, then finish or roll back")
    async with LagReader(settings.kafka) as reader:
        snap = await reader.snapshot()
    if cut := [p.partition for p in snap.partitions if p.start_offset > 0]:
        problems.append(f"topic {settings.kafka.topic} no longer holds its first events (partitions {cut} start "
                        "after offset 0: retention deleted them), so replaying it would miss assets; keep the "
                        "topic's history (retention.ms=-1 or cleanup.policy=compact) for migrations")
    collection = next_collection(alias, serving or alias)
    objects = await _count(settings.weaviate, serving) if serving else None
    return Plan(alias, space, serving, collection, old_model, model, objects, snap.produced, problems)


async def begin(settings: WorkerSettings, space: str, model: str) -> MigrationState:
    """Record a new migration (the worker that fills the new side is started by the caller)."""
    plan = await make_plan(settings, space, model)
    if plan.problems:
        raise MigrationError("cannot start the migration: " + "; ".join(plan.problems))
    assert plan.serving is not None  # make_plan reports a name that is no alias as a problem
    state = MigrationState(
        alias=plan.alias, space=space, old_collection=plan.serving, new_collection=plan.new_collection,
        old_model=plan.old_model, new_model=model,
        group_id=migration_group(settings.kafka.group_id, plan.new_collection), started_at=_now(),
        history=[f"{_now()} backfilling"])
    async with Migrations(settings.weaviate) as reg:
        await reg.put(state)
    return state


async def current(settings: WeaviateSettings) -> MigrationState:
    async with Migrations(settings) as reg:
        state = await reg.get(settings.collection)
    if state is None:
        raise MigrationError(f"no migration of {settings.collection}: `xmodal migrate start` begins one")
    return state


@dataclass(frozen=True)
class Progress:
    state: MigrationState
    serving: str | None
    done: int  # events the new side's group is past (stored or dead-lettered)
    total: int  # events in the topic
    rate: float | None  # events/s over the measuring interval
    members: int  # consumers in the new side's group (0: no migration worker runs)
    counts: dict[str, int | None]  # collection -> objects

    @property
    def left(self) -> int:
        return max(0, self.total - self.done)

    @property
    def eta_s(self) -> float | None:
        if self.left == 0:
            return 0.0
        return self.left / self.rate if self.rate else None

    def to_json(self) -> dict[str, object]:
        s = self.state
        return {"alias": s.alias, "space": s.space, "phase": s.phase, "serving": self.serving,
                "old": {"collection": s.old_collection, "model": s.old_model, "objects": self.counts.get(
                    s.old_collection)},
                "new": {"collection": s.new_collection, "model": s.new_model, "objects": self.counts.get(
                    s.new_collection), "group": s.group_id, "members": self.members},
                "done": self.done, "total": self.total, "rate": self.rate, "eta_s": self.eta_s,
                "watermark": s.watermark, "history": s.history}


def _done(snap: LagSnapshot) -> tuple[int, int]:
    start = sum(p.start_offset for p in snap.partitions)
    return snap.consumed - start, snap.produced - start


async def measure(settings: WorkerSettings, *, interval_s: float = 2.0) -> Progress:
    """The migration's progress: two readings of the new side's group ``interval_s`` apart give the rate."""
    state = await current(settings.weaviate)
    async with LagReader(_group(settings.kafka, state.group_id)) as reader:
        first = await reader.snapshot()
        if interval_s > 0:
            await asyncio.sleep(interval_s)
        second = await reader.snapshot()
    (done0, _), (done, total) = _done(first), _done(second)
    elapsed = second.taken_at - first.taken_at
    rate = (done - done0) / elapsed if elapsed > 0 else None
    async with Migrations(settings.weaviate) as reg:
        serving = await reg.target(state.alias)
    counts = {c: await _count(settings.weaviate, c) for c in (state.old_collection, state.new_collection)}
    return Progress(state, serving, done, total, rate, second.members, counts)


async def caught_up(kafka: KafkaSettings, group_id: str, *, timeout_s: float,
                    on_wait: Callable[[int], None] | None = None) -> dict[int, int]:
    """The topic's end offsets now (the watermark), once ``group_id`` has committed them all; MigrationError
    when it has not within ``timeout_s``. ``on_wait`` hears the events still to go, about once a second."""
    async with LagReader(_group(kafka, group_id)) as reader:
        snap = await reader.snapshot()
        watermark = {p.partition: p.end_offset for p in snap.partitions}
        deadline, told = time.monotonic() + timeout_s, 0.0
        while True:
            committed = await reader.committed()
            left = sum(max(0, end - committed.get(p, 0)) for p, end in watermark.items())
            if left == 0:
                return watermark
            if time.monotonic() >= deadline:
                raise MigrationError(f"group {group_id} is {left} event(s) short of the watermark {watermark} "
                                     f"after {timeout_s:g} s: is its worker running (`xmodal migrate resume`, or "
                                     "the live workers for a rollback)? Nothing was switched")
            if on_wait is not None and time.monotonic() - told >= 1.0:
                on_wait(left)
                told = time.monotonic()
            await asyncio.sleep(0.1)


async def switch(settings: WorkerSettings, to: Side, *, timeout_s: float,
                 on_wait: Callable[[int], None] | None = None) -> MigrationState:
    """Cut over (``new``) or roll back (``old``): wait until that side has stored every event published so
    far, then move the alias to it in one step, and record the step with its watermark."""
    state = await current(settings.weaviate)
    if state.phase not in ACTIVE:
        raise MigrationError(f"the migration of {state.alias} is {state.phase}: nothing to switch")
    collection, group = ((state.new_collection, state.group_id) if to == "new"
                         else (state.old_collection, settings.kafka.group_id))
    async with Migrations(settings.weaviate) as reg:
        if not await reg.exists(collection):
            raise MigrationError(f"{collection} does not exist yet: the migration worker creates it on start "
                                 "(`xmodal migrate resume`)")
    watermark = await caught_up(settings.kafka, group, timeout_s=timeout_s, on_wait=on_wait)
    stepped = state.stepped("cut_over" if to == "new" else "rolled_back", _now(), watermark)
    async with Migrations(settings.weaviate) as reg:
        await reg.point(state.alias, collection)
        await reg.put(stepped)
    return stepped


async def finish(settings: WorkerSettings, *, drop_old: bool) -> MigrationState:
    """End a cut-over migration: the live group takes the migration group's offsets (the live workers must be
    stopped: a group with members cannot be moved), so workers started with the new model go on from there."""
    state = await current(settings.weaviate)
    if state.phase != "cut_over":
        raise MigrationError(f"the migration of {state.alias} is {state.phase}; finish follows a cutover")
    async with LagReader(settings.kafka) as reader:
        live = await reader.snapshot()
    if live.members:
        raise MigrationError(f"the live group {settings.kafka.group_id} still has {live.members} member(s): stop "
                             "the workers that run the old model first (the migration worker goes on meanwhile)")
    await copy_committed(settings.kafka, state.group_id, settings.kafka.group_id)
    done = state.stepped("finished", _now())
    async with Migrations(settings.weaviate) as reg:
        await reg.put(done)
        if drop_old:
            await reg.drop(state.old_collection)
    return done


def new_model_settings(settings: WorkerSettings, state: MigrationState) -> ModelSettings:
    return worker_settings(settings, state).spaces[state.space]
