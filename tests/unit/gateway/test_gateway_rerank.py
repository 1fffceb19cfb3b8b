"""RerankStage, the orchestration of re-ranking: window, ordering, page cut, content, degrading, metrics.

The rerankers here are real implementations written for the test (scores from the content they read, one
that raises, one that is slower than the budget); the content store is an in-memory one holding real WebP
thumbnails. The model-backed rerankers are tested in test_gateway_rerankers.py.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from PIL import Image
from prometheus_client import REGISTRY

from services.config import RerankSettings
from services.gateway.models import Modifier
from services.gateway.rerank import (
    AssetQuery,
    Candidate,
    CandidateModality,
    NoContent,
    Reranked,
    RerankQuery,
    RerankStage,
    Thumbnails,
    describe,
)
from services.store.models import Hit, StoredAsset

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
RED, BLUE = (220, 20, 20), (20, 20, 220)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def webp(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), color).save(buf, "WEBP", lossless=True)
    return buf.getvalue()


def text_hit(asset_id: str, text: str, score: float = 0.5) -> Hit:
    return Hit(asset_id, score, "text", {}, text, None, False, T0, T0, content_hash=f"h-{asset_id}")


def image_hit(asset_id: str, score: float = 0.5, *, thumbnail: bool = True) -> Hit:
    return Hit(asset_id, score, "image", {}, None, None, thumbnail, T0, T0, content_hash=f"h-{asset_id}")


def audio_hit(asset_id: str, score: float = 0.5) -> Hit:
    return Hit(asset_id, score, "audio", {}, None, None, True, T0, T0, content_hash=f"h-{asset_id}")


@dataclass
class MemoryStore:
    """Stored assets and thumbnails in dicts: what RerankStage reads of the store."""

    thumbnails: dict[str, bytes] = field(default_factory=dict)
    assets: dict[str, StoredAsset] = field(default_factory=dict)
    reads: int = 0

    async def get(self, asset_id: str, *, tenant: str | None = None) -> StoredAsset | None:
        return self.assets.get(asset_id)

    async def thumbnail(self, asset_id: str, *, tenant: str | None = None) -> bytes | None:
        self.reads += 1
        return self.thumbnails.get(asset_id)


def stored(asset_id: str, modality: str, text: str | None = None) -> StoredAsset:
    return StoredAsset(asset_id, modality, text, None, {}, "h", "m", T0, T0, 0, 0, modality != "text", ("clip",))


class WordOverlap:
    """Scores a text candidate by the words it shares with a text query, an image one by how red it is (or,
    for an image query, how close its colour is); records what it was asked."""

    name = "overlap"

    def __init__(self, reads: frozenset[CandidateModality] = frozenset({"text", "image"})) -> None:
        self._reads = reads
        self.calls: list[list[str]] = []

    def reads(self, query: RerankQuery) -> frozenset[CandidateModality]:
        return self._reads

    async def score(self, query: RerankQuery, candidates: Sequence[Candidate], thumbnails: Thumbnails
                    ) -> Sequence[float]:
        self.calls.append([c.asset_id for c in candidates])
        images = iter(await thumbnails.images([c for c in candidates if c.modality == "image"]))
        out = []
        for c in candidates:
            if c.modality == "text":
                words = set(query.content.split()) if isinstance(query.content, str) else set()
                out.append(float(len(words & set((c.text or "").split()))))
            else:
                r, _, b = next(images).getpixel((0, 0))  # type: ignore[misc]
                out.append(float(r - b) / 255)
        return out


class Failing(WordOverlap):
    name = "failing"

    async def score(self, query: RerankQuery, candidates: Sequence[Candidate], thumbnails: Thumbnails
                    ) -> Sequence[float]:
        raise RuntimeError("CUDA error: out of memory <torch.Tensor object at 0x7f00deadbeef>")


class Slow(WordOverlap):
    name = "slow"

    async def score(self, query: RerankQuery, candidates: Sequence[Candidate], thumbnails: Thumbnails
                    ) -> Sequence[float]:
        await asyncio.sleep(30)
        return [0.0] * len(candidates)


def stage(reranker: WordOverlap, store: MemoryStore | None = None, **settings: float) -> RerankStage:
    return RerankStage(reranker, store or MemoryStore(), RerankSettings(kind="biencoder", **settings),
                       max_pixels=1_000_000)


async def run(st: RerankStage, query: str | Image.Image | AssetQuery | NoContent, hits: list[Hit], *,
              window: int | None = None, offset: int = 0, limit: int = 10,
              modifier: Modifier | None = None) -> Reranked:
    window = window if window is not None else st.window(None, offset, limit)
    return await st.run(query, modifier, hits, window=window, offset=offset, limit=limit)


def ids(reranked: Reranked) -> list[str]:
    return [h.asset_id for h in reranked.page]


TEXTS = [text_hit("t0", "a blue square"), text_hit("t1", "a red star"), text_hit("t2", "a red circle"),
         text_hit("t3", "a green circle")]


async def test_orders_by_score_and_reports_it() -> None:
    reranker = WordOverlap()
    out = await run(stage(reranker), "a red circle", TEXTS)
    assert ids(out) == ["t2", "t1", "t3", "t0"]  # 3 words shared, 2 each (in retrieval order), 1
    assert dict(out.scores) == {"t0": 1.0, "t1": 2.0, "t2": 3.0, "t3": 2.0}
    info = out.info
    assert (info.name, info.candidates, info.degraded, info.reason) == ("overlap", 4, False, None)
    assert info.took_ms >= 0
    assert [h.score for h in out.page] == [0.5] * 4  # the retrieval scores stay as they were


def test_the_window() -> None:
    st = stage(WordOverlap(), top_n=20, max_top_n=50)
    assert st.window(None, 0, 10) == 20  # the default
    assert st.window(5, 0, 3) == 5  # the request's
    assert st.window(5, 10, 10) == 20  # grown to the page's end
    assert st.window(None, 40, 30) == 50  # capped: the rest of the page stays in retrieval order


async def test_the_page_is_cut_after_the_window() -> None:
    words = [f"w{i}" for i in range(8)]
    hits = [text_hit(f"t{i}", " ".join(words[:i])) for i in range(8)]  # more shared words further down
    out = await run(stage(WordOverlap()), " ".join(words), hits, window=5, offset=3, limit=4)
    # the window (t0..t4) is reversed by the scores, t5.. follow in retrieval order; the page is [3:7]
    assert ids(out) == ["t1", "t0", "t5", "t6"]
    assert set(out.scores) == {"t1", "t0"}  # only the page's re-scored results carry a score
    assert out.info.candidates == 5


async def test_images_are_read_from_their_thumbnails_and_others_keep_their_places() -> None:
    store = MemoryStore(thumbnails={"blue": webp(BLUE), "red": webp(RED)})
    hits = [image_hit("blue"), audio_hit("clip"), image_hit("no-thumb", thumbnail=False), image_hit("red")]
    reranker = WordOverlap()
    out = await run(stage(reranker, store), "red", hits)
    assert ids(out) == ["red", "clip", "no-thumb", "blue"]  # the two images swap; the others stay put
    assert reranker.calls == [["blue", "red"]]
    assert (out.info.candidates, out.info.degraded) == (2, False)
    assert out.info.reason is not None and out.info.reason.startswith("2 of 4 candidates keep their")


async def test_only_the_modalities_the_reranker_reads_are_scored() -> None:
    store = MemoryStore(thumbnails={"i0": webp(BLUE)})
    reranker = WordOverlap(reads=frozenset({"text"}))
    out = await run(stage(reranker, store), "a red circle", [image_hit("i0"), *TEXTS[:2]])
    assert reranker.calls == [["t0", "t1"]]
    assert store.reads == 0
    assert ids(out) == ["i0", "t1", "t0"]


async def test_queries_by_a_stored_asset_read_its_content() -> None:
    store = MemoryStore(thumbnails={"q-img": webp(RED), "i0": webp(BLUE), "i1": webp(RED)},
                        assets={"q-text": stored("q-text", "text", "a red circle"), "q-img": stored("q-img", "image"),
                                "q-audio": stored("q-audio", "audio")})
    by_text = await run(stage(WordOverlap(), store), AssetQuery("q-text"), TEXTS)
    assert ids(by_text)[0] == "t2"
    by_image = await run(stage(WordOverlap(), store), AssetQuery("q-img"), [image_hit("i0"), image_hit("i1")])
    assert ids(by_image) == ["i1", "i0"]
    by_audio = await run(stage(WordOverlap(), store), AssetQuery("q-audio"), TEXTS)
    assert by_audio.info.degraded
    assert by_audio.info.reason == "a query by audio asset 'q-audio' cannot be re-ranked by overlap"


async def test_what_cannot_be_reranked_comes_back_in_retrieval_order() -> None:
    before = value("xmodal_rerank_degraded_total", reason="unsupported")
    audio = await run(stage(WordOverlap()), NoContent("an audio query"), TEXTS)
    assert ids(audio) == ["t0", "t1", "t2", "t3"]
    assert audio.info.model_dump() == {"name": "overlap", "took_ms": audio.info.took_ms, "candidates": 0,
                                       "degraded": True, "reason": "an audio query cannot be re-ranked by overlap"}
    nothing_readable = await run(stage(WordOverlap()), "red", [audio_hit("a0"), audio_hit("a1")])
    assert nothing_readable.info.degraded
    assert "none of the 2 candidates" in (nothing_readable.info.reason or "")
    refuses = await run(stage(WordOverlap(reads=frozenset())), "red", TEXTS, modifier=Modifier(text="green"))
    assert refuses.info.reason == "overlap does not re-rank a text query composed with a modifier"
    assert value("xmodal_rerank_degraded_total", reason="unsupported") == before + 3


async def test_no_hits_is_not_degraded() -> None:
    out = await run(stage(WordOverlap()), "red", [])
    assert (out.page, out.info.candidates, out.info.degraded, out.info.reason) == ([], 0, False, None)


async def test_a_failing_reranker_degrades_to_retrieval_order() -> None:
    before = value("xmodal_rerank_degraded_total", reason="error")
    out = await run(stage(Failing()), "a red circle", TEXTS, limit=3)
    assert ids(out) == ["t0", "t1", "t2"]
    assert out.scores == {}
    assert out.info.degraded
    assert out.info.reason == "error: RuntimeError: CUDA error: out of memory"  # no object reprs for clients
    assert value("xmodal_rerank_degraded_total", reason="error") == before + 1


async def test_a_vanished_thumbnail_degrades_with_the_asset_named() -> None:
    out = await run(stage(WordOverlap(), MemoryStore()), "red", [image_hit("gone")])
    assert out.info.degraded
    assert out.info.reason == "error: RerankError: asset 'gone' has no thumbnail any more (deleted or replaced " \
                              "meanwhile)"


async def test_a_reranker_past_its_budget_degrades_to_retrieval_order() -> None:
    before_timeouts = value("xmodal_rerank_degraded_total", reason="timeout")
    before_count = value("xmodal_rerank_seconds_count")
    out = await run(stage(Slow(), budget_s=0.05), "a red circle", TEXTS)
    assert ids(out) == ["t0", "t1", "t2", "t3"]
    assert (out.info.degraded, out.info.reason, out.info.candidates) == (True, "timeout after 0.05 s", 0)
    assert value("xmodal_rerank_degraded_total", reason="timeout") == before_timeouts + 1
    assert value("xmodal_rerank_seconds_count") == before_count + 1


async def test_a_timeout_inside_the_reranker_is_an_error_not_the_budget() -> None:
    class InnerTimeout(WordOverlap):
        name = "inner"

        async def score(self, query: RerankQuery, candidates: Sequence[Candidate], thumbnails: Thumbnails
                        ) -> Sequence[float]:
            raise TimeoutError("store call timed out")

    out = await run(stage(InnerTimeout()), "red", TEXTS)
    assert out.info.reason == "error: TimeoutError: store call timed out"


async def test_a_wrong_number_of_scores_is_an_error() -> None:
    class Short(WordOverlap):
        name = "short"

        async def score(self, query: RerankQuery, candidates: Sequence[Candidate], thumbnails: Thumbnails
                        ) -> Sequence[float]:
            return [1.0]

    out = await run(stage(Short()), "red", TEXTS)
    assert out.info.reason == "error: RerankError: short gave 1 scores for 4 candidates"


async def test_cancellation_is_not_swallowed() -> None:
    task = asyncio.ensure_future(run(stage(Slow(), budget_s=30), "red", TEXTS))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_describe_is_short_and_client_safe() -> None:
    assert describe(ValueError("x" * 500)).endswith("...")
    assert len(describe(ValueError("x" * 500))) == 200
    assert describe(KeyError()) == "KeyError"
