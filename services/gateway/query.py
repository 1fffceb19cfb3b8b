"""A validated search request -> query vector -> store search (-> re-ranking) -> response body.

Image inputs go through the same guarded Fetcher and decoder as the worker's; query vectors come from the
same model code (through :class:`~services.gateway.encoder.QueryEncoder`). With ``rerank: true`` the store
search fetches the re-ranking window from the top and :class:`~services.gateway.rerank.RerankStage` reorders
it and cuts the page out; the decoded query image is the reranker's query too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, TypeVar
from urllib.parse import quote

import numpy as np
import numpy.typing as npt
from PIL import Image

from services.config import GatewaySettings, caption_vector, segments_vector
from services.fetch.images import decode_image
from services.gateway.deps import Deps, SearchStore
from services.gateway.encoder import QueryEncoder
from services.gateway.errors import BadRequest, DependencyDown, NotFound
from services.gateway.fusion import Ranked, caption_share, fusion_depth, reciprocal_rank_fusion, resolve_part
from services.gateway.models import (
    AudioData,
    AudioUri,
    Consistency,
    ImageData,
    ImageUri,
    SearchOptions,
    SearchRequest,
    SearchResponse,
    SearchResult,
    SegmentResult,
)
from services.gateway.rerank import AssetQuery, NoContent, QueryInput, Reranked, RerankStage
from services.gateway.spaces import candidates, check_directions, unanswerable
from services.monitoring import metrics
from services.store.models import Hit, SearchQuery

_TINY = 1e-6
MAX_SEGMENTS_SHOWN = 5
_INLINE_THREAD_CHARS = 256 * 1024  # larger base64 images are decoded off the event loop
T = TypeVar("T")
U = TypeVar("U")


QueryModality = Literal["text", "image", "audio", "asset"]


@dataclass(frozen=True)
class Query:
    """One search: the validated options plus exactly one query input."""

    options: SearchOptions
    text: str | None = None
    image_data: str | None = None  # base64, decoded under the fetcher's size limit
    image_bytes: bytes | None = None  # an upload
    image_uri: str | None = None
    audio_data: str | None = None
    audio_bytes: bytes | None = None
    audio_uri: str | None = None
    asset_id: str | None = None
    image: Image.Image | None = None  # the decoded image of an image query (Searcher: embedding and reranker)
    tenant: str | None = None  # whose assets are searched: the API key's tenant (gateway/tenancy.py)

    @classmethod
    def of(cls, req: SearchRequest, *, tenant: str | None = None) -> Query:
        # Already validated as part of the request: copy the fields without validating twice.
        options = SearchOptions.model_construct(**{k: getattr(req, k) for k in SearchOptions.model_fields})
        return cls(
            options, text=req.text, asset_id=req.asset_id,
            image_data=req.image.data if isinstance(req.image, ImageData) else None,
            image_uri=req.image.uri if isinstance(req.image, ImageUri) else None,
            audio_data=req.audio.data if isinstance(req.audio, AudioData) else None,
            audio_uri=req.audio.uri if isinstance(req.audio, AudioUri) else None, tenant=tenant,
        )

    @property
    def modality(self) -> QueryModality:
        if self.text is not None:
            return "text"
        if self.asset_id is not None:
            return "asset"
        if self.audio_data is not None or self.audio_bytes is not None or self.audio_uri is not None:
            return "audio"
        return "image"

    def hybrid_text(self) -> str | None:
        """The words BM25 matches in hybrid mode: the text query, else the modifier's text."""
        if self.text is not None:
            return self.text
        return self.options.modifier.text if self.options.modifier is not None else None


async def both(first: Awaitable[T], second: Awaitable[U]) -> tuple[T, U]:
    """Await two things concurrently; when one fails, the other is cancelled and the error raised as is
    (a TaskGroup would wrap it in an ExceptionGroup, which the error mapping does not know)."""
    a, b = asyncio.ensure_future(first), asyncio.ensure_future(second)
    try:
        return await a, await b
    finally:
        for task in (a, b):
            if not task.done():
                task.cancel()
            elif not task.cancelled():
                task.exception()  # mark a second failure as seen, so asyncio does not log it


def thumbnail_url(asset_id: str, modality: str = "image") -> str:
    """Where an asset's preview is served: /thumbnail for an image (a PNG, JPEG or WebP), /preview for audio (an
    OGG clip)."""
    kind = "preview" if modality == "audio" else "thumbnail"
    return f"/v1/assets/{quote(asset_id, safe='')}/{kind}"


