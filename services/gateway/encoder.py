"""Query embedding for the gateway: the worker's model code, behind the embedding package's QueryEmbedder
(micro-batched concurrent queries, an LRU cache of text-query vectors, 429 when its queue is full).

This module only adapts it to the :class:`~services.gateway.deps.QueryEncoder` protocol and counts the
cache lookups in ``xmodal_query_cache_total{result="hit"|"miss"}``.
"""

from __future__ import annotations

from PIL import Image

from services.config import GatewaySettings
from services.embedding.batcher import QueryEmbedder
from services.embedding.model import Embedder
from services.embedding.runner import AsyncEmbedder
from services.monitoring import metrics


def _count_cache(hit: bool) -> None:
    metrics.QUERY_CACHE.labels("hit" if hit else "miss").inc()


class BatchedEncoder:
    """A QueryEncoder over QueryEmbedder; vectors come back as plain lists for the store."""

    def __init__(self, queries: QueryEmbedder) -> None:
        self.queries = queries

    @property
    def model_id(self) -> str:
        return self.queries.model_id

    @property
    def space(self) -> str:
        return self.queries.space

    async def encode_text(self, text: str) -> list[float]:
        vector: list[float] = (await self.queries.embed_text(text)).tolist()
        return vector

    async def encode_image(self, image: Image.Image) -> list[float]:
        vector: list[float] = (await self.queries.embed_image(image)).tolist()
        return vector

    async def close(self) -> None:
        await self.queries.close()


async def build_encoder(settings: GatewaySettings, embedder: Embedder) -> BatchedEncoder:
    """The encoder of the gateway: ``embedder`` on its device's inference thread, batched and cached as
    settings.query_* say."""
    runner = AsyncEmbedder(embedder, max_batch=settings.query_batch_max)
    return BatchedEncoder(QueryEmbedder.from_settings(runner, settings, on_cache=_count_cache))
