"""Filter validation (the gateway's 400s) and conversion to Weaviate filters, without a server.

The converted filters are compared in the REST form the client itself produces (_FilterToREST): that
is what Weaviate receives, and it reads like the Weaviate docs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from weaviate.collections.filters import _FilterToREST

from services.store import And, Condition, InvalidFilter, Or, UnknownField, parse_filter
from services.store.filters import MAX_CHILDREN, MAX_CONDITIONS, MAX_DEPTH, MAX_IN, to_weaviate
from services.store.schema import PropKind, SchemaView

SCHEMA = SchemaView(
    {
        "meta_color": PropKind.TEXT,
        "meta_price": PropKind.NUMBER,
        "meta_tags": PropKind.TEXT_ARRAY,
        "meta_in_stock": PropKind.BOOL,
        "metax__brand_x": PropKind.TEXT,  # metadata key "Brand"
    },
    frozenset({"clip"}),
)


def rest(data: object) -> dict[str, Any]:
    converted: dict[str, Any] = _FilterToREST.convert(to_weaviate(parse_filter(data), SCHEMA))
    return converted


# -- validation ----------------------------------------------------------------------------------------


def test_parses_a_tree_of_and_or_and_conditions() -> None:
    f = parse_filter({"and": [{"field": "color", "eq": "red"}, {"or": [{"field": "price", "lt": 5}]}]})
    assert isinstance(f, And)
    first, second = f.and_
    assert isinstance(first, Condition)
    assert first.eq == "red"
    assert isinstance(second, Or)


def test_keeps_json_types_of_values() -> None:
    f = parse_filter(json.loads('{"field": "x", "in": ["1", 1, 1.5, true]}'))
    assert isinstance(f, Condition)
    assert f.in_ == ["1", 1, 1.5, True]
    assert [type(v) for v in f.in_] == [str, int, float, bool]


def test_dumps_back_to_the_request_json() -> None:
    data = {"or": [{"field": "color", "in": ["red"]}, {"field": "price", "gte": 1, "lt": 2}]}
    assert parse_filter(data).model_dump(by_alias=True, exclude_none=True) == data


def test_range_time_bounds_become_datetimes() -> None:
    f = parse_filter({"field": "event_time", "gte": "2026-01-01T00:00:00Z", "lt": "2026-02-01T00:00+01:00"})
    assert isinstance(f, Condition)
    assert f.gte == datetime(2026, 1, 1, tzinfo=UTC)
    assert isinstance(f.lt, datetime)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"field": "color"}, "needs one of eq, ne, in"),
        ({"field": "color", "eq": "a", "ne": "b"}, "cannot be combined"),
        ({"field": "color", "eq": "a", "gt": 1}, "cannot be combined"),
        ({"field": "price", "gt": 1, "gte": 2}, "at most one lower"),
        ({"field": "price", "lt": 1, "lte": 2}, "at most one lower"),
        ({"field": "price", "gt": 1, "lt": "2026-01-01T00:00:00Z"}, "all numbers or all times"),
        ({"field": "t", "gt": "5"}, "not an RFC 3339 time"),
        ({"field": "t", "gt": "2026-01-01T00:00:00"}, "no time zone"),
        ({"field": "price", "gt": True}, "gt"),
        ({"field": "price", "gt": float("nan")}, "finite"),
        ({"field": "color", "in": []}, "at least 1"),
        ({"field": "color", "eq": {"a": 1}}, "eq"),
        ({"field": "bad-name", "eq": 1}, "field"),
        ({"field": "color", "eq": 1, "extra": 2}, "extra"),
        ({"and": []}, "at least 1"),
        ({"and": [{"field": "a", "eq": 1}], "or": [{"field": "a", "eq": 1}]}, "or"),
        ({"nope": 1}, "field"),
        ([{"field": "a", "eq": 1}], "an object with 'and', 'or' or 'field'"),
        ("color = red", "an object with 'and', 'or' or 'field'"),
    ],
)
def test_rejects_malformed_filters_with_a_message(data: object, message: str) -> None:
    with pytest.raises(InvalidFilter, match="invalid filter") as info:
        parse_filter(data)
    assert message in str(info.value)


def test_error_path_points_into_the_tree() -> None:
    with pytest.raises(InvalidFilter, match=r"and\[1\]\.or\[0\]\.gt: .*RFC 3339"):
        parse_filter({"and": [{"field": "a", "eq": 1}, {"or": [{"field": "b", "gt": "x"}]}]})


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"field": "color", "eq": "red"}
    for _ in range(depth - 1):
        node = {"and": [node]}
    return node


def test_depth_is_bounded() -> None:
    parse_filter(_nested(MAX_DEPTH))
    with pytest.raises(InvalidFilter, match="deeper than"):
        parse_filter(_nested(MAX_DEPTH + 1))


def test_size_is_bounded() -> None:
    leaf = {"field": "color", "eq": "red"}
    parse_filter({"and": [leaf] * MAX_CHILDREN})
    with pytest.raises(InvalidFilter, match="at most 32 items"):
        parse_filter({"and": [leaf] * (MAX_CHILDREN + 1)})
    too_many = {"or": [{"and": [leaf] * MAX_CHILDREN} for _ in range(MAX_CONDITIONS // MAX_CHILDREN + 1)]}
    with pytest.raises(InvalidFilter, match=f"more than {MAX_CONDITIONS} conditions"):
        parse_filter(too_many)
    with pytest.raises(InvalidFilter, match="in"):
        parse_filter({"field": "color", "in": ["x"] * (MAX_IN + 1)})


def test_models_can_be_built_in_python() -> None:
    expr = And.model_validate({"and": [Condition(field="color", eq="red"), Condition(field="price", gte=3)]})
    assert parse_filter(expr) == expr


# -- conversion ----------------------------------------------------------------------------------------


def test_text_number_bool_and_list_conditions() -> None:
    assert rest({"field": "color", "eq": "red"}) == {
        "operator": "Equal", "path": ["meta_color"], "valueText": "red",
    }
    # ints travel as floats: number properties compare with valueNumber
    assert rest({"field": "price", "ne": 3}) == {
        "operator": "NotEqual", "path": ["meta_price"], "valueNumber": 3.0,
    }
    assert rest({"field": "in_stock", "eq": True}) == {
        "operator": "Equal", "path": ["meta_in_stock"], "valueBoolean": True,
    }
    assert rest({"field": "tags", "in": ["a", "b"]}) == {
        "operator": "ContainsAny", "path": ["meta_tags"], "valueTextArray": ["a", "b"],
    }


def test_range_combines_bounds_with_and() -> None:
    assert rest({"field": "price", "gt": 1, "lte": 2.5}) == {
        "operator": "And",
        "operands": [
            {"operator": "GreaterThan", "path": ["meta_price"], "valueNumber": 1.0},
            {"operator": "LessThanEqual", "path": ["meta_price"], "valueNumber": 2.5},
        ],
    }


def test_builtin_fields_use_their_own_properties() -> None:
    assert rest({"field": "modality", "in": ["image"]})["path"] == ["modality"]
    assert rest({"field": "asset_id", "eq": "sku-1"})["path"] == ["asset_id"]
    got = rest({"field": "event_time", "eq": "2026-01-01T00:00:00Z"})
    assert got["path"] == ["event_time"]
    assert got["valueDate"].startswith("2026-01-01T00:00:00")
    assert rest({"field": "indexed_at", "gte": "2026-01-01T00:00:00Z"})["operator"] == "GreaterThanEqual"


def test_mixed_case_metadata_keys_map_to_their_escaped_property() -> None:
    assert rest({"field": "Brand", "eq": "acme"})["path"] == ["metax__brand_x"]
    with pytest.raises(UnknownField):
        rest({"field": "brand", "eq": "acme"})


def test_and_or_nest() -> None:
    inner = {"and": [{"field": "price", "lt": 1}, {"field": "tags", "eq": "x"}]}
    got = rest({"or": [{"field": "color", "eq": "red"}, inner]})
    assert got["operator"] == "Or"
    assert [o["operator"] for o in got["operands"]] == ["Equal", "And"]


def test_unknown_field_is_reported() -> None:
    with pytest.raises(UnknownField, match="'size'"):
        rest({"field": "size", "eq": 1})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"field": "color", "gt": 5}, "holds text values"),
        ({"field": "color", "eq": 5}, "holds strings; got int 5"),
        ({"field": "price", "eq": "cheap"}, "holds numbers; got str"),
        ({"field": "price", "eq": True}, "holds numbers; got bool"),
        ({"field": "in_stock", "eq": 1}, "holds booleans; got int"),
        ({"field": "tags", "in": ["a", 1]}, "holds lists of strings; got int"),
        ({"field": "event_time", "eq": "yesterday"}, "holds times"),
        ({"field": "event_time", "gt": 5}, "holds RFC 3339 times; got int"),
        ({"field": "price", "gt": "2026-01-01T00:00:00Z"}, "holds numbers; got datetime"),
        ({"field": "modality", "gte": 1}, "gt/gte/lt/lte need numbers or times"),
    ],
)
def test_type_mismatches_are_invalid_filters(data: object, message: str) -> None:
    with pytest.raises(InvalidFilter, match=message):
        rest(data)