def compose(query: Sequence[float], text: Sequence[float], weight: float) -> list[float]:
    """normalize((1 - w) * q + w * t): the composed query of "this, but <text>".

    >>> compose([1.0, 0.0], [0.0, 1.0], 0.5)
    [0.7071067690849304, 0.7071067690849304]
    """
    mixed = (1.0 - weight) * np.asarray(query, dtype=np.float32) + weight * np.asarray(text, dtype=np.float32)
    norm = float(np.linalg.norm(mixed))
    if norm < _TINY:
        raise BadRequest("the modifier cancels the query out; use another modifier weight")
    return [float(x) for x in mixed / norm]


@dataclass(frozen=True)
class Side:
    """What one search reads: a store and the encoders of the models that made its vectors."""

    store: SearchStore
    encoders: list[QueryEncoder]
    group: str | None = None  # the consumer group that writes it (None: the workers'); consistent_with waits on it


class Searcher:
    """Runs searches for the handlers, each in the embedding space that can answer it (gateway/spaces.py)."""

    def __init__(self, settings: GatewaySettings, deps: Deps) -> None:
        self.settings = settings
        self.deps = deps
        self.encoders = list(deps.encoders.values())
        check_directions(self.encoders, settings.directions)
        self.rerank = None if deps.reranker is None else RerankStage(
            deps.reranker, deps.store, settings.rerank, max_pixels=settings.fetch.max_pixels)

    def _side(self) -> Side:
        """The collection and models this search uses from start to end (gateway/live.py)."""
        gen = None if self.deps.live is None else self.deps.live.current
        if gen is None or gen.store is None:
            return Side(self.deps.store, self.encoders)
        return Side(gen.store, list(gen.encoders.values()), gen.group)

    def _spaces(self, q: Query, side: Side) -> list[QueryEncoder]:
        """The spaces that may answer ``q``, the one to use first (gateway/spaces.py)."""
        return candidates(side.encoders, q.modality, q.options.target, space=q.options.space,
                          directions=self.settings.directions)

    async def search(self, q: Query) -> SearchResponse:
        started = time.perf_counter()
        opts = q.options
        side = self._side()
        self._check(q, side)
        consistency = await self._wait_consistent(opts, side.group)
        q = await self._decoded(q)
        encoder, vector, exclude = await self._vector(q, side)
        ranked = await self._hits(q, encoder, vector, exclude, side.store)
        reranked = await self._reranked(q, ranked.hits) if opts.rerank else None
        page, scores = (reranked.page, reranked.scores) if reranked else (ranked.hits, {})
        took_ms = (time.perf_counter() - started) * 1000
        results = [result_of(h, scores.get(h.asset_id), ranked.parts.get(h.asset_id)) for h in page]
        return SearchResponse(results=results, model=encoder.model_id, space=encoder.space, part=ranked.part,
                              took_ms=round(took_ms, 2), consistency=consistency,
                              rerank=reranked.info if reranked else None)

    def _check(self, q: Query, side: Side) -> None:
        self._check_rerank(q.options)
        if q.options.mode == "hybrid" and q.hybrid_text() is None:
            raise BadRequest("hybrid mode matches words: give a `text` query or a `modifier` text",
                             details=[{"path": "body.mode", "message": "hybrid needs query text"}])
        if not self._spaces(q, side):
            raise unanswerable(side.encoders, q.modality, q.options.target, q.options.space)
        if q.options.modifier is not None and not any(
            "text" in e.modalities for e in self._spaces(q, side)
        ):
            raise BadRequest("a modifier is text, and no space answering this query embeds text")

    async def _vector(self, q: Query, side: Side) -> tuple[QueryEncoder, list[float], list[str]]:
        """The space, the query vector (composed with the modifier when there is one) and the ids to leave out."""
        spaces = self._spaces(q, side)
        modifier = q.options.modifier
        if modifier is not None:
            spaces = [e for e in spaces if "text" in e.modalities]
        if q.asset_id is not None:
            enc, vector = await self._asset_vector(side.store, q.asset_id, spaces, q.tenant)
            if modifier is not None:
                vector = compose(vector, await enc.encode_text(modifier.text), modifier.weight)
            return enc, vector, [q.asset_id]
        enc = spaces[0]
        if modifier is None:
            return enc, await self._embed(q, enc), []
        # Both embeddings at once: they may share the batcher's next forward pass.
        base, text = await both(self._embed(q, enc), enc.encode_text(modifier.text))
        return enc, compose(base, text, modifier.weight), []

    async def _asset_vector(self, store: SearchStore, asset_id: str, spaces: list[QueryEncoder], tenant: str | None
                            ) -> tuple[QueryEncoder, list[float]]:
        for enc in spaces:
            vector = await store.vector_of(asset_id, enc.space, tenant=tenant)
            if vector is not None:
                return enc, vector
        names = ", ".join(e.space for e in spaces)
        raise NotFound(f"asset {asset_id!r} is not in the store (or has no vector in {names})")

    async def _embed(self, q: Query, enc: QueryEncoder) -> list[float]:
        if q.text is not None:
            return await enc.encode_text(q.text)
        if q.modality == "audio":
            raw = await self._bytes(q.audio_data, q.audio_bytes, q.audio_uri)
            return await enc.encode_audio(await asyncio.to_thread(self._decode_audio, raw, enc))
        assert q.image is not None  # an image query, decoded by search()
        return await enc.encode_image(q.image)

    async def _decoded(self, q: Query) -> Query:
        """An image query with its image fetched and decoded (once: the embedding and the reranker read it)."""
        if q.modality != "image":
            return q
        raw = await self._bytes(q.image_data, q.image_bytes, q.image_uri)
        image = await asyncio.to_thread(decode_image, raw, max_pixels=self.settings.fetch.max_pixels)
        return replace(q, image=image)

    def _decode_audio(self, raw: bytes, enc: QueryEncoder) -> npt.NDArray[np.float32]:
        from services.fetch.audio import decode_audio

        assert enc.sampling_rate is not None  # a space that embeds audio has a rate
        fetch = self.settings.fetch
        clip = decode_audio(raw, sampling_rate=enc.sampling_rate, max_seconds=fetch.max_audio_seconds,
                            max_bytes=fetch.max_audio_bytes)
        return clip.samples

    async def _bytes(self, data: str | None, upload: bytes | None, uri: str | None) -> bytes:
        fetcher = self.deps.fetcher
        if data is not None:
            if len(data) > _INLINE_THREAD_CHARS:
                return await asyncio.to_thread(fetcher.decode_base64, data)
            return fetcher.decode_base64(data)
        if upload is not None:
            return upload
        assert uri is not None
        return await fetcher.fetch(uri)

    async def _hits(self, q: Query, encoder: QueryEncoder, vector: list[float], exclude: list[str],
                    store: SearchStore) -> Ranked:
        """The hits of the part the search reads (services/gateway/fusion.py): the content vector's, the
        caption vector's, or both fused by rank. A default (fused) search over assets none of which has a
        caption is the content search as it is, scores included, and says so (``part: content``)."""
        opts = q.options
        part = resolve_part(opts.part, space=encoder.space, modalities=encoder.modalities, target=opts.target)
        limit, offset = opts.limit, opts.offset
        if opts.rerank and self.rerank is not None:
            # The reranker reorders the first `window` hits, so they are fetched from the top; the page is
            # cut out after it (gateway/rerank.py).
            window = self.rerank.window(opts.rerank_top_n, opts.offset, opts.limit)
            limit, offset = max(window, opts.offset + opts.limit), 0
        text = q.hybrid_text() if opts.mode == "hybrid" else None
        if opts.target == "video":
            return await self._videos(q, encoder, vector, exclude, limit=limit, offset=offset)
        query = SearchQuery(
            vector=vector, space=encoder.space, text=text, mode=opts.mode, alpha=opts.alpha,
            target=opts.target, filters=opts.filters, limit=limit,
            offset=offset, exclude_ids=exclude, tenant=q.tenant,
        )
        captions = caption_vector(encoder.space)
        if part == "content":
            return Ranked(await store.search(query), part)
        if part == "caption":
            return Ranked(await store.search(replace(query, space=captions)), part)
        # Both parts' first results, fused; the page is cut from the fused ranking.
        deep = replace(query, limit=fusion_depth(offset, limit), offset=0)
        content, captioned = await both(store.search(deep), store.search(replace(deep, space=captions)))
        if not captioned and opts.part is None:
            return Ranked(content[offset : offset + limit], "content")
        fused = reciprocal_rank_fusion({"content": content, "caption": captioned},
                                       shares={"caption": caption_share(content)})
        return replace(fused, hits=fused.hits[offset : offset + limit])

    async def _videos(self, q: Query, encoder: QueryEncoder, vector: list[float], exclude: list[str], *,
                      limit: int, offset: int) -> Ranked:
        """Videos, one result each: by their best segment (MaxSim over ``<space>_segments``) or as a whole (the
        space's own vector, the mean of the segments'); each hit carries its segments scored, best first."""
        opts = q.options
        if opts.mode != "vector":
            raise BadRequest("videos are searched by vector only; leave `mode` out (or vector)")
        if opts.part not in (None, "content"):
            raise BadRequest("videos have no captions: leave `part` out with target video")
        space = segments_vector(encoder.space) if opts.granularity == "segment" else encoder.space
        query = SearchQuery(vector=vector, space=space, target="video", filters=opts.filters, limit=limit,
                            offset=offset, exclude_ids=exclude, tenant=q.tenant)
        return Ranked(await self.deps.store.search(query), "content")

    def _check_rerank(self, opts: SearchOptions) -> None:
        if not opts.rerank:
            return
        if self.rerank is None:
            raise BadRequest("rerank was asked for, but this gateway has no reranker (XMODAL_RERANK__KIND is none, "
                             "or its model failed to load at start: the gateway log says why); leave `rerank` "
                             "out (or false)", code="rerank_unavailable")
        most = self.settings.rerank.max_top_n
        if opts.rerank_top_n is not None and opts.rerank_top_n > most:
            raise BadRequest(f"body.rerank_top_n: this gateway re-ranks at most {most} results "
                             "(XMODAL_RERANK__MAX_TOP_N); ask for fewer",
                             details=[{"path": "body.rerank_top_n", "message": f"must be <= {most}"}])

    async def _reranked(self, q: Query, hits: list[Hit]) -> Reranked:
        assert self.rerank is not None  # _check_rerank made sure
        opts = q.options
        window = self.rerank.window(opts.rerank_top_n, opts.offset, opts.limit)
        return await self.rerank.run(rerank_input(q), opts.modifier, hits, window=window, offset=opts.offset,
                                     limit=opts.limit, tenant=q.tenant)

    async def _wait_consistent(self, opts: SearchOptions, group: str | None) -> Consistency | None:
        if not opts.consistent_with:
            return None
        if self.deps.offsets is None:
            return Consistency(satisfied=False, waited_ms=0.0, detail="this gateway has no Kafka connection")
        targets: dict[int, int] = {}
        for ref in opts.consistent_with:
            targets[ref.partition] = max(ref.offset, targets.get(ref.partition, -1))
        limit = self.settings.consistency_timeout_s
        # Leave part of the request's deadline for the search itself, so a long wait never becomes a 504.
        timeout = min(opts.consistency_timeout_s or limit, limit, 0.8 * self.settings.request_timeout_s)
        started = time.monotonic()
        try:
            satisfied, waited = await self.deps.offsets.wait_committed(targets, timeout_s=timeout, group=group)
            detail = None if satisfied else f"not all offsets were committed within {timeout:g} s"
        except DependencyDown as exc:
            satisfied, waited, detail = False, time.monotonic() - started, str(exc)
        metrics.CONSISTENCY_WAIT.observe(waited)
        return Consistency(satisfied=satisfied, waited_ms=round(waited * 1000, 2), detail=detail)


