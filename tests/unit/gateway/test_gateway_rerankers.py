"""The model-backed rerankers: the bi-encoder over a tiny random CLIP, the cross-encoder over a tiny random
BLIP image-text matcher (both through the real from_pretrained path), their scores, the bi-encoder's cache,
and load_reranker / started_reranker for every kind."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from prometheus_client import REGISTRY

from services.config import BUILTIN_LARGE_MODEL, BUILTIN_MODEL, GatewaySettings, RerankSettings
from services.embedding.errors import ModelLoadError
from services.embedding.model import HFEmbedder
from services.embedding.rerank import CrossEncoder
from services.gateway.models import Modifier
from services.gateway.rerank import Candidate, RerankQuery
from services.gateway.rerankers import BiEncoderReranker, CrossEncoderReranker, load_reranker, started_reranker
from tests.harness.tiny_models import save_tiny_blip_itm

IMAGES = {"red": Image.new("RGB", (40, 40), "red"), "blue": Image.new("RGB", (64, 30), "blue"),
          "grey": Image.new("L", (20, 20), 128)}
TEXTS = {"t-circle": "a red circle", "t-square": "a photo of a blue square", "t-star": "a green star"}


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class CountingThumbnails:
    """The candidates' images from a dict, counting what was asked (the stage reads them from the store)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def images(self, candidates: Sequence[Candidate]) -> list[Image.Image]:
        self.asked += [c.asset_id for c in candidates]
        return [IMAGES[c.asset_id] for c in candidates]


def image_candidates(hash_: str = "h1") -> list[Candidate]:
    return [Candidate(a, hash_, "image") for a in IMAGES]


def text_candidates() -> list[Candidate]:
    return [Candidate(a, "h1", "text", t) for a, t in TEXTS.items()]


@pytest.fixture(scope="module")
def tiny_blip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_blip_itm(tmp_path_factory.mktemp("tiny-blip"))


@pytest.fixture(scope="module")
def cross_encoder(tiny_blip_dir: Path) -> CrossEncoder:
    return CrossEncoder.from_pretrained(tiny_blip_dir, device="cpu", model_id="tiny-blip")


# -- bi-encoder -----------------------------------------------------------------------------------------------


async def test_biencoder_scores_are_the_models_cosine_similarities(tiny_embedder: HFEmbedder) -> None:
    reranker = BiEncoderReranker(tiny_embedder, max_batch=2, cache_size=16)
    assert reranker.name == "biencoder:tiny-clip"
    q = tiny_embedder.embed_texts(["a red circle"])[0]
    want_images = tiny_embedder.embed_images(list(IMAGES.values())) @ q
    got = await reranker.score(RerankQuery("a red circle"), image_candidates(), CountingThumbnails())
    np.testing.assert_allclose(got, want_images, atol=1e-5)
    want_texts = tiny_embedder.embed_texts(list(TEXTS.values())) @ q
    got = await reranker.score(RerankQuery("a red circle"), text_candidates(), CountingThumbnails())
    np.testing.assert_allclose(got, want_texts, atol=1e-5)


async def test_biencoder_image_queries_and_composed_ones(tiny_embedder: HFEmbedder) -> None:
    reranker = BiEncoderReranker(tiny_embedder, max_batch=8, cache_size=16)
    query = IMAGES["red"]
    base = tiny_embedder.embed_images([query])[0]
    got = await reranker.score(RerankQuery(query), text_candidates(), CountingThumbnails())
    np.testing.assert_allclose(got, tiny_embedder.embed_texts(list(TEXTS.values())) @ base, atol=1e-5)
    green = tiny_embedder.embed_texts(["green"])[0]
    mixed = 0.7 * base + 0.3 * green
    mixed /= np.linalg.norm(mixed)
    got = await reranker.score(RerankQuery(query, Modifier(text="green", weight=0.3)), image_candidates(),
                               CountingThumbnails())
    np.testing.assert_allclose(got, tiny_embedder.embed_images(list(IMAGES.values())) @ mixed, atol=1e-5)
    assert reranker.reads(RerankQuery(query)) == {"image", "text"}


async def test_biencoder_caches_candidate_vectors_by_asset_and_content(tiny_embedder: HFEmbedder) -> None:
    reranker = BiEncoderReranker(tiny_embedder, max_batch=8, cache_size=16)
    thumbnails = CountingThumbnails()
    hits, misses = value("xmodal_rerank_cache_total", result="hit"), value("xmodal_rerank_cache_total", result="miss")
    first = await reranker.score(RerankQuery("a red circle"), image_candidates(), thumbnails)
    again = await reranker.score(RerankQuery("a blue square"), image_candidates(), thumbnails)
    assert thumbnails.asked == ["red", "blue", "grey"]  # the second query read no thumbnail: all cached
    assert value("xmodal_rerank_cache_total", result="hit") == hits + 3
    assert value("xmodal_rerank_cache_total", result="miss") == misses + 3
    assert list(first) != list(again)  # ... and was scored against its own query
    await reranker.score(RerankQuery("a red circle"), image_candidates(hash_="h2"), thumbnails)
    assert thumbnails.asked[3:] == ["red", "blue", "grey"]  # new content hashes: embedded again
    unhashed = [Candidate("red", "", "image")]
    await reranker.score(RerankQuery("x"), unhashed, thumbnails)
    await reranker.score(RerankQuery("x"), unhashed, thumbnails)
    assert thumbnails.asked[6:] == ["red", "red"]  # no content hash: never cached


