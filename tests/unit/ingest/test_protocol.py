"""The batch protocol (services/ingest/protocol.py), driven with an in-memory store and a fake clock.

The model (the shipped shapes CLIP), content decoding and the fetcher are the real ones; the store and the
dead-letter topic are in-memory (tests/unit/ingest/memory.py); the backoff's sleep is recorded, not slept.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.config import BatchSettings, FetchSettings, ModelSettings
from services.embedding.model import load_embedder
from services.embedding.runner import AsyncEmbedder
from services.fetch.fetcher import Fetcher
from services.ingest.content import Decoding
from services.ingest.plans import Outcome, Poisoned, Upsert
from services.ingest.protocol import Backoff, BatchProtocol, Flow, PendingWrites
from services.ingest.records import Record
from services.ingest.write import Writer
from services.monitoring import metrics
from services.store.errors import StoreUnavailable
from tests.unit.ingest.memory import MemoryLetters, MemoryStore, WatchedPreparer

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
BACKOFF = Backoff(0.5, 4.0)


@pytest.fixture(scope="module")
def embedder() -> AsyncEmbedder:
    return AsyncEmbedder(load_embedder(ModelSettings(device="cpu")))


class RecordingFlow(Flow):
    """Records when the protocol would pause and resume the consumer's partitions."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def on_pause(self) -> None:
        self.events.append(f"pause {self.reason}")

    def on_resume(self) -> None:
        self.events.append("resume")


class Harness:
    """A BatchProtocol over a MemoryStore, recording acks (with what was stored when each came) and sleeps."""

    def __init__(self, embedder: AsyncEmbedder, *, hold_writes: bool = False) -> None:
        self.store = MemoryStore(hold_writes=hold_writes)
        self.flow = RecordingFlow()
        self.letters = MemoryLetters()
        self.preparer = WatchedPreparer(embedders=[embedder], fetcher=Fetcher(FetchSettings()),
                                        batch=BatchSettings(), decoding=Decoding(max_pixels=40_000_000))
        self.acks: list[list[int]] = []
        self.stored_at_ack: list[set[str]] = []
        self.sleeps: list[tuple[float, int]] = []  # (delay, batches acked so far)
        self.protocol: BatchProtocol[int] = BatchProtocol(
            preparer=self.preparer,
            writer=Writer(store=self.store, dead_letters=self.letters),
            store=self.store, ack=self._ack, backoff=BACKOFF, sleep=self._sleep, flow=self.flow,
        )

    async def _ack(self, offsets: Any) -> None:
        self.acks.append(list(offsets))
        self.stored_at_ack.append(set(self.store.objects))

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append((seconds, len(self.acks)))
        await asyncio.sleep(0)

    async def submit(self, records: list[Record]) -> None:
        await self.protocol.submit(records, [r.offset for r in records])

    async def process(self, records: list[Record]) -> None:
        await self.protocol.process(records, [r.offset for r in records])

    async def overlapped(self, batches: list[list[Record]]) -> None:
        """Each batch is prepared while the previous one's write is held, then that write goes ahead."""
        for i, batch in enumerate(batches):
            prepared = len(self.preparer.prepared)
            submitting = asyncio.create_task(self.submit(batch))
            await self.preparer.wait_for(prepared + 1)
            if i:
                self.store.release()  # the previous batch's write, pending until now
            await submitting
        self.store.release(len(batches))  # the last write, and any batch that wrote nothing
        await self.protocol.drain()


def record(offset: int, value: Any, *, asset: str = "a") -> Record:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return Record(asset.encode(), raw, "assets", 0, offset, timestamp_ms=1_700_000_000_000)


def upsert(asset: str, seconds: int, text: str, **metadata: Any) -> dict[str, Any]:
    return {"schema_version": 1, "asset_id": asset, "op": "upsert", "modality": "text", "text": text,
            "metadata": metadata, "event_time": (T0 + timedelta(seconds=seconds)).isoformat()}


def delete(asset: str, seconds: int) -> dict[str, Any]:
    return {"schema_version": 1, "asset_id": asset, "op": "delete",
            "event_time": (T0 + timedelta(seconds=seconds)).isoformat()}


