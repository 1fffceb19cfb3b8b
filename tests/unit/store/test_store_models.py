"""The uuid contract and SearchQuery validation; result conversion from Weaviate property dicts."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from weaviate.collections.filters import _FilterToREST

from services.store import ASSET_NAMESPACE, InvalidQuery, SearchQuery, asset_uuid, parse_filter
from services.store.reads import hit, search_filter, stored_asset, stored_state
from services.store.schema import PropKind, SchemaView


def test_uuid_namespace_is_the_documented_constant() -> None:
    assert uuid.uuid5(uuid.NAMESPACE_URL, "https://xmodal.dev/ns/asset") == ASSET_NAMESPACE
    # fixed forever: producers in other languages compute the same ids
    assert str(asset_uuid("sku-1")) == str(uuid.uuid5(ASSET_NAMESPACE, "sku-1"))
    assert asset_uuid("sku-1") != asset_uuid("sku-2")
    assert asset_uuid("sku-1").version == 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vector": None}, "needs a query vector"),
        ({"mode": "hybrid", "text": " "}, "needs query text"),
        ({"mode": "keyword"}, "mode must be"),
        ({"target": "hologram"}, "target must be"),
        ({"alpha": 1.5}, "alpha"),
        ({"limit": 0}, "limit"),
        ({"limit": 5000}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 9995, "limit": 10}, "offset"),
    ],
)
def test_search_query_validation(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"vector": [0.1, 0.2], "space": "clip"} | kwargs
    with pytest.raises(InvalidQuery, match=message):
        SearchQuery(**args)


def test_hybrid_without_vector_is_allowed() -> None:
    q = SearchQuery(vector=None, space="clip", text="red shoes", mode="hybrid")
    assert q.alpha == 0.5


def test_search_filter_combines_filter_target_and_exclusions() -> None:
    view = SchemaView({"meta_color": PropKind.TEXT}, frozenset({"clip"}))
    q = SearchQuery(
        vector=[1.0], space="clip", target="image", exclude_ids=["sku-1"],
        filters=parse_filter({"field": "color", "eq": "red"}),
    )
    where = search_filter(q, view)
    assert where is not None
    assert _FilterToREST.convert(where) == {
        "operator": "And",
        "operands": [
            {"operator": "Equal", "path": ["meta_color"], "valueText": "red"},
            {"operator": "Equal", "path": ["modality"], "valueText": "image"},
            {"operator": "ContainsNone", "path": ["_id"], "valueTextArray": [str(asset_uuid("sku-1"))]},
        ],
    }
    assert search_filter(SearchQuery(vector=[1.0], space="clip"), view) is None


PROPS: dict[str, Any] = {
    "asset_id": "sku-1", "modality": "text", "text": "red shoes", "uri": None,
    "metadata_json": json.dumps({"price": 3, "tags": ["a"]}), "content_hash": "h", "model_id": "m",
    "event_time": datetime(2026, 1, 1, tzinfo=UTC), "indexed_at": datetime(2026, 1, 2, tzinfo=UTC),
    "source_partition": 1, "source_offset": 7, "has_thumbnail": False,
}


def test_results_round_trip_metadata_exactly() -> None:
    got = stored_asset(PROPS, ["clip", "clap"])
    assert got.metadata == {"price": 3, "tags": ["a"]}
    assert isinstance(got.metadata["price"], int)
    assert got.spaces == ("clap", "clip")
    assert hit(PROPS, 0.5).score == 0.5
    state = stored_state(PROPS, {"clip": [1, 2]})
    assert state.vectors == {"clip": [1.0, 2.0]}
    assert stored_state(PROPS, None).vectors == {}