def result_of(h: Hit, rerank_score: float | None = None, parts: dict[str, float] | None = None) -> SearchResult:
    has_preview = h.modality in ("image", "audio", "video") and h.has_thumbnail
    preview = thumbnail_url(h.asset_id, h.modality) if has_preview else None
    text = h.text if h.modality == "text" else None
    result = SearchResult(asset_id=h.asset_id, score=h.score, modality=h.modality, metadata=h.metadata,
                          text=text, caption=h.caption, preview=preview, rerank_score=rerank_score, parts=parts)
    if h.modality != "video":
        return result
    segments = [SegmentResult(start_s=round(m.start_s, 3), end_s=round(m.end_s, 3), score=m.score)
                for m in h.segments[:MAX_SEGMENTS_SHOWN]]
    video = f"/v1/assets/{quote(h.asset_id, safe='')}/video" if h.has_playback else None
    return result.model_copy(update={"segments": segments, "start_s": segments[0].start_s if segments else None,
                                     "video": video, "duration_s": h.duration_s})


def rerank_input(q: Query) -> QueryInput:
    """What the reranker compares the candidates with: the query's text or image, or the stored asset's."""
    if q.text is not None:
        return q.text
    if q.asset_id is not None:
        return AssetQuery(q.asset_id)
    if q.image is not None:
        return q.image
    return NoContent("an audio query")