async def test_biencoder_cache_is_bounded(tiny_embedder: HFEmbedder) -> None:
    reranker = BiEncoderReranker(tiny_embedder, max_batch=8, cache_size=2)
    await reranker.score(RerankQuery("x"), image_candidates(), CountingThumbnails())
    assert len(reranker.cache) == 2


# -- cross-encoder -------------------------------------------------------------------------------------------


async def test_crossencoder_scores_text_against_images(cross_encoder: CrossEncoder) -> None:
    reranker = CrossEncoderReranker(cross_encoder, max_batch=2)  # 3 candidates: two calls on the thread
    assert reranker.name == "crossencoder:tiny-blip"
    got = await reranker.score(RerankQuery("a red circle"), image_candidates(), CountingThumbnails())
    want = cross_encoder.match(list(IMAGES.values()), ["a red circle"] * 3)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert all(0.0 <= s <= 1.0 for s in got)


async def test_crossencoder_scores_an_image_against_texts(cross_encoder: CrossEncoder) -> None:
    reranker = CrossEncoderReranker(cross_encoder, max_batch=8)
    thumbnails = CountingThumbnails()
    got = await reranker.score(RerankQuery(IMAGES["blue"]), text_candidates(), thumbnails)
    want = cross_encoder.match([IMAGES["blue"]] * 3, list(TEXTS.values()))
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert thumbnails.asked == []


def test_crossencoder_reads_only_image_text_pairs(cross_encoder: CrossEncoder) -> None:
    reranker = CrossEncoderReranker(cross_encoder, max_batch=8)
    assert reranker.reads(RerankQuery("a red circle")) == {"image"}
    assert reranker.reads(RerankQuery(IMAGES["red"])) == {"text"}
    assert reranker.reads(RerankQuery(IMAGES["red"], Modifier(text="green"))) == frozenset()


# -- loading ---------------------------------------------------------------------------------------------------


def test_load_reranker_for_every_kind(tiny_blip_dir: Path) -> None:
    assert load_reranker(RerankSettings(kind="none")) is None
    bi = load_reranker(RerankSettings(kind="biencoder", model=BUILTIN_MODEL, device="cpu", cache_size=8))
    assert isinstance(bi, BiEncoderReranker)
    assert bi.name == f"biencoder:{BUILTIN_MODEL}"
    assert bi.cache.maxsize == 8
    cross = load_reranker(RerankSettings(kind="crossencoder", model=str(tiny_blip_dir), device="cpu"))
    assert isinstance(cross, CrossEncoderReranker)
    assert cross.name == f"crossencoder:{tiny_blip_dir}"
    with pytest.raises(ModelLoadError, match="no cross-encoder ships with xmodal"):
        load_reranker(RerankSettings(kind="crossencoder", model=BUILTIN_MODEL))


async def test_a_reranker_that_fails_to_load_is_logged_and_left_out(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    settings = RerankSettings(kind="biencoder", model=str(tmp_path / "missing"), device="cpu")
    with caplog.at_level(logging.ERROR, logger="services.gateway.rerankers"):
        assert await started_reranker(settings) is None
    assert "re-ranking is off" in caplog.text
    assert "set XMODAL_RERANK__MODEL (or XMODAL_RERANK__KIND=none)" in caplog.text
    assert await started_reranker(RerankSettings(kind="none")) is None


def test_settings_defaults_and_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    default = GatewaySettings().rerank
    assert (default.kind, default.model, default.top_n, default.max_top_n, default.budget_s) == (
        "biencoder", BUILTIN_LARGE_MODEL, 20, 100, 0.5)
    assert RerankSettings(kind="crossencoder").model == "Salesforce/blip-itm-base-coco"
    assert RerankSettings(kind="none").model == ""
    monkeypatch.setenv("XMODAL_RERANK__KIND", "none")
    monkeypatch.setenv("XMODAL_RERANK__TOP_N", "7")
    assert (GatewaySettings().rerank.kind, GatewaySettings().rerank.top_n) == ("none", 7)
    with pytest.raises(ValueError, match="XMODAL_RERANK__MAX_TOP_N"):
        RerankSettings(top_n=200, max_top_n=100)