async def test_refused_write_makes_the_batch_prepared_meanwhile_prepare_again(embedder: AsyncEmbedder) -> None:
    # Batch 1 writes asset a at t=10, and the store refuses it. Batch 2, prepared while that write was
    # pending, read a's state through the overlay (t=10) and found its t=5 upsert stale; that decision rested
    # on a write that did not happen, so batch 2 is prepared again and its upsert applies.
    h = Harness(embedder, hold_writes=True)
    await h.overlapped([[record(0, upsert("a", 10, "a red circle", refuse=True))],
                        [record(1, upsert("a", 5, "a blue star"))]])
    first_try_of_batch_2 = h.preparer.prepared[1]
    assert first_try_of_batch_2.report.outcomes[Outcome.stale] == 1 and not first_try_of_batch_2.plans
    assert len(h.preparer.prepared) == 3  # batch 1, batch 2, batch 2 again
    assert h.store.objects["a"].source_offset == 1
    assert h.letters.reasons() == [(0, "invalid_event")]
    assert h.acks == [[0], [1]]


async def test_without_a_refusal_the_batch_prepared_meanwhile_is_not_prepared_again(
    embedder: AsyncEmbedder,
) -> None:
    h = Harness(embedder, hold_writes=True)
    await h.overlapped([[record(0, upsert("a", 10, "a red circle"))], [record(1, upsert("a", 5, "a blue star"))]])
    assert len(h.preparer.prepared) == 2
    assert h.preparer.prepared[1].report.outcomes[Outcome.stale] == 1
    assert h.store.objects["a"].source_offset == 0  # the older event stayed ignored
    assert h.letters.sent == []


async def test_a_batch_prepared_during_a_pending_write_reads_that_write(embedder: AsyncEmbedder) -> None:
    # Batch 2 changes only a's metadata. Its read happens while batch 1's write of a is still pending, yet it
    # sees a's new content and vector (through the overlay) and reuses the vector: the model does not run.
    h = Harness(embedder, hold_writes=True)
    await h.overlapped([[record(0, upsert("a", 1, "a red circle", price=1))],
                        [record(1, upsert("a", 2, "a red circle", price=2))]])
    assert h.store.reads == [["a"]]  # batch 2's state of a came from the overlay, not from the store
    second = h.preparer.prepared[1]
    assert second.report.embedded == {}
    [plan] = second.plans
    assert isinstance(plan, Upsert) and plan.reused
    assert h.store.objects["a"].metadata == {"price": 2}
    assert h.store.objects["a"].vectors == h.preparer.prepared[0].plans[0].vectors  # type: ignore[union-attr]
    assert len(h.protocol.pending) == 0  # every commit forgot what it expected


async def test_transient_store_failure_acks_nothing_and_retries_the_same_batch(embedder: AsyncEmbedder) -> None:
    h = Harness(embedder)
    h.store.fail_writes = 2
    await h.process([record(0, upsert("a", 1, "a red circle")), record(1, upsert("b", 1, "a blue star"), asset="b")])
    assert [acked for _, acked in h.sleeps] == [0, 0]  # backed off twice, nothing acked meanwhile
    for (slept, _), cap in zip(h.sleeps, (0.5, 1.0), strict=True):
        assert cap / 2 <= slept <= cap  # capped exponential, with jitter
    assert h.store.writes == 3
    assert len(h.preparer.prepared) == 1  # the write was retried, not the preparation
    assert h.acks == [[0, 1]]
    assert h.stored_at_ack == [{"a", "b"}]  # acked only once both were stored
    # consumption paused once for the whole outage (not once per retry) and resumed once it was over
    assert h.flow.events == ["pause store_unreachable: Weaviate is down (a test said so)", "resume"]
    assert not h.flow.paused


def pause_causes() -> set[str]:
    """Which of this test's two causes xmodal_worker_pause_cause shows as 1 (the registry is the process's)."""
    shown = {s.labels["cause"] for s in metrics.PAUSE_CAUSE.collect()[0].samples if s.value > 0}
    return shown & {"store_unreachable", "store_timeout"}


async def test_flow_stays_paused_while_any_step_still_fails() -> None:
    flow = RecordingFlow()
    commit, prepare = object(), object()
    flow.failed(commit, StoreUnavailable("write: down", cause="store_unreachable"))
    flow.failed(prepare, StoreUnavailable("read: timed out", cause="store_timeout"))
    assert pause_causes() == {"store_timeout"}  # the newest failure's
    flow.succeeded(prepare)  # the next batch's read worked, but the commit still fails
    assert flow.paused and flow.events == ["pause store_unreachable: write: down"]
    assert pause_causes() == {"store_unreachable"}
    flow.succeeded(commit)
    assert not flow.paused and flow.events[-1] == "resume"
    assert pause_causes() == set()
    flow.succeeded(commit)  # once resumed, a success changes nothing
    assert flow.events.count("resume") == 1


