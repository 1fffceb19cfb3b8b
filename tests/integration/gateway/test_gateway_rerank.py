"""Re-ranking through the real app against the real Weaviate holding the shapes sample.

The module's gateway re-ranks with a real bi-encoder (the shipped small model, loaded from the settings by
started_deps; it reads the thumbnails Weaviate stores). A failing reranker and one past its time budget
answer 200 in retrieval order, marked degraded; a gateway without a reranker answers 400.
"""

from __future__ import annotations

import base64
import io
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from services.config import BUILTIN_MODEL, RerankSettings
from services.embedding.shapes import world
from services.gateway.rerank import Candidate, CandidateModality, RerankQuery, Thumbnails
from services.gateway.rerankers import BiEncoderReranker
from services.gateway.routes import DEPS
from services.gateway.server import create_app

pytestmark = pytest.mark.integration

Body = dict[str, Any]
QUERY = {"text": "a photo of a blue square", "target": "image"}


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def search(client: Any, body: Body, status: int = 200) -> Body:
    resp = await client.post("/v1/search", json=body)
    result: Body = await resp.json()
    assert resp.status == status, result
    return result


def ids(result: Body) -> list[str]:
    return [r["asset_id"] for r in result["results"]]


def png_b64(color: str, shape: str) -> str:
    buf = io.BytesIO()
    world.draw_image(random.Random(777), color, shape).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


class Failing:
    """A reranker whose model fails (as a GPU out of memory would)."""

    name = "failing"

    def reads(self, query: RerankQuery) -> frozenset[CandidateModality]:
        return frozenset({"image", "text"})

    async def score(self, query: RerankQuery, candidates: Sequence[Candidate], thumbnails: Thumbnails
                    ) -> Sequence[float]:
        await thumbnails.images([c for c in candidates if c.modality == "image"])  # real reads first
        raise RuntimeError("CUDA error: out of memory")


async def test_rerank_reorders_the_same_top_n(gateway: Any) -> None:
    plain = await search(gateway.client, {**QUERY, "limit": 10})
    reranked = await search(gateway.client, {**QUERY, "limit": 10, "rerank": True, "rerank_top_n": 10})
    assert set(ids(reranked)) == set(ids(plain))
    block = reranked["rerank"]
    assert (block["name"], block["candidates"], block["degraded"]) == (f"biencoder:{BUILTIN_MODEL}", 10, False)
    assert block["took_ms"] > 0
    assert "reason" not in block  # nothing left out
    scores = [r["rerank_score"] for r in reranked["results"]]
    assert scores == sorted(scores, reverse=True)  # the order is the reranker's
    assert all(-1.0 <= s <= 1.0 for s in scores)  # cosine similarities
    retrieval = {r["asset_id"]: r["score"] for r in plain["results"]}
    assert {r["asset_id"]: r["score"] for r in reranked["results"]} == retrieval  # `score` stays the retrieval's
    assert "rerank" not in plain and all("rerank_score" not in r for r in plain["results"])
    assert reranked["space"] == "clip" and reranked["model"] == BUILTIN_MODEL


async def test_pages_are_cut_out_of_the_reranked_window(gateway: Any) -> None:
    whole = await search(gateway.client, {**QUERY, "limit": 10, "rerank": True, "rerank_top_n": 10})
    second = await search(gateway.client, {**QUERY, "offset": 5, "limit": 5, "rerank": True, "rerank_top_n": 10})
    assert ids(second) == ids(whole)[5:]
    assert second["rerank"]["candidates"] == 10
    # the window grows to the page's end: a page past rerank_top_n is still re-ranked
    grown = await search(gateway.client, {**QUERY, "offset": 4, "limit": 4, "rerank": True, "rerank_top_n": 2})
    assert grown["rerank"]["candidates"] == 8


async def test_a_repeated_query_reads_its_candidates_from_the_cache(gateway: Any) -> None:
    body = {"text": "a photo of a red star", "target": "image", "limit": 6, "rerank": True}
    await search(gateway.client, body)
    hits = value("xmodal_rerank_cache_total", result="hit")
    misses = value("xmodal_rerank_cache_total", result="miss")
    again = await search(gateway.client, body)
    assert again["rerank"]["candidates"] == 20  # the default top_n
    assert value("xmodal_rerank_cache_total", result="hit") == hits + 20
    assert value("xmodal_rerank_cache_total", result="miss") == misses


