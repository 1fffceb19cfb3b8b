"""`xmodal migrate` end to end: the shapes CLIP -> a second (tiny random) CLIP while events flow and queries run.

One run shows all of the issue's must-haves: the migration worker is killed with SIGKILL mid-way and resumed;
the cutover and the rollback happen while a publisher adds, updates and deletes assets and a client searches
without pause; afterwards every asset, those published during the migration included, has exactly its
newest content's vector from the new model on the new side (and nothing deleted is back), no search failed,
and after the rollback the gateway answers what the old model answers on the old side. Along the way: plan,
status (CLI and /v1/status), read-your-writes after the cutover, a live worker restarted with the old model
after the cutover (it keeps writing the old side), and a second cutover followed by finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cli.invoke import XMODAL, with_root
from cli.publish import targets_of
from services.config import ModelSettings, WeaviateSettings
from services.embedding.model import load_embedder
from services.migration.steps import migration_group
from services.monitoring.lag import LagReader
from services.publish import EventPublisher, Published
from services.store import AssetStore, SearchQuery, parse_model_ids
from services.store.migrations import Migrations
from tests.harness.gateways import GatewayProcess, start_gateway, wait_ready
from tests.harness.lanes import Lane, WorkerProcess, free_port, read_dead_letters
from tests.harness.tiny_models import save_tiny_random_model
from tests.integration.ingest.scenario import Scenario, upsert

pytestmark = pytest.mark.integration

OLD_MODEL = "builtin:shapes-clip"
N_ASSETS = 240
BACKLOG = 1200  # events before the migration starts: enough that the kill lands mid-way
QUERIES = ["a photo of a red circle", "a photo of a blue square", "product txt-4 v2", "a green star"]
ENV = {"XMODAL_WEAVIATE__BEHIND_ALIAS": "true", "XMODAL_SPACES__CLAP__ENABLED": "false"}


@dataclass
class Traffic:
    """What the searching client saw: HTTP status and the answering model of every search."""

    seen: list[tuple[int, str | None]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def failures(self) -> list[str]:
        return self.errors + [f"HTTP {status}" for status, _ in self.seen if status != 200]

    def last_model(self) -> str | None:
        return self.seen[-1][1] if self.seen else None


class Catalogue:
    """A churn of image and text assets (updates, deletes) with the state it must end in."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.sc = Scenario()
        self.assets = [f"img-{i}" if i % 3 == 0 else f"txt-{i}" for i in range(N_ASSETS)]
        self.published: list[Published] = []

    def events(self, n: int) -> list[tuple[bytes | None, bytes]]:
        start = len(self.sc.events)
        while len(self.sc.events) < start + n:
            aid = self.rng.choice(self.assets)
            if aid in self.sc.state and self.rng.random() < 0.1:
                self.sc.good({"asset_id": aid, "op": "delete"})
            else:
                self.sc.good(upsert(self.rng, aid))
        return [(e.key, e.value) for e in self.sc.events[start:]]

    def fresh(self, n: int) -> list[tuple[bytes | None, bytes]]:
        """``n`` assets never seen before (published during the migration)."""
        out = []
        for _ in range(n):
            aid = f"new-txt-{len(self.assets)}"
            self.assets.append(aid)
            self.sc.good(upsert(self.rng, aid.replace("new-", "")) | {"asset_id": aid, "text": f"fresh {aid}"})
            out.append((self.sc.events[-1].key, self.sc.events[-1].value))
        return out


class Proc:
    """An `xmodal migrate ...` subprocess of the lane, with its own log."""

    def __init__(self, lane: Lane, args: list[str], name: str) -> None:
        self.log = lane.tmp / f"{name}.log"
        env = {**lane.env(), **ENV, "XMODAL_WEB_PORT": str(free_port()), "XMODAL_BATCH__MAX_EVENTS": "16"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([*XMODAL, "migrate", *args], env=with_root(env), stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()

    async def finished(self, timeout_s: float) -> int:
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.proc.wait), timeout_s)
        except TimeoutError:
            self.stop()
            raise AssertionError(f"`xmodal migrate` did not finish within {timeout_s}s:\n{self.tail()}") from None


