"""Building Weaviate objects from AssetObjects: the per-object checks that run before any network call."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from services.store import AssetObject, MetadataTypeConflict, StoreUnavailable, WriteRejected, asset_uuid
from services.store.schema import PropKind, SchemaView
from services.store.writes import check_disjoint, rejected, to_weaviate_object, wanted_properties

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SPACES = {"clip": 3, "clap": 2}
SCHEMA = SchemaView(
    {"meta_color": PropKind.TEXT, "meta_price": PropKind.NUMBER, "meta_tags": PropKind.TEXT_ARRAY,
     "meta_sale": PropKind.BOOL},
    frozenset(SPACES),
)


def asset(**changes: object) -> AssetObject:
    base = AssetObject(
        asset_id="sku-1", modality="image", text=None, uri="https://img.example/1.png",
        metadata={"color": "red", "price": 3, "tags": ["a", "b"], "sale": False},
        content_hash="h1", model_id="m1", event_time=datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
        source_partition=2, source_offset=41, vectors={"clip": [0.1, 0.2, 0.3]},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def build(obj: AssetObject) -> dict[str, object]:
    data = to_weaviate_object(obj, SCHEMA, SPACES, lambda: NOW)
    assert data.uuid == asset_uuid(obj.asset_id)
    assert isinstance(data.uuid, uuid.UUID)
    return {"properties": data.properties, "vector": data.vector}


def test_object_carries_every_property_and_the_vectors() -> None:
    got = build(asset(thumbnail=b"\x89webp"))
    props = got["properties"]
    assert isinstance(props, dict)
    assert props["asset_id"] == "sku-1"
    assert props["indexed_at"] == NOW
    assert props["has_thumbnail"] is True
    assert base64.b64decode(props["thumbnail"]) == b"\x89webp"
    assert props["source_partition"] == 2
    assert props["source_offset"] == 41
    # numbers go out as floats (Weaviate number), the exact values stay in metadata_json
    assert props["meta_price"] == 3.0
    assert isinstance(props["meta_price"], float)
    assert props["meta_tags"] == ["a", "b"]
    assert json.loads(props["metadata_json"]) == asset().metadata
    assert got["vector"] == {"clip": [0.1, 0.2, 0.3]}


def test_given_indexed_at_is_kept() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    props = build(asset(indexed_at=when, thumbnail=None))["properties"]
    assert isinstance(props, dict)
    assert props["indexed_at"] == when
    assert props["has_thumbnail"] is False
    assert props["thumbnail"] is None


def test_int_then_float_is_no_conflict() -> None:
    build(asset(metadata={"price": 3}))
    build(asset(metadata={"price": 3.5}))


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"price": "cheap"}, "metadata 'price' holds number values; got text 'cheap'"),
        ({"color": 1}, "holds text values; got number"),
        ({"sale": 1}, "holds boolean values; got number"),
        ({"price": True}, "holds number values; got boolean"),
        ({"tags": "a"}, r"holds text\[\] values; got text"),
    ],
)
def test_metadata_type_conflicts(metadata: dict[str, object], message: str) -> None:
    with pytest.raises(MetadataTypeConflict, match=message) as info:
        build(asset(metadata=metadata))
    assert info.value.asset_id == "sku-1"
    assert not info.value.retriable


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"metadata": {"bad-key": 1}}, "not an identifier"),
        ({"metadata": {"nested": {"a": 1}}}, "unsupported value"),
        ({"metadata": {"price": float("nan")}}, "not a finite number"),
        ({"metadata": {"unknown": 1}}, "did not accept property 'meta_unknown'"),
        ({"vectors": {"clip": [0.1, 0.2]}}, "clip vector has 2 dimensions, not 3"),
        ({"vectors": {"siglip": [0.1]}}, "vector space 'siglip' is not configured"),
        ({"vectors": {"clip": [0.1, float("inf"), 0.0]}}, "NaN or infinite"),
        ({"event_time": datetime(2026, 1, 1)}, "no time zone"),  # naive on purpose
    ],
)
def test_objects_that_cannot_be_stored_are_rejected(changes: dict[str, object], message: str) -> None:
    with pytest.raises(WriteRejected, match=message):
        build(asset(**changes))


def test_wanted_properties_take_the_first_type_seen() -> None:
    objs = [
        asset(metadata={"size": 1, "Brand": "x"}),
        asset(asset_id="b", metadata={"size": "L", "n": [], "bad": {}}),
    ]
    assert wanted_properties(objs) == {
        "meta_size": PropKind.NUMBER, "metax__brand_x": PropKind.TEXT, "meta_n": PropKind.TEXT_ARRAY,
    }


def test_rejected_tells_transient_from_permanent() -> None:
    assert isinstance(rejected("a", "vector dimensions do not match"), WriteRejected)
    with pytest.raises(StoreUnavailable):
        rejected("a", "shard is READONLY")


def test_one_change_per_asset_per_write() -> None:
    check_disjoint([asset(asset_id="a")], ["b"])
    with pytest.raises(ValueError, match="both upserted and deleted"):
        check_disjoint([asset(asset_id="a")], ["a"])
    with pytest.raises(ValueError, match="upserted twice"):
        check_disjoint([asset(asset_id="a"), asset(asset_id="a")], [])
