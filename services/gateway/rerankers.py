"""The two rerankers (services.gateway.rerank.Reranker) and `load_reranker`, which builds the configured one.

- `BiEncoderReranker`: re-embeds the query and the candidates with a larger dual encoder of the same family
  (any `Embedder`: `builtin:shapes-clip-large`, a CLIP/SigLIP checkpoint) and scores by cosine similarity.
  Candidate vectors are kept in an LRU keyed by (asset_id, content_hash), so a repeated query re-embeds
  nothing but itself, and an updated asset is embedded again. Texts and images, in any pairing; a composed
  query is composed again in the larger model's space.
- `CrossEncoderReranker`: a BLIP image-text matcher (services.embedding.rerank.CrossEncoder) reads each
  (image, text) pair together: a text query against image candidates, an image query against text
  candidates. It caches nothing (every pair is a forward pass) and cannot compare two images or two texts.

Both run their model on the device's inference thread (the one the query embeddings use), at most
``max_batch`` inputs per call, so a large window does not hold the device while a query waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import numpy as np
from PIL import Image

from services.config import ModelSettings, RerankSettings
from services.embedding.errors import ModelLoadError
from services.embedding.model import Embedder, Vectors, load_embedder
from services.embedding.rerank import CrossEncoder
from services.embedding.runner import AsyncEmbedder, InferenceThread, chunks
from services.gateway.encoder import LruCache
from services.gateway.rerank import Candidate, CandidateModality, Reranker, RerankError, RerankQuery, Thumbnails
from services.monitoring import metrics

log = logging.getLogger(__name__)

_BOTH: frozenset[CandidateModality] = frozenset({"image", "text"})
_TINY = 1e-6

CacheKey = tuple[str, str]  # (asset_id, content_hash)


class BiEncoderReranker:
    """Cosine similarity in a larger dual encoder's space, with candidate vectors cached."""

    def __init__(self, embedder: Embedder, *, max_batch: int, cache_size: int) -> None:
        self.name = f"biencoder:{embedder.model_id}"
        self.model = AsyncEmbedder(embedder, max_batch=max_batch)
        self.cache: LruCache[CacheKey, Vectors] = LruCache(cache_size)
        self._reads: frozenset[CandidateModality] = _BOTH & embedder.modalities
        for result in ("hit", "miss"):
            metrics.RERANK_CACHE.labels(result)

    def reads(self, query: RerankQuery) -> frozenset[CandidateModality]:
        kind = "text" if isinstance(query.content, str) else "image"
        if kind not in self._reads or (query.modifier is not None and "text" not in self._reads):
            return frozenset()
        return self._reads

    async def score(self, query: RerankQuery, candidates: Sequence[Candidate], thumbnails: Thumbnails
                    ) -> Sequence[float]:
        vectors = {c.asset_id: v for c in candidates if c.content_hash and (v := self.cache.get(_key(c))) is not None}
        metrics.RERANK_CACHE.labels("hit").inc(len(vectors))
        missing = [c for c in candidates if c.asset_id not in vectors]
        metrics.RERANK_CACHE.labels("miss").inc(len(missing))
        texts = [c for c in missing if c.modality == "text"]
        images = [c for c in missing if c.modality == "image"]
        # The query's own inputs ride in the same forward passes as the candidates'.
        query_texts = [query.content] if isinstance(query.content, str) else []
        if query.modifier is not None:
            query_texts.append(query.modifier.text)
        query_images = [query.content] if isinstance(query.content, Image.Image) else []
        text_rows = await self._embed_texts([*query_texts, *(c.text or "" for c in texts)])
        image_rows = await self._embed_images([*query_images, *await thumbnails.images(images)])
        for rows, got in ((text_rows[len(query_texts):], texts), (image_rows[len(query_images):], images)):
            for c, row in zip(got, rows, strict=True):
                vectors[c.asset_id] = row.copy()  # a row of its own: the batch's array is not kept alive
                if c.content_hash:  # an object without a hash could change unseen: not cached
                    self.cache.put(_key(c), vectors[c.asset_id])
        q = self._query_vector(query, text_rows[: len(query_texts)], image_rows[: len(query_images)])
        matrix = np.stack([vectors[c.asset_id] for c in candidates])
        return [float(s) for s in matrix @ q]

    async def _embed_texts(self, texts: list[str]) -> Vectors:
        return await self.model.embed_texts(texts) if texts else np.zeros((0, self.model.dim), np.float32)

    async def _embed_images(self, images: list[Image.Image]) -> Vectors:
        return await self.model.embed_images(images) if images else np.zeros((0, self.model.dim), np.float32)

    @staticmethod
    def _query_vector(query: RerankQuery, text_rows: Vectors, image_rows: Vectors) -> Vectors:
        base: Vectors = text_rows[0] if isinstance(query.content, str) else image_rows[0]
        if query.modifier is None:
            return base
        weight = query.modifier.weight
        mixed = (1.0 - weight) * base + weight * text_rows[-1]  # as the first stage composes it
        norm = float(np.linalg.norm(mixed))
        if norm < _TINY:
            raise RerankError("the modifier cancels the query out in the reranker's space")
        composed: Vectors = (mixed / norm).astype(np.float32)
        return composed


