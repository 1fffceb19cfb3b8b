"""Request models: what a search may contain, validated the way the handlers validate (strict JSON)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from services.gateway.models import ImageData, ImageUri, SearchRequest, SearchResponse, UploadOptions, dump
from services.gateway.query import Query, compose, result_of, thumbnail_url
from services.store.filters import And, Condition
from services.store.models import Hit


def parse(body: dict[str, Any]) -> SearchRequest:
    return SearchRequest.model_validate_json(json.dumps(body), strict=True)


def test_defaults_of_a_text_search() -> None:
    req = parse({"text": "a red circle"})
    assert (req.query_kind(), req.target, req.limit, req.offset, req.mode, req.alpha, req.rerank) == (
        "text", "any", 10, 0, "vector", 0.5, False)


@pytest.mark.parametrize(("body", "kind"), [
    ({"text": "x"}, "text"),
    ({"image": {"data": "aGVsbG8="}}, "image"),
    ({"image": {"uri": "https://example.com/a.png"}}, "image"),
    ({"asset_id": "sku-1"}, "asset_id"),
])
def test_each_query_kind(body: dict[str, Any], kind: str) -> None:
    assert parse(body).query_kind() == kind


@pytest.mark.parametrize("body", [
    {},
    {"text": "x", "asset_id": "a"},
    {"text": "x", "image": {"data": "aGk="}},
    {"image": {"data": "aGk=", "uri": "https://example.com/a.png"}},
    {"image": {}},
    {"text": ""},
    {"text": "   "},
    {"text": "x" * 1001},
    {"text": "x", "limit": 0},
    {"text": "x", "limit": 101},
    {"text": "x", "limit": "10"},  # strict JSON: a string is not a number
    {"text": "x", "offset": -1},
    {"text": "x", "offset": 9901},
    {"text": "x", "target": "hologram"},
    {"text": "x", "mode": "bm25"},
    {"text": "x", "alpha": 1.5},
    {"text": "x", "rerank": "yes"},
    {"text": "x", "modifier": {"text": "green", "weight": 1.1}},
    {"text": "x", "modifier": {"weight": 0.5}},
    {"text": "x", "filters": {"field": "color"}},
    {"text": "x", "filters": {"field": "price", "gt": 1, "eq": 2}},
    {"text": "x", "filters": {"and": []}},
    {"text": "x", "consistent_with": [{"partition": -1, "offset": 0}]},
    {"text": "x", "consistency_timeout_s": 0},
    {"text": "x", "unknown": 1},
])
def test_invalid_requests_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse(body)


def test_filters_and_options_are_parsed() -> None:
    req = parse({
        "text": "shoes", "target": "image", "limit": 100, "offset": 9900, "mode": "hybrid", "alpha": 0,
        "modifier": {"text": "in blue", "weight": 1},
        "filters": {"and": [{"field": "color", "in": ["red", "blue"]},
                            {"field": "price", "gte": 10, "lt": 20.5},
                            {"field": "event_time", "gt": "2026-01-01T00:00:00Z"}]},
        "consistent_with": [{"partition": 0, "offset": 5}, {"partition": 3, "offset": 7}],
        "consistency_timeout_s": 2,
    })
    assert isinstance(req.filters, And)
    first = req.filters.and_[0]
    assert isinstance(first, Condition)
    assert first.in_ == ["red", "blue"]
    assert req.modifier is not None
    assert req.modifier.weight == 1.0
    assert req.consistent_with is not None
    assert [(r.partition, r.offset) for r in req.consistent_with] == [(0, 5), (3, 7)]


def test_image_inputs_are_one_of_two_shapes() -> None:
    assert isinstance(parse({"image": {"data": "aGk="}}).image, ImageData)
    assert isinstance(parse({"image": {"uri": "data:,hi"}}).image, ImageUri)


def test_query_of_keeps_options_and_the_input() -> None:
    q = Query.of(parse({"asset_id": "a/1", "limit": 3, "modifier": {"text": "green"}}))
    assert (q.asset_id, q.text, q.image_data, q.options.limit) == ("a/1", None, None, 3)
    assert q.hybrid_text() == "green"


def test_upload_options_take_form_strings() -> None:
    opts = UploadOptions.model_validate({"limit": "5", "target": "image", "rerank": "false"})
    assert (opts.limit, opts.target, opts.rerank) == (5, "image", False)


def test_compose_moves_towards_the_text_and_stays_unit_length() -> None:
    mixed = compose([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], 0.25)
    assert mixed[0] > mixed[1] > 0
    assert sum(x * x for x in mixed) == pytest.approx(1.0, abs=1e-6)
    assert compose([1.0, 0.0], [0.0, 1.0], 1.0) == pytest.approx([0.0, 1.0])


def test_results_carry_a_preview_for_images_and_the_text_for_texts() -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    image = Hit("img/1", 0.9, "image", {"color": "red"}, None, None, True, now, now)
    text = Hit("t-1", 0.5, "text", {}, "a red circle", None, False, now, now)
    assert result_of(image).preview == "/v1/assets/img%2F1/thumbnail" == thumbnail_url("img/1")
    assert result_of(text).text == "a red circle"
    body = dump(SearchResponse(results=[result_of(image), result_of(text)], model="m", space="clip", took_ms=1.0))
    assert "text" not in body["results"][0]
    assert "preview" not in body["results"][1]
    assert "consistency" not in body


async def test_both_cancels_the_other_on_failure() -> None:
    import asyncio

    from services.gateway.query import both

    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow() -> int:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1

    async def failing() -> int:
        await started.wait()
        raise ValueError("bad image")

    with pytest.raises(ValueError, match="bad image"):
        await both(failing(), slow())
    await asyncio.sleep(0)
    assert cancelled.is_set()
    assert await both(asyncio.sleep(0, "a"), asyncio.sleep(0, 2)) == ("a", 2)