@pytest.fixture
async def lane(stack: Any, unique_name: str, tmp_path: Path) -> AsyncIterator[Lane]:
    lane = Lane(unique_name, tmp_path, extra_env=ENV)
    await lane.create_topics()
    yield lane
    alias = lane.weaviate.collection
    async with Migrations(lane.weaviate) as reg:
        with contextlib.suppress(Exception):
            await reg.unalias(alias)
        for n in (1, 2):
            with contextlib.suppress(Exception):
                await reg.drop(f"{alias}_v{n}")
        await reg.forget(alias)
    await lane.drop(collection=False)


async def search_forever(base: str, traffic: Traffic, stop: asyncio.Event) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        i = 0
        while not stop.is_set():
            body = {"text": QUERIES[i % len(QUERIES)], "target": "any", "limit": 5}
            i += 1
            try:
                async with session.post(f"{base}/v1/search", json=body) as resp:
                    got = await resp.json()
                    traffic.seen.append((resp.status, got.get("model")))
            except (aiohttp.ClientError, TimeoutError) as exc:
                traffic.errors.append(repr(exc))
            await asyncio.sleep(0.01)


async def publish_forever(lane: Lane, cat: Catalogue, stop: asyncio.Event) -> None:
    async with EventPublisher(lane.kafka) as pub:
        while not stop.is_set():
            cat.published += await pub.publish_many_raw(cat.events(4) + cat.fresh(1))
            await asyncio.sleep(0.05)


async def committed(lane: Lane, group: str) -> tuple[int, int]:
    """(events the group is past, events in the topic)."""
    async with LagReader(lane.kafka.model_copy(update={"group_id": group})) as reader:
        snap = await reader.snapshot(export_metrics=False)
    return snap.consumed, snap.produced


