"""AssetStore search against the real local Weaviate: near_vector with filters, hybrid, paging, exclusions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest

from services.config import WeaviateSettings
from services.store import AssetObject, AssetStore, InvalidFilter, InvalidQuery, SearchQuery, UnknownField, parse_filter
from services.store.models import Target

pytestmark = pytest.mark.integration

Make = Callable[..., AssetObject]


@pytest.fixture
async def catalog(store: AssetStore, make_asset: Make) -> AssetStore:
    """Four images along the clip axes, two texts, with metadata of every type."""
    assets = [
        make_asset("red-shoe", vectors={"clip": [1.0, 0.0, 0.0, 0.0], "clap": [1.0, 0.0, 0.0]}, minutes=1,
                   metadata={"color": "red", "price": 10, "tags": ["shoe", "sale"], "in_stock": True,
                             "Brand": "acme", "max_temp": 30}),
        make_asset("red-hat", vectors={"clip": [0.9, 0.1, 0.0, 0.0]}, minutes=2,
                   metadata={"color": "red", "price": 25.5, "tags": ["hat"], "in_stock": False, "Brand": "zeta"}),
        make_asset("blue-shoe", vectors={"clip": [0.0, 1.0, 0.0, 0.0]}, minutes=3,
                   metadata={"color": "blue", "price": 12, "tags": ["shoe"], "in_stock": True}),
        make_asset("green-bag", vectors={"clip": [0.0, 0.0, 1.0, 0.0]}, minutes=4,
                   metadata={"color": "green", "price": 99}),
        make_asset("txt-red", modality="text", text="red running shoes for trail", minutes=5,
                   vectors={"clip": [0.7, 0.7, 0.0, 0.0]}, metadata={"color": "red"}),
        make_asset("txt-blue", modality="text", text="a blue winter hat", minutes=6,
                   vectors={"clip": [0.0, 0.0, 0.0, 1.0]}, metadata={"color": "blue"}),
    ]
    assert await store.write(assets, []) == {}
    return store


def near(
    vector: list[float], *, filters: dict[str, object] | None = None, target: Target = "any",
    limit: int = 10, offset: int = 0, exclude_ids: Sequence[str] = (),
) -> SearchQuery:
    return SearchQuery(
        vector=vector, space="clip", filters=None if filters is None else parse_filter(filters),
        target=target, limit=limit, offset=offset, exclude_ids=exclude_ids,
    )


async def ids(store: AssetStore, q: SearchQuery) -> list[str]:
    return [h.asset_id for h in await store.search(q)]


async def test_near_vector_ranks_by_cosine_similarity(catalog: AssetStore) -> None:
    hits = await catalog.search(near([1.0, 0.0, 0.0, 0.0], limit=3))
    assert [h.asset_id for h in hits] == ["red-shoe", "red-hat", "txt-red"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[1].score == pytest.approx(0.9 / (0.81 + 0.01) ** 0.5, abs=1e-4)
    assert hits[0].score >= hits[1].score >= hits[2].score
    top = hits[0]
    assert top.metadata["price"] == 10
    assert top.modality == "image"
    assert top.uri == "https://img.example/red-shoe.png"
    assert not top.has_thumbnail
    assert top.indexed_at >= top.event_time.replace(year=2000)


async def test_near_vector_with_filters_target_and_exclusions(catalog: AssetStore) -> None:
    red_images = near([1.0, 0.0, 0.0, 0.0], filters={"field": "color", "eq": "red"}, target="image")
    assert await ids(catalog, red_images) == ["red-shoe", "red-hat"]
    texts = near([1.0, 0.0, 0.0, 0.0], target="text")
    assert await ids(catalog, texts) == ["txt-red", "txt-blue"]
    more_like_this = near([1.0, 0.0, 0.0, 0.0], exclude_ids=["red-shoe"], limit=1)
    assert await ids(catalog, more_like_this) == ["red-hat"]


async def test_paging_with_offset(catalog: AssetStore) -> None:
    everything = await ids(catalog, near([1.0, 0.0, 0.0, 0.0], limit=6))
    second_page = await ids(catalog, near([1.0, 0.0, 0.0, 0.0], limit=2, offset=2))
    assert second_page == everything[2:4]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"field": "color", "in": ["blue", "green"]}, {"blue-shoe", "green-bag", "txt-blue"}),
        ({"field": "color", "ne": "red"}, {"blue-shoe", "green-bag", "txt-blue"}),
        ({"field": "price", "gte": 10, "lt": 25.5}, {"red-shoe", "blue-shoe"}),
        ({"field": "price", "gt": 25}, {"red-hat", "green-bag"}),
        ({"field": "in_stock", "eq": False}, {"red-hat"}),
        ({"field": "tags", "eq": "shoe"}, {"red-shoe", "blue-shoe"}),  # any element equal
        ({"field": "tags", "in": ["hat", "sale"]}, {"red-shoe", "red-hat"}),
        ({"field": "Brand", "eq": "acme"}, {"red-shoe"}),  # escaped property name
        ({"field": "max_temp", "lte": 30}, {"red-shoe"}),  # reserved suffix _temp, escaped
        ({"field": "modality", "eq": "text"}, {"txt-red", "txt-blue"}),
        ({"field": "asset_id", "in": ["red-hat", "nope"]}, {"red-hat"}),
        ({"field": "event_time", "gte": "2026-11-27T10:03:00Z", "lt": "2026-11-27T11:05:00+01:00"},
         {"blue-shoe", "green-bag"}),
        ({"field": "indexed_at", "gt": "2000-01-01T00:00:00Z"},
         {"red-shoe", "red-hat", "blue-shoe", "green-bag", "txt-red", "txt-blue"}),
        ({"or": [{"field": "color", "eq": "green"}, {"and": [{"field": "color", "eq": "red"},
                                                              {"field": "price", "gt": 20}]}]},
         {"green-bag", "red-hat"}),
    ],
)
async def test_filters_on_the_server(catalog: AssetStore, filters: dict[str, object], expected: set[str]) -> None:
    assert set(await ids(catalog, near([0.5, 0.5, 0.5, 0.5], filters=filters, limit=10))) == expected


async def test_bad_filters_are_rejected_before_the_search(catalog: AssetStore) -> None:
    with pytest.raises(UnknownField, match="'size'"):
        await catalog.search(near([1.0, 0.0, 0.0, 0.0], filters={"field": "size", "eq": 1}))
    with pytest.raises(InvalidFilter, match="holds numbers"):
        await catalog.search(near([1.0, 0.0, 0.0, 0.0], filters={"field": "price", "eq": "ten"}))


async def test_a_key_added_by_another_worker_is_filterable(
    catalog: AssetStore, settings: WeaviateSettings, make_asset: Make, spaces: dict[str, int]
) -> None:
    async with AssetStore(settings, spaces) as other:
        assert await other.write([make_asset("late", metadata={"season": "winter"})], []) == {}
    winter = near([1.0, 0.0, 0.0, 0.0], filters={"field": "season", "eq": "winter"})
    assert await ids(catalog, winter) == ["late"]


async def test_bad_queries(catalog: AssetStore) -> None:
    with pytest.raises(InvalidQuery, match="unknown vector space"):
        await catalog.search(SearchQuery(vector=[1.0], space="siglip"))
    with pytest.raises(InvalidQuery, match="3 dimensions, not 4"):
        await catalog.search(near([1.0, 0.0, 0.0]))


async def test_hybrid_fuses_keywords_and_vector(catalog: AssetStore) -> None:
    # The vector points at the blue hat text; the keywords at the red shoes text.
    vector = [0.0, 0.0, 0.0, 1.0]
    keywords = SearchQuery(vector=vector, space="clip", text="red running shoes", mode="hybrid", alpha=0.0,
                           target="text")
    assert await ids(catalog, keywords) == ["txt-red"]  # alpha 0: BM25 only, so only keyword matches
    semantic = SearchQuery(vector=vector, space="clip", text="red running shoes", mode="hybrid", alpha=1.0,
                           target="text")
    assert (await ids(catalog, semantic))[0] == "txt-blue"
    balanced = await catalog.search(SearchQuery(vector=vector, space="clip", text="red running shoes",
                                                mode="hybrid", alpha=0.5, target="text"))
    assert {h.asset_id for h in balanced} == {"txt-red", "txt-blue"}
    assert all(0.0 <= h.score <= 1.0 for h in balanced)


async def test_keywords_match_an_image_by_its_caption(store: AssetStore, make_asset: Make) -> None:
    shoe = replace(make_asset("img-shoe", vectors={"clip": [0.0, 1.0, 0.0, 0.0]}), caption="red running shoes")
    await store.write([shoe, make_asset("img-plain", vectors={"clip": [0.0, 1.0, 0.0, 0.0]}),
                       make_asset("txt-hat", modality="text", text="a blue winter hat")], [])
    bm25 = await store.search(SearchQuery(vector=None, space="clip", text="running shoes", mode="hybrid"))
    assert [h.asset_id for h in bm25] == ["img-shoe"]
    keywords = await store.search(SearchQuery(vector=[0.0, 0.0, 1.0, 0.0], space="clip", text="running shoes",
                                              mode="hybrid", alpha=0.0))
    assert [h.asset_id for h in keywords] == ["img-shoe"]  # alpha 0: the caption's words alone


async def test_hybrid_without_a_vector_is_bm25(catalog: AssetStore) -> None:
    hits = await catalog.search(SearchQuery(vector=None, space="clip", text="winter hat", mode="hybrid"))
    assert [h.asset_id for h in hits] == ["txt-blue"]
    assert hits[0].score > 0
    assert hits[0].text == "a blue winter hat"
