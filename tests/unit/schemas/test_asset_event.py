"""The event contract: the pydantic model, and the checked-in JSON Schema that must not drift from it."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from schemas.__main__ import SCHEMA_FILE, render
from schemas.asset_event import AssetEvent

BASE: dict[str, Any] = {"schema_version": 1, "asset_id": "sku-123", "op": "upsert", "modality": "image",
                        "uri": "https://shop.example/img/123.jpg", "event_time": "2026-11-27T10:00:00Z"}

VALID = [
    BASE,
    {**BASE, "metadata": {"category": "shoes", "price": 89.5, "in_stock": True, "tags": ["red", "running"]}},
    {"schema_version": 1, "asset_id": "sku-123", "op": "delete", "event_time": "2026-11-27T10:00:00+01:00"},
    {**{k: v for k, v in BASE.items() if k != "uri"}, "modality": "text", "text": "red running shoes"},
    {**{k: v for k, v in BASE.items() if k != "uri"}, "data": "aGVsbG8="},
    {**BASE, "asset_id": "ünïcødé/😀 id"},
    {**BASE, "uri": "data:image/png;base64,aGVsbG8="},
    {**BASE, "caption": "red running shoes with white soles"},
    {**{k: v for k, v in BASE.items() if k != "op"}, "caption": "no op given: an upsert"},
    {**BASE, "modality": "audio", "caption": "a dog barking"},
    {**BASE, "tenant": "acme-EU_2"},
    {"schema_version": 1, "asset_id": "sku-123", "op": "delete", "tenant": "acme",
     "event_time": "2026-11-27T10:00:00Z"},
]

INVALID = {
    "unknown field": {**BASE, "colour": "red"},
    "no content": {k: v for k, v in BASE.items() if k != "uri"},
    "two contents": {**BASE, "data": "aGVsbG8="},
    "no modality": {k: v for k, v in BASE.items() if k != "modality"},
    "text for image": {**{k: v for k, v in BASE.items() if k != "uri"}, "text": "x"},
    "empty id": {**BASE, "asset_id": ""},
    "long id": {**BASE, "asset_id": "x" * 257},
    "control char": {**BASE, "asset_id": "a\nb"},
    "bad op": {**BASE, "op": "merge"},
    "bad modality": {**BASE, "modality": "hologram"},
    "naive time": {**BASE, "event_time": "2026-11-27T10:00:00"},
    "bad version": {**BASE, "schema_version": 2},
    "metadata key": {**BASE, "metadata": {"has space": 1}},
    "metadata nested": {**BASE, "metadata": {"a": {"b": 1}}},
    "metadata list of numbers": {**BASE, "metadata": {"a": [1, 2]}},
    "too many keys": {**BASE, "metadata": {f"k{i}": i for i in range(65)}},
    "caption on text": {**{k: v for k, v in BASE.items() if k != "uri"}, "modality": "text", "text": "x",
                        "caption": "y"},
    "caption on delete": {"schema_version": 1, "asset_id": "a", "op": "delete", "caption": "y",
                          "event_time": "2026-11-27T10:00:00Z"},
    "empty caption": {**BASE, "caption": ""},
    "long caption": {**BASE, "caption": "x" * (16 * 1024 + 1)},
    "empty tenant": {**BASE, "tenant": ""},
    "tenant with a space": {**BASE, "tenant": "acme corp"},
    "tenant with a slash": {**BASE, "tenant": "acme/../globex"},
    "long tenant": {**BASE, "tenant": "t" * 65},
    "tenant not a string": {**BASE, "tenant": 7},
}


def test_checked_in_json_schema_matches_the_model() -> None:
    assert SCHEMA_FILE.read_text() == render(), "run `python -m schemas` and commit the result"


@pytest.mark.parametrize("event", VALID)
def test_valid_events_pass_both_validators(event: dict[str, Any]) -> None:
    AssetEvent.model_validate(event)
    jsonschema.validate(event, json.loads(SCHEMA_FILE.read_text()))


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_events_fail_the_model(name: str) -> None:
    with pytest.raises(ValidationError):
        AssetEvent.model_validate(INVALID[name])


# The JSON Schema cannot express everything (16 KiB metadata bound); all these it does express.
SCHEMA_EXPRESSIBLE = sorted(INVALID)


@pytest.mark.parametrize("name", SCHEMA_EXPRESSIBLE)
def test_invalid_events_fail_the_json_schema_too(name: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(INVALID[name], json.loads(SCHEMA_FILE.read_text()),
                            format_checker=jsonschema.FormatChecker())


def test_metadata_values_keep_their_json_types() -> None:
    ev = AssetEvent.model_validate({**BASE, "metadata": {"n": 1, "f": 1.5, "b": True, "s": "1", "l": ["x"]}})
    assert ev.metadata == {"n": 1, "f": 1.5, "b": True, "s": "1", "l": ["x"]}
    assert [type(v) for v in ev.metadata.values()] == [int, float, bool, str, list]


def test_oversized_metadata_is_rejected() -> None:
    with pytest.raises(ValidationError, match="16384 bytes"):
        AssetEvent.model_validate({**BASE, "metadata": {"big": "x" * 17000}})


def test_a_caption_in_the_wrong_place_says_where_it_belongs() -> None:
    event = {**{k: v for k, v in BASE.items() if k != "uri"}, "modality": "text", "text": "x", "caption": "y"}
    with pytest.raises(ValidationError, match="`caption` is for image and audio upserts"):
        AssetEvent.model_validate(event)