async def wait_for(what: str, check: Any, timeout_s: float = 120) -> None:
    async def poll() -> None:
        while not await check():  # noqa: ASYNC110 (polls a process or Kafka)
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(poll(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"not within {timeout_s}s: {what}") from None


async def gateway_answers(gw: GatewayProcess, text: str) -> tuple[str, list[str]]:
    async with aiohttp.ClientSession() as session, session.post(
        f"{gw.url}/v1/search", json={"text": text, "target": "any", "limit": 5}
    ) as resp:
        body = await resp.json()
        assert resp.status == 200, body
    return body["model"], [r["asset_id"] for r in body["results"]]


async def test_migration_under_load_with_a_kill_then_cutover_and_rollback(lane: Lane, tmp_path: Path) -> None:
    new_model = str(save_tiny_random_model("clip", tmp_path / "tiny-clip", seed=5))
    alias = lane.weaviate.collection
    group = migration_group(lane.kafka.group_id, f"{alias}_v2")
    cat = Catalogue(seed=21)
    worker, gateway = WorkerProcess(lane), start_gateway(lane, {**ENV, "XMODAL_ALIAS_POLL_S": "0.2"})
    traffic, stop_search, stop_publish = Traffic(), asyncio.Event(), asyncio.Event()
    procs: list[Proc] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        worker.start()
        await worker.wait_ready()
        async with EventPublisher(lane.kafka) as pub:
            cat.published += await pub.publish_many_raw(cat.events(BACKLOG))
        await wait_ready(gateway)
        tasks = [asyncio.create_task(search_forever(gateway.url, traffic, stop_search)),
                 asyncio.create_task(publish_forever(lane, cat, stop_publish))]

        plan = Proc(lane, ["plan", "--space", "clip", "--model", new_model], "migrate-plan")
        assert await plan.finished(120) == 0, plan.tail()
        assert f"{alias}_v2" in plan.tail() and "ok" in plan.tail(), plan.tail()

        # Start, then kill -9 the migration worker while it is part-way through the replay.
        procs.append(Proc(lane, ["start", "--space", "clip", "--model", new_model], "migrate-start"))
        await wait_for("the migration makes progress", lambda: _past(lane, group, 200, procs[-1]), timeout_s=300)
        procs[-1].kill9()
        done, total = await committed(lane, group)
        assert 0 < done < total, f"the kill was not mid-way: {done} of {total}"

        procs.append(Proc(lane, ["resume"], "migrate-resume"))
        await check_progress(lane, gateway, OLD_MODEL)
        cut = Proc(lane, ["cutover", "--timeout", "300"], "migrate-cutover")
        assert await cut.finished(360) == 0, cut.tail()
        await wait_for("the gateway answers with the new model", _model_is(traffic, new_model))
        await check_read_your_writes(gateway, cat)
        # A live worker restarted with the old model after the cutover keeps writing the old side (its model's).
        worker.stop()
        worker.start()
        await worker.wait_ready()
        # Events go on after the switch: the new side (now serving) gets them from the migration worker.
        await wait_for("more events after the cutover", _grown(cat, len(cat.published) + 100))
        stop_publish.set()
        await tasks.pop()

        targets = targets_of(cat.published)
        for g in (lane.kafka.group_id, group):
            async with LagReader(lane.kafka.model_copy(update={"group_id": g})) as reader:
                ok, _ = await reader.wait_committed(targets, timeout_s=300)
            assert ok, f"group {g} did not store everything"

        await check_side(f"{alias}_v2", cat.sc, new_model, 16)
        await check_side(f"{alias}_v1", cat.sc, OLD_MODEL, 64)
        await check_new_vectors(f"{alias}_v2", cat.sc, new_model)

        back = Proc(lane, ["rollback", "--timeout", "300"], "migrate-rollback")
        assert await back.finished(360) == 0, back.tail()
        await wait_for("the gateway answers with the old model again", _model_is(traffic, OLD_MODEL))
        stop_search.set()
        await tasks.pop()
        await check_old_answers(gateway, f"{alias}_v1")

        # Cut over again and finish: the live group takes the migration group's offsets.
        again = Proc(lane, ["cutover", "--timeout", "300"], "migrate-cutover-2")
        assert await again.finished(360) == 0, again.tail()
        worker.stop()
        fin = Proc(lane, ["finish"], "migrate-finish")
        assert await fin.finished(120) == 0, fin.tail()
        async with LagReader(lane.kafka) as reader:
            live_offsets = await reader.committed()
        assert all(live_offsets.get(p, -1) >= end for p, end in targets.items()), (live_offsets, targets)
    finally:
        stop_search.set()
        stop_publish.set()
        for task in tasks:
            task.cancel()
        for p in procs:
            p.stop()
        worker.stop()
        gateway.stop()

    letters = await read_dead_letters(lane, 0, timeout_s=10)  # every event is valid: none on either side
    assert not letters, [(d["reason"], d["error"][:200]) for d in letters[:3]]
    failures = traffic.failures()
    models = {m for _, m in traffic.seen}
    assert not failures, f"{len(failures)} of {len(traffic.seen)} searches failed: {failures[:5]}"
    assert {OLD_MODEL, new_model} <= models, models
    async with Migrations(lane.weaviate) as reg:
        state = await reg.get(alias)
        assert await reg.target(alias) == f"{alias}_v2"
    assert state is not None and state.phase == "finished"
    assert [h.split()[1] for h in state.history] == ["backfilling", "cut_over", "rolled_back", "cut_over",
                                                       "finished"]


async def check_read_your_writes(gateway: GatewayProcess, cat: Catalogue) -> None:
    """After the cutover `consistent_with` waits for the side that answers (the migration group's offsets)."""
    ev = upsert(cat.rng, "txt-ryw") | {"asset_id": "ryw-1", "text": "read your writes"}
    cat.sc.good(ev)
    body = json.loads(cat.sc.events[-1].value)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{gateway.url}/v1/assets", json=body) as resp:
            where = await resp.json()
            assert resp.status == 202, where
        cat.published.append(Published("ryw-1", where["partition"], where["offset"]))
        query = {"text": "read your writes", "limit": 1, "filters": {"field": "asset_id", "eq": "ryw-1"},
                 "consistent_with": [{"partition": where["partition"], "offset": where["offset"]}]}
        async with session.post(f"{gateway.url}/v1/search", json=query) as resp:
            got = await resp.json()
    assert got["consistency"]["satisfied"] and got["model"] != OLD_MODEL, got
    assert [r["asset_id"] for r in got["results"]] == ["ryw-1"], got


async def check_progress(lane: Lane, gateway: GatewayProcess, answering: str) -> None:
    """`xmodal migrate status --json` and the gateway's /v1/status both report the migration's progress."""
    status = Proc(lane, ["status", "--json", "--interval", "0.5"], "migrate-status")
    assert await status.finished(120) == 0, status.tail()
    text = status.log.read_text()
    cli = json.loads(text[text.index("{"):])
    assert cli["phase"] == "backfilling" and 0 < cli["done"] <= cli["total"], cli
    assert cli["old"]["model"] == answering and cli["new"]["collection"].endswith("_v2"), cli
    async with aiohttp.ClientSession() as session, session.get(f"{gateway.url}/v1/status") as resp:
        section = (await resp.json())["migration"]
    assert section["phase"] == "backfilling" and section["answering_model"] == answering, section
    assert 0 < section["done"] <= section["total"] and section["serving"] == cli["old"]["collection"], section


async def _past(lane: Lane, group: str, n: int, proc: Proc) -> bool:
    assert proc.proc.poll() is None, f"the migration worker exited:\n{proc.tail()}"
    return (await committed(lane, group))[0] >= n


def _model_is(traffic: Traffic, model: str) -> Any:
    async def check() -> bool:
        return traffic.last_model() == model

    return check


def _grown(cat: Catalogue, n: int) -> Any:
    async def check() -> bool:
        return len(cat.published) >= n

    return check


async def check_side(collection: str, sc: Scenario, model: str, dim: int) -> None:
    """Exactly the expected assets, each with the newest event's metadata and ``model``'s vector."""
    async with AssetStore(WeaviateSettings(collection=collection), {}) as store:
        assert await store.count() == len(sc.state), f"{collection}: an asset is missing, extra or back from a delete"
        states = await store.states(list(sc.state), with_vectors=True)
        assert set(states) == set(sc.state), collection
        for aid in sc.state:
            assert parse_model_ids(states[aid].model_id) == {"clip": model}, (collection, aid)
            assert len(states[aid].vectors["clip"]) == dim, (collection, aid)
        for aid in [a for a in sc.state if a.startswith("new-")][:20]:
            got = await store.get(aid)
            assert got is not None and got.metadata == sc.state[aid]["metadata"], (collection, aid)
    assert any(a.startswith("new-") for a in sc.state), "no asset was published during the migration"


async def check_new_vectors(collection: str, sc: Scenario, model: str) -> None:
    """The new side's text vectors are the new model's embeddings of each asset's newest text."""
    embedder = load_embedder(ModelSettings(name=model, space="clip", device="cpu"))
    texts = {aid: ev["text"] for aid, ev in sc.state.items() if ev["modality"] == "text"}
    want = dict(zip(texts, embedder.embed_texts(list(texts.values())), strict=True))
    async with AssetStore(WeaviateSettings(collection=collection), {}) as store:
        states = await store.states(list(texts), with_vectors=True)
    for aid, vec in want.items():
        got = states[aid].vectors["clip"]
        cos = sum(a * b for a, b in zip(got, vec, strict=True)) / (
            math.sqrt(sum(a * a for a in got)) * math.sqrt(sum(b * b for b in vec)))
        assert cos > 0.999, (aid, cos)


async def check_old_answers(gateway: GatewayProcess, collection: str) -> None:
    """After the rollback the gateway answers exactly what the old model finds on the old side."""
    embedder = load_embedder(ModelSettings(name=OLD_MODEL, space="clip", device="cpu"))
    async with AssetStore(WeaviateSettings(collection=collection), {}) as store:
        for text in QUERIES:
            vector = [float(x) for x in embedder.embed_texts([text])[0]]
            direct = [h.asset_id for h in await store.search(SearchQuery(vector=vector, space="clip", limit=5))]
            model, ids = await gateway_answers(gateway, text)
            assert model == OLD_MODEL and ids == direct, (text, ids, direct)
            assert len(ids) == 5, (text, ids)
