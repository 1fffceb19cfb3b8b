"""Searching an asset's parts: reciprocal rank fusion, the part a search reads, and the Searcher's use of both.

The Searcher runs over a real query encoder (a tiny random CLIP made by the project) and an in-memory store
that answers each named vector's search from a ranking table, recording what it was asked: the rankings
are the test's input, what the gateway makes of them the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from services.config import FetchSettings, GatewaySettings, WeaviateSettings
from services.embedding.model import HFEmbedder
from services.fetch.fetcher import Fetcher
from services.gateway.deps import Deps
from services.gateway.encoder import QueryEncoder
from services.gateway.errors import BadRequest
from services.gateway.fusion import FUSION_DEPTH, RRF_K, caption_share, reciprocal_rank_fusion, resolve_part
from services.gateway.models import SearchRequest
from services.gateway.query import Query, Searcher
from services.store.models import Hit, SearchQuery, StoredAsset

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
CLIP = frozenset({"image", "text"})


def hit(asset_id: str, score: float, modality: str = "image", *, captioned: bool = True) -> Hit:
    caption = f"caption of {asset_id}" if captioned else None
    return Hit(asset_id, score, modality, {}, None, None, True, T0, T0, caption=caption)


def ranking(*ids: str) -> list[Hit]:
    return [hit(a, round(0.9 - 0.1 * i, 2)) for i, a in enumerate(ids)]


# -- reciprocal rank fusion -------------------------------------------------------------------------------


def test_fusion_returns_each_asset_once_by_the_sum_of_its_reciprocal_ranks() -> None:
    fused = reciprocal_rank_fusion({"content": ranking("a", "b", "c"), "caption": ranking("c", "d", "e", "f")})
    assert [h.asset_id for h in fused.hits] == ["c", "a", "d", "b", "e", "f"]
    assert fused.hits[0].score == pytest.approx(1 / (RRF_K + 3) + 1 / (RRF_K + 1))
    # a is not in the caption ranking: it counts as ranked just after its end (5th)
    assert fused.hits[1].score == pytest.approx(1 / (RRF_K + 1) + 1 / (RRF_K + 5))
    assert fused.parts["c"] == {"content": 0.7, "caption": 0.9}
    assert fused.parts["d"] == {"caption": 0.8}
    assert fused.part == "fused"


def test_fusion_ties_keep_the_order_they_first_appeared_in() -> None:
    fused = reciprocal_rank_fusion({"content": ranking("a"), "caption": ranking("b")})
    assert [h.asset_id for h in fused.hits] == ["a", "b"]
    assert fused.hits[0].score == fused.hits[1].score


def test_an_asset_twice_in_one_ranking_counts_once_at_its_best_rank() -> None:
    fused = reciprocal_rank_fusion({"content": [hit("a", 0.9), hit("a", 0.1), hit("b", 0.5)]})
    assert [h.asset_id for h in fused.hits] == ["a", "b"]
    assert fused.hits[0].score == pytest.approx(1 / (RRF_K + 1))
    assert fused.parts["a"] == {"content": 0.9}


def test_the_caption_share_is_estimated_from_the_content_ranking() -> None:
    assert caption_share([]) == 1.0
    half = [hit("a", 0.9), hit("b", 0.8, captioned=False), hit("c", 0.7), hit("d", 0.6, captioned=False)]
    assert caption_share(half) == pytest.approx(3 / 5)
    assert caption_share([hit(f"a{i}", 0.5) for i in range(9)]) == 1.0


def test_a_lone_caption_does_not_lift_its_asset_over_every_content_hit() -> None:
    # 50 images, one with a caption that has nothing to do with the query: first of the caption ranking
    # (it is the only caption), 30th of the content ranking.
    content = [hit(f"i{n}", 0.9 - n / 100, captioned=n == 29) for n in range(50)]
    captions = [hit("i29", 0.6)]
    def textbook(rankings: dict[str, list[Hit]]) -> list[str]:  # the sum over the rankings holding an asset
        score: dict[str, float] = {}
        for hits in rankings.values():
            for rank, h in enumerate(hits, start=1):
                score[h.asset_id] = score.get(h.asset_id, 0.0) + 1 / (RRF_K + rank)
        return sorted(score, key=lambda a: -score[a])

    assert textbook({"content": content, "caption": captions})[0] == "i29"  # the one caption wins every search
    shared = reciprocal_rank_fusion({"content": content, "caption": captions},
                                    shares={"caption": caption_share(content)})
    assert [h.asset_id for h in shared.hits].index("i29") > 10
    assert [h.asset_id for h in shared.hits[:10]] == [f"i{n}" for n in range(10)]


def test_where_every_asset_has_a_caption_the_share_is_one_plain_rrf() -> None:
    content, captions = ranking("a", "b", "c"), ranking("c", "b", "a")
    plain = reciprocal_rank_fusion({"content": content, "caption": captions})
    shared = reciprocal_rank_fusion({"content": content, "caption": captions},
                                    shares={"caption": caption_share(content)})
    assert [(h.asset_id, h.score) for h in shared.hits] == [(h.asset_id, h.score) for h in plain.hits]


# -- which part ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("asked", "modalities", "target", "part"), [
    (None, CLIP, "image", "fused"),
    (None, CLIP, "any", "fused"),
    (None, CLIP, "text", "content"),  # a text asset is its own content: no caption to search
    (None, frozenset({"text"}), "text", "content"),
    (None, frozenset({"audio", "text"}), "audio", "fused"),
    ("caption", CLIP, "image", "caption"),
    ("content", CLIP, "text", "content"),
])
def test_the_part_a_search_reads(asked: Any, modalities: frozenset[str], target: str, part: str) -> None:
    assert resolve_part(asked, space="s", modalities=modalities, target=target) == part


@pytest.mark.parametrize(("asked", "modalities", "target", "why"), [
    ("caption", CLIP, "text", "text assets have no captions"),
    ("fused", frozenset({"text"}), "any", "embeds no captions"),
])
def test_a_caption_asked_where_there_can_be_none_is_a_400(
    asked: Any, modalities: frozenset[str], target: str, why: str
) -> None:
    with pytest.raises(BadRequest, match=why):
        resolve_part(asked, space="s", modalities=modalities, target=target)


# -- the Searcher over a ranking table ----------------------------------------------------------------------


@dataclass
class RankingStore:
    """Answers a search of named vector ``space`` with ``rankings[space]`` (offset and limit applied)."""

    rankings: dict[str, list[Hit]]
    asked: list[SearchQuery] = field(default_factory=list)

    async def search(self, q: SearchQuery) -> list[Hit]:
        self.asked.append(q)
        return self.rankings.get(q.space, [])[q.offset : q.offset + q.limit]

    async def get(self, asset_id: str) -> StoredAsset | None:
        return None

    async def thumbnail(self, asset_id: str) -> bytes | None:
        return None

    async def vector_of(self, asset_id: str, space: str) -> list[float] | None:
        return None

    async def ready(self) -> bool:
        return True


@pytest.fixture
async def searcher_for(tiny_embedder: HFEmbedder) -> Any:
    settings = GatewaySettings(weaviate=WeaviateSettings(host="127.0.0.1", http_port=9, grpc_port=9))
    encoder = QueryEncoder.from_settings(settings, tiny_embedder)

    def make(store: RankingStore) -> Searcher:
        deps = Deps(encoders={encoder.space: encoder}, store=store, fetcher=Fetcher(FetchSettings()))
        return Searcher(settings, deps)

    yield make
    await encoder.close()


async def search(searcher: Searcher, **body: Any) -> dict[str, Any]:
    response = await searcher.search(Query.of(SearchRequest.model_validate({"text": "a red circle", **body})))
    return response.model_dump(exclude_none=True)


def ids(response: dict[str, Any]) -> list[str]:
    return [r["asset_id"] for r in response["results"]]


async def test_by_default_an_image_search_fuses_content_and_caption(searcher_for: Any) -> None:
    store = RankingStore({"clip": ranking("a", "b", "c"), "clip_caption": ranking("c", "x", "y", "z")})
    response = await search(searcher_for(store), target="image", limit=10)
    assert response["part"] == "fused"
    assert ids(response) == ["c", "a", "x", "b", "y", "z"]  # each asset once
    c = response["results"][0]
    assert c["parts"] == {"content": 0.7, "caption": 0.9} and c["caption"] == "caption of c"
    assert c["score"] == pytest.approx(1 / (RRF_K + 1) + 1 / (RRF_K + 3))
    assert sorted(q.space for q in store.asked) == ["clip", "clip_caption"]


async def test_fused_pages_are_slices_of_one_fused_ranking(searcher_for: Any) -> None:
    content = [hit(f"c{i}", 0.9 - i / 100) for i in range(60)]
    captions = [hit(f"c{59 - i}", 0.9 - i / 100) for i in range(0, 60, 3)]
    store = RankingStore({"clip": content, "clip_caption": captions})
    whole = ids(await search(searcher_for(store), limit=50))
    assert len(whole) == len(set(whole)) == 50
    pages = [ids(await search(searcher_for(store), limit=10, offset=o)) for o in range(0, 50, 10)]
    assert [a for page in pages for a in page] == whole  # no asset on two pages, none skipped
    assert {(q.offset, q.limit) for q in store.asked} == {(0, FUSION_DEPTH)}


async def test_without_any_caption_the_default_search_is_the_content_search_as_it_is(searcher_for: Any) -> None:
    store = RankingStore({"clip": ranking("a", "b", "c")})
    response = await search(searcher_for(store), target="image", limit=2, offset=1)
    assert response["part"] == "content"
    assert [(r["asset_id"], r["score"]) for r in response["results"]] == [("b", 0.8), ("c", 0.7)]
    assert all("parts" not in r for r in response["results"])


async def test_fused_asked_for_stays_fused_without_captions(searcher_for: Any) -> None:
    response = await search(searcher_for(RankingStore({"clip": ranking("a")})), part="fused")
    assert response["part"] == "fused" and response["results"][0]["parts"] == {"content": 0.9}


async def test_one_part_searches_that_parts_vector_only(searcher_for: Any) -> None:
    store = RankingStore({"clip": ranking("a", "b"), "clip_caption": ranking("b", "x")})
    caption = await search(searcher_for(store), part="caption", target="image")
    assert caption["part"] == "caption" and ids(caption) == ["b", "x"]
    assert caption["results"][0]["score"] == 0.9  # the caption's own score
    content = await search(searcher_for(store), part="content", target="image")
    assert content["part"] == "content" and ids(content) == ["a", "b"]
    assert [q.space for q in store.asked] == ["clip_caption", "clip"]


async def test_a_text_target_searches_the_content_only(searcher_for: Any) -> None:
    store = RankingStore({"clip": [hit("t", 0.9, "text")], "clip_caption": ranking("x")})
    response = await search(searcher_for(store), target="text")
    assert response["part"] == "content" and ids(response) == ["t"]
    assert [q.space for q in store.asked] == ["clip"]
    with pytest.raises(BadRequest, match="text assets have no captions"):
        await search(searcher_for(store), target="text", part="caption")