async def test_every_query_kind_is_reranked(gateway: Any) -> None:
    image = await search(gateway.client, {"image": {"data": png_b64("red", "circle")}, "target": "image",
                                          "limit": 4, "rerank": True})
    assert image["rerank"]["degraded"] is False and image["rerank"]["candidates"] == 20
    asset_id = next(a for a in gateway.indexed.metadata if a.startswith("shape-green-circle-"))
    more = await search(gateway.client, {"asset_id": asset_id, "modifier": {"text": "red"}, "target": "image",
                                         "limit": 4, "rerank": True})
    assert more["rerank"]["degraded"] is False
    assert asset_id not in ids(more)
    by_text_asset = await search(gateway.client, {"asset_id": "text-blue-square", "limit": 3, "rerank": True})
    assert by_text_asset["rerank"]["degraded"] is False
    mixed = await search(gateway.client, {"text": "a photo of a blue square", "limit": 10, "rerank": True,
                                          "mode": "hybrid"})
    assert {r["modality"] for r in mixed["results"]} >= {"text"}
    assert mixed["rerank"]["candidates"] == 20  # texts by their text, images by their thumbnail
    resp = await gateway.client.get("/v1/search", params={"q": "a photo of a blue square", "target": "image",
                                                          "limit": "3", "rerank": "true", "rerank_top_n": "5"})
    body = await resp.json()
    assert resp.status == 200, body
    assert body["rerank"]["candidates"] == 5


async def test_a_failing_reranker_answers_in_retrieval_order(gateway: Any) -> None:
    plain = await search(gateway.client, {**QUERY, "limit": 5})
    before = value("xmodal_rerank_degraded_total", reason="error")
    settings = gateway.indexed.settings
    app = create_app(settings, replace(gateway.client.app[DEPS], reranker=Failing()))
    async with TestClient(TestServer(app)) as client:
        result = await search(client, {**QUERY, "limit": 5, "rerank": True})
    assert ids(result) == ids(plain)
    assert [r["score"] for r in result["results"]] == [r["score"] for r in plain["results"]]
    assert result["rerank"] == {"name": "failing", "took_ms": result["rerank"]["took_ms"], "candidates": 0,
                                "degraded": True, "reason": "error: RuntimeError: CUDA error: out of memory"}
    assert value("xmodal_rerank_degraded_total", reason="error") == before + 1


async def test_a_reranker_past_its_budget_answers_in_retrieval_order(gateway: Any,
                                                                    shapes_embedder: Any) -> None:
    plain = await search(gateway.client, {**QUERY, "limit": 5})
    before = value("xmodal_rerank_degraded_total", reason="timeout")
    settings = gateway.indexed.settings.model_copy(update={
        "rerank": RerankSettings(kind="biencoder", model=BUILTIN_MODEL, budget_s=0.0001)})
    # a fresh reranker (empty cache): its first await, a thumbnail read or a forward pass, outlasts 0.1 ms
    slow = BiEncoderReranker(shapes_embedder, max_batch=32, cache_size=64)
    app = create_app(settings, replace(gateway.client.app[DEPS], reranker=slow))
    async with TestClient(TestServer(app)) as client:
        result = await search(client, {**QUERY, "limit": 5, "rerank": True})
        ready = await client.get("/readyz")
        assert ready.status == 200, await ready.json()
    assert ids(result) == ids(plain)
    assert result["rerank"]["degraded"] is True
    assert result["rerank"]["reason"] == "timeout after 0.0001 s"
    assert value("xmodal_rerank_degraded_total", reason="timeout") == before + 1


async def test_without_a_reranker_rerank_is_a_400(gateway: Any) -> None:
    settings = gateway.indexed.settings.model_copy(update={"rerank": RerankSettings(kind="none")})
    app = create_app(settings, replace(gateway.client.app[DEPS], reranker=None))
    async with TestClient(TestServer(app)) as client:
        error = (await search(client, {**QUERY, "rerank": True}, 400))["error"]
        assert error["code"] == "rerank_unavailable"
        assert "XMODAL_RERANK__KIND" in error["message"]
        assert len(ids(await search(client, {**QUERY, "limit": 3}))) == 3  # search itself goes on


async def test_readyz_with_a_reranker(gateway: Any) -> None:
    resp = await gateway.client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["spaces"] == {"clip": BUILTIN_MODEL}
    assert isinstance(gateway.client.app[DEPS].reranker, BiEncoderReranker)  # started_deps loaded it