class CrossEncoderReranker:
    """BLIP image-text matching probabilities of (query, candidate) pairs of different modalities."""

    def __init__(self, model: CrossEncoder, *, max_batch: int) -> None:
        self.name = f"crossencoder:{model.model_id}"
        self.model = model
        self.max_batch = max_batch
        self.thread = InferenceThread.for_device(model.device)

    def reads(self, query: RerankQuery) -> frozenset[CandidateModality]:
        if query.modifier is not None:  # "this image, but green" is not one image-text pair
            return frozenset()
        return frozenset({"image"}) if isinstance(query.content, str) else frozenset({"text"})

    async def score(self, query: RerankQuery, candidates: Sequence[Candidate], thumbnails: Thumbnails
                    ) -> Sequence[float]:
        if isinstance(query.content, str):
            images = await thumbnails.images(candidates)
            texts = [query.content] * len(candidates)
        else:
            images = [query.content] * len(candidates)
            texts = [c.text or "" for c in candidates]
        scores: list[float] = []
        for part in chunks(range(len(candidates)), self.max_batch):
            got = await self.thread.run(self.model.match, [images[i] for i in part], [texts[i] for i in part])
            scores.extend(float(s) for s in got)
        return scores


def load_reranker(settings: RerankSettings) -> Reranker | None:
    """The configured reranker, its model loaded (blocks: run it in a thread); None for kind none.

    Raises ModelLoadError (what to change) when the model cannot be loaded.
    """
    if settings.kind == "none":
        return None
    if settings.kind == "biencoder":
        model = ModelSettings(name=settings.model, space="rerank", device=settings.device, dtype=settings.dtype,
                              max_batch=settings.max_batch)
        try:
            embedder = load_embedder(model)
        except ModelLoadError as exc:  # its advice names the spaces' settings; the reranker has its own
            raise ModelLoadError(f"the biencoder reranker's model: {exc} For the reranker, set "
                                 "XMODAL_RERANK__MODEL (or XMODAL_RERANK__KIND=none).") from exc
        return BiEncoderReranker(embedder, max_batch=settings.max_batch, cache_size=settings.cache_size)
    if settings.model.startswith("builtin:"):
        raise ModelLoadError(f"no cross-encoder ships with xmodal ({settings.model!r} is a dual encoder): set "
                             "XMODAL_RERANK__MODEL to a BLIP image-text retrieval checkpoint, or "
                             "XMODAL_RERANK__KIND=biencoder")
    encoder = CrossEncoder.from_pretrained(settings.model, device=settings.device, dtype=settings.dtype)
    return CrossEncoderReranker(encoder, max_batch=settings.max_batch)


async def started_reranker(settings: RerankSettings) -> Reranker | None:
    """`load_reranker` off the event loop; a model that fails to load is logged and leaves re-ranking off
    (`rerank: true` answers 400 rerank_unavailable), while search goes on: re-ranking is an option."""
    if settings.kind == "none":
        return None
    log.info("loading the %s reranker: %s", settings.kind, settings.model)
    try:
        return await asyncio.to_thread(load_reranker, settings)
    except ModelLoadError as exc:
        log.error("re-ranking is off (`rerank: true` answers 400): %s", exc)
        return None


def _key(c: Candidate) -> CacheKey:
    return (c.asset_id, c.content_hash)