async def test_close_abandons_a_commit_that_cannot_finish_without_acking(embedder: AsyncEmbedder) -> None:
    h = Harness(embedder)
    h.store.fail_writes = 10**6  # Weaviate never comes back

    async def slow_sleep(seconds: float) -> None:
        await asyncio.sleep(0.01)

    h.protocol.sleep = slow_sleep
    await h.submit([record(0, upsert("a", 1, "a red circle"))])
    assert await h.protocol.close(grace_s=0.2) is False
    assert h.acks == [] and h.store.objects == {}
    assert not h.flow.paused  # the abandoned step let go of the pause


async def test_dead_letter_is_confirmed_once_across_retries(embedder: AsyncEmbedder) -> None:
    h = Harness(embedder)
    h.letters.fail_once = {2}
    batch = [record(0, b"{not json"), record(1, {"asset_id": "x"}, asset="x"),
             record(2, upsert("a", 1, "a red circle"), asset="b"),  # key != asset_id
             record(3, upsert("c", 1, "a green square"), asset="c")]
    await h.process(batch)
    assert h.letters.reasons() == [(0, "invalid_json"), (1, "invalid_event"), (2, "invalid_event")]
    assert h.letters.attempts == 4  # three letters, one of them twice
    assert len(h.sleeps) == 1 and 0.25 <= h.sleeps[0][0] <= 0.5
    assert h.store.writes == 1  # the confirmed write was not repeated
    assert h.acks == [[0, 1, 2, 3]]


async def test_an_input_that_crashes_the_model_becomes_a_poisoned_plan(embedder: AsyncEmbedder) -> None:
    class Fragile(AsyncEmbedder):
        async def embed_texts(self, texts: Any) -> Any:
            if "crash" in texts:
                raise RuntimeError("the model crashed")
            return await super().embed_texts(texts)

    h = Harness(Fragile(embedder.embedder))
    await h.process([record(0, upsert("a", 1, "a red circle")), record(1, upsert("b", 1, "crash"), asset="b")])
    plans = {type(p).__name__: p for p in h.preparer.prepared[0].plans}
    assert set(plans) == {"Upsert", "Poisoned"}
    assert isinstance(plans["Poisoned"], Poisoned) and "the model crashed" in plans["Poisoned"].error
    assert "b" not in h.preparer.prepared[0].expected_states()  # its stored state stays
    assert [(d.source.offset, d.reason.value, d.attempts) for d in h.letters.sent] == [(1, "poison", 2)]
    assert set(h.store.objects) == {"a"}


def random_events(rng: random.Random, n: int) -> Iterator[Record]:
    """Upserts (new text, same text with new metadata, refused), deletes, stale and invalid events on 4 assets."""
    for offset in range(n):
        asset = rng.choice("abcd")
        t = offset + rng.randint(-8, 0)  # mostly newer than what came before; sometimes stale
        roll = rng.random()
        if roll < 0.45:
            value: Any = upsert(asset, t, rng.choice(["a red circle", "a blue star", "a green square"]),
                                n=rng.randint(0, 3))
        elif roll < 0.6:
            value = upsert(asset, t, "a yellow triangle", refuse=True)
        elif roll < 0.85:
            value = delete(asset, t)
        elif roll < 0.95:
            value = b"\xff not json"
        else:
            value = {"schema_version": 1, "asset_id": asset, "op": "upsert"}
        yield record(offset, value, asset=asset)


def cut(records: list[Record], rng: random.Random) -> list[list[Record]]:
    batches, i = [], 0
    while i < len(records):
        size = rng.randint(1, 8)
        batches.append(records[i : i + size])
        i += size
    return batches


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
async def test_overlapped_batches_end_exactly_like_batches_in_turn(embedder: AsyncEmbedder, seed: int) -> None:
    rng = random.Random(seed)
    batches = cut(list(random_events(rng, 60)), rng)
    in_turn = Harness(embedder)
    for batch in batches:
        await in_turn.process(batch)
    overlapped = Harness(embedder, hold_writes=True)
    await overlapped.overlapped(batches)
    assert overlapped.store.log == in_turn.store.log  # the same writes, in the same order
    assert overlapped.store.summary() == in_turn.store.summary()
    assert overlapped.letters.reasons() == in_turn.letters.reasons()
    assert overlapped.acks == in_turn.acks == [[r.offset for r in b] for b in batches]
    assert in_turn.store.objects or in_turn.letters.sent  # the scenario did something


def test_pending_writes_forget_only_what_the_discarded_batch_expected() -> None:
    pending = PendingWrites()
    first: Any = type("P", (), {"assets": frozenset({"a", "b"})})()
    second: Any = type("P", (), {"assets": frozenset({"b"})})()
    pending.expect(first, {"a": None, "b": None})
    pending.expect(second, {"b": None})  # the later batch's expectation of b wins
    pending.discard(first)
    assert pending.snapshot(["a", "b"]) == {"b": None}
