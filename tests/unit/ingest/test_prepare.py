"""Preparing a batch (services/ingest/prepare.py): dead letters, fall-backs, and one decode hand-off per round.

The model (the shipped shapes CLIP), decoding and the fetcher are the real ones; nothing is stored.
"""

from __future__ import annotations

import base64
import io
import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PIL import Image

from services.config import BatchSettings, FetchSettings, ModelSettings
from services.embedding.model import load_embedder
from services.embedding.runner import AsyncEmbedder
from services.fetch.fetcher import Fetcher
from services.ingest import prepare as prepare_module
from services.ingest.content import Decoding, prepare_all
from services.ingest.plans import Upsert
from services.ingest.prepare import Preparer
from services.ingest.records import Record
from services.store import StoredState

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def embedder() -> AsyncEmbedder:
    return AsyncEmbedder(load_embedder(ModelSettings(device="cpu")))


def png(color: tuple[int, int, int]) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def image(offset: int, asset: str, seconds: int, data: str) -> Record:
    value = {"schema_version": 1, "asset_id": asset, "op": "upsert", "modality": "image", "data": data,
             "event_time": (T0 + timedelta(seconds=seconds)).isoformat()}
    return Record(asset.encode(), json.dumps(value).encode(), "assets", 0, offset)


def text(offset: int, asset: str, words: str) -> Record:
    value = {"schema_version": 1, "asset_id": asset, "op": "upsert", "modality": "text", "text": words,
             "event_time": T0.isoformat()}
    return Record(asset.encode(), json.dumps(value).encode(), "assets", 0, offset)


async def no_states(asset_ids: list[str]) -> dict[str, StoredState]:
    return {}


def noise_png(seed: int, side: int = 384) -> str:
    """A PNG that does not compress (~440 KB): enough decoding work for a thread of its own."""
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), random.Random(seed).randbytes(side * side * 3)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


async def test_large_content_is_decoded_on_several_threads_in_order(embedder: AsyncEmbedder,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    def counted(sources: Sequence[Any], decoding: Decoding) -> Any:
        calls.append([event.asset_id for event, _ in sources])
        return prepare_all(sources, decoding)

    monkeypatch.setattr(prepare_module, "prepare_all", counted)
    monkeypatch.setattr(prepare_module, "_DECODE_THREADS", 2)
    preparer = Preparer(embedders=[embedder], fetcher=Fetcher(FetchSettings()), batch=BatchSettings(),
                        decoding=Decoding(max_pixels=1_000_000))
    records = [image(i, f"n{i}", 1, noise_png(i)) for i in range(4)] + [text(4, "t", "a red circle")]
    prep = await preparer.prepare(records, no_states)
    assert calls == [["n0", "n1"], ["n2", "n3", "t"]]  # two runs of equal work, in batch order
    assert prep.letters == []
    plans = {p.parsed.event.asset_id: p for p in prep.plans}
    assert {a: p.parsed.record.offset for a, p in plans.items()} == {"n0": 0, "n1": 1, "n2": 2, "n3": 3, "t": 4}
    assert all(isinstance(p, Upsert) and p.vectors["clip"] for p in plans.values())


async def test_every_round_decodes_the_batch_in_one_hand_off(embedder: AsyncEmbedder,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    def counted(sources: Sequence[Any], decoding: Decoding) -> Any:
        calls.append(len(sources))
        return prepare_all(sources, decoding)

    monkeypatch.setattr(prepare_module, "prepare_all", counted)
    preparer = Preparer(embedders=[embedder], fetcher=Fetcher(FetchSettings()), batch=BatchSettings(),
                        decoding=Decoding(max_pixels=1_000_000))
    garbage = base64.b64encode(b"\x89PNG\r\n\x1a\n not really").decode()
    records = [
        image(1, "a", 1, png((255, 0, 0))),
        image(2, "a", 2, garbage),  # undecodable: a falls back to offset 1
        image(3, "b", 1, "not base64!"),  # invalid_event: b keeps its (empty) state
        image(4, "c", 5, garbage),  # undecodable; then offset 5 is no longer stale and is loaded
        image(5, "c", 3, png((0, 0, 255))),
        text(6, "d", "a red circle"),
    ]
    prep = await preparer.prepare(records, no_states)
    assert sorted((letter.record.offset, letter.reason.value) for letter in prep.letters) == [
        (2, "undecodable"), (3, "invalid_event"), (4, "undecodable")]
    plans = {p.parsed.event.asset_id: p for p in prep.plans}
    assert sorted(plans) == ["a", "c", "d"]
    assert all(isinstance(p, Upsert) and p.vectors["clip"] for p in plans.values())
    assert {a: p.parsed.record.offset for a, p in plans.items()} == {"a": 1, "c": 5, "d": 6}
    assert calls == [5, 1]  # round 1: every applied upsert of the batch; round 2: c's fall-back
