"""Parsing records into events (or reasons) and collapsing a batch per asset."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from schemas.asset_event import Modality
from schemas.dead_letter import Reason
from services.errors import TransientError
from services.ingest.collapse import candidates_by_asset, resolve
from services.ingest.embed import embed_isolating_poison
from services.ingest.parse import Rejected, parse
from services.ingest.records import AssetKey, Parsed, Record

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
SPACES = {Modality.text: ["clip"], Modality.image: ["clip"]}  # no space takes audio


def parse_(record: Record) -> Parsed:
    return parse(record, SPACES)


def rec(value: Any, *, key: str | None = "a", offset: int = 0) -> Record:
    raw = value if isinstance(value, bytes) or value is None else json.dumps(value).encode()
    return Record(key.encode() if key is not None else None, raw, "assets", 0, offset)


def event(op: str = "upsert", asset_id: str = "a", seconds: int = 0, **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"schema_version": 1, "asset_id": asset_id, "op": op,
                          "event_time": (T0 + timedelta(seconds=seconds)).isoformat()}
    if op == "upsert":
        ev.update(modality="text", text=f"text at {seconds}")
    ev.update(extra)
    return ev


@pytest.mark.parametrize(
    ("value", "key", "reason"),
    [
        (b"{not json", "a", Reason.invalid_json),
        (b"\xff\xfe", "a", Reason.invalid_json),
        (None, "a", Reason.invalid_event),
        ({"asset_id": "a"}, "a", Reason.invalid_event),
        (event(), "b", Reason.invalid_event),
        (event(), None, Reason.invalid_event),
        (event(modality="audio", text=None, uri="https://x.example/a.wav"), "a", Reason.unsupported_modality),
    ],
)
def test_bad_records_are_rejected_with_a_reason(value: Any, key: str | None, reason: Reason) -> None:
    with pytest.raises(Rejected) as info:
        parse_(rec(value, key=key))
    assert info.value.reason is reason
    assert info.value.error


def test_delete_of_audio_asset_is_fine() -> None:
    assert parse_(rec(event("delete"))).event.op.value == "delete"


def test_batches_resolve_like_events_applied_one_by_one() -> None:
    batch = [
        parse_(rec(event("upsert", seconds=5), offset=1)),
        parse_(rec(event("upsert", seconds=3), offset=2)),   # older than the upsert it meets: stale
        parse_(rec(event("delete", seconds=6), offset=3)),
        parse_(rec(event("upsert", seconds=1), offset=4)),   # nothing stored after the delete: applies
        parse_(rec(event("upsert", asset_id="b"), key="b", offset=5)),
    ]
    groups = candidates_by_asset(reversed(batch))
    assert [p.record.offset for p in groups[AssetKey(None, "a")]] == [1, 2, 3, 4]
    res = resolve(groups[AssetKey(None, "a")], stored_time=None)
    assert res.final is not None and res.final.record.offset == 4
    assert [p.record.offset for p in res.superseded] == [1, 3]
    assert [p.record.offset for p in res.stale] == [2]


def test_upsert_then_delete_ends_deleted_and_delete_then_upsert_ends_present() -> None:
    up, down = parse_(rec(event("upsert"), offset=1)), parse_(rec(event("delete"), offset=2))
    final = resolve([up, down], stored_time=None).final
    assert final is not None and final.event.op.value == "delete"
    up2 = parse_(rec(event("upsert"), offset=3))
    final = resolve([down, up2], stored_time=T0).final
    assert final is not None and final.event.op.value == "upsert"


def test_events_older_than_the_stored_state_are_ignored() -> None:
    old = parse_(rec(event("upsert", seconds=1), offset=1))
    res = resolve([old], stored_time=T0 + timedelta(seconds=2))
    assert res.final is None and res.stale == [old]


def test_an_unusable_final_upsert_falls_back_to_the_previous_one() -> None:
    a, b = parse_(rec(event("upsert", seconds=1), offset=1)), parse_(rec(event("upsert", seconds=2), offset=2))
    assert resolve([a, b], stored_time=None).final is b
    res = resolve([a, b], stored_time=None, skip={2})
    assert res.final is a and res.superseded == []


async def test_poison_input_is_isolated_and_the_rest_embedded() -> None:
    calls: list[list[str]] = []

    async def run(items: list[str]) -> np.ndarray:
        calls.append(items)
        if "boom" in items:
            raise RuntimeError("kernel crashed")
        return np.array([[float(len(s)), 1.0] for s in items], dtype=np.float32)

    vectors, poisoned = await embed_isolating_poison(run, ["a", "bb", "boom", "dddd", "eeeee"])
    assert list(poisoned) == [2]
    assert "kernel crashed" in poisoned[2]
    assert vectors[0] == [1.0, 1.0] and vectors[4] == [5.0, 1.0] and vectors[2] is None


async def test_retriable_errors_are_not_taken_for_poison() -> None:
    async def run(items: list[str]) -> np.ndarray:
        raise TransientError("device busy")

    with pytest.raises(TransientError):
        await embed_isolating_poison(run, ["a", "b"])
