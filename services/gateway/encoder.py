"""Query embedding for the gateway: a query text, image or clip -> one vector of an embedding space.

The query path, two layers between a handler and the model::

    handler -> QueryEncoder (cache, metrics) -> QueryBatcher (one per modality) -> InferenceThread -> Embedder

Text vectors are kept in an LRU cache (the same query comes back: paging, shared links, the page's
examples). Misses and images are micro-batched by the embedding package's generic QueryBatcher, which calls
the model on its device's inference thread with at most ``query_batch_max`` inputs per call.

Exported (services.monitoring.metrics): ``xmodal_query_cache_total{result}``;
``xmodal_query_queue_depth``, ``xmodal_query_batch_size``, ``xmodal_query_queue_seconds`` and
``xmodal_query_inference_seconds``, each by ``modality`` (text, image, audio); ``xmodal_query_failures_total{cause}``
with cause overloaded (queue full, answered 429), model_error (the model raised) and timeout (the request's
deadline passed while its query was queued or in the model).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt
from PIL import Image

from services.config import GatewaySettings
from services.embedding.batcher import BatchObserver, Clock, EmbedBatch, QueryBatcher, Sleep, Vector
from services.embedding.model import Embedder
from services.embedding.runner import InferenceThread
from services.gateway.deadline import deadline_passed
from services.monitoring import metrics

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")
Modality = Literal["text", "image", "audio"]
FailureCause = Literal["overloaded", "model_error", "timeout"]
FAILURE_CAUSES: tuple[FailureCause, ...] = ("overloaded", "model_error", "timeout")
AudioSamples = npt.NDArray[np.float32]


class LruCache(Generic[K, V]):
    """A bounded mapping that forgets the least recently used entry; ``maxsize`` 0 caches nothing.

    >>> cache: LruCache[str, int] = LruCache(2)
    >>> cache.put("a", 1); cache.put("b", 2); _ = cache.get("a"); cache.put("c", 3)
    >>> cache.get("b") is None, cache.get("a"), len(cache)
    (True, 1, 2)
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self.maxsize <= 0:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)


def count_failure(cause: FailureCause, queries: int = 1) -> None:
    metrics.QUERY_FAILURES.labels(cause).inc(queries)


class ExportedBatcher(BatchObserver):
    """One batcher's figures, as the xmodal_query_* series of its modality."""

    def __init__(self, modality: Modality) -> None:
        self._depth = metrics.QUERY_QUEUE_DEPTH.labels(modality)
        self._size = metrics.QUERY_BATCH_SIZE.labels(modality)
        self._queued = metrics.QUERY_QUEUE_SECONDS.labels(modality)
        self._inference = metrics.QUERY_INFERENCE_SECONDS.labels(modality)

    def queue_depth(self, depth: int) -> None:
        self._depth.set(depth)

    def batch_started(self, waited_s: Sequence[float]) -> None:
        self._size.observe(len(waited_s))
        for seconds in waited_s:
            self._queued.observe(seconds)

    def batch_done(self, size: int, seconds: float) -> None:
        self._inference.observe(seconds)

    def overloaded(self) -> None:
        count_failure("overloaded")

    def model_error(self, queries: int) -> None:
        count_failure("model_error", queries)


class QueryEncoder:
    """One embedding space's query side: cached text queries, batched text, image and audio queries, metrics.

    ``model_id`` and ``space`` say which model and embedding space answer (responses and store queries
    name them); ``modalities`` are what its model embeds. Vectors come back as plain lists, a fresh one per
    call, as the store takes them.
    """

    def __init__(self, embedder: Embedder, *, max_batch: int, max_wait_s: float, queue_max: int,
                 cache_size: int, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self.model_id: str = embedder.model_id
        self.space: str = embedder.space
        self.modalities: frozenset[str] = frozenset(embedder.modalities)
        self.sampling_rate: int | None = embedder.sampling_rate
        device = InferenceThread.for_device(embedder.device)

        async def embed_texts(batch: list[str]) -> Vector:
            return await device.run(embedder.embed_texts, batch)

        async def embed_images(batch: list[Image.Image]) -> Vector:
            return await device.run(embedder.embed_images, batch)

        async def embed_audio(batch: list[AudioSamples]) -> Vector:
            return await device.run(embedder.embed_audio, batch)

        def batcher(embed: EmbedBatch[T], modality: Modality) -> QueryBatcher[T]:
            return QueryBatcher(embed, max_batch=max_batch, max_wait_s=max_wait_s, queue_max=queue_max,
                                clock=clock, sleep=sleep, observer=ExportedBatcher(modality))

        self.texts: QueryBatcher[str] = batcher(embed_texts, "text")
        self.images: QueryBatcher[Image.Image] = batcher(embed_images, "image")
        self.audio: QueryBatcher[AudioSamples] = batcher(embed_audio, "audio")
        self.cache: LruCache[str, Vector] = LruCache(cache_size)
        for cause in FAILURE_CAUSES:
            metrics.QUERY_FAILURES.labels(cause)  # exported from 0, so rates and alerts see every cause

    @classmethod
    def from_settings(cls, settings: GatewaySettings, embedder: Embedder) -> QueryEncoder:
        return cls(embedder, max_batch=settings.query_batch_max, max_wait_s=settings.query_batch_wait_s,
                   queue_max=settings.query_queue_max, cache_size=settings.query_cache_size)

    async def encode_text(self, text: str) -> list[float]:
        """The vector of a text query, from the cache when it was asked before."""
        vector = self.cache.get(text)
        metrics.QUERY_CACHE.labels("miss" if vector is None else "hit").inc()
        if vector is None:
            vector = await _submit(self.texts, text)
            self.cache.put(text, vector)
        as_list: list[float] = vector.tolist()
        return as_list

    async def encode_image(self, image: Image.Image) -> list[float]:
        as_list: list[float] = (await _submit(self.images, image)).tolist()
        return as_list

    async def encode_audio(self, samples: AudioSamples) -> list[float]:
        """The vector of an audio query: mono float32 samples at ``sampling_rate``."""
        as_list: list[float] = (await _submit(self.audio, samples)).tolist()
        return as_list

    async def close(self) -> None:
        await self.texts.close()
        await self.images.close()
        await self.audio.close()


async def _submit(batcher: QueryBatcher[T], item: T) -> Vector:
    try:
        return await batcher.submit(item)
    except asyncio.CancelledError:
        # Seen here, where the query was waiting (queued or in the model) when the deadline fired;
        # a shutdown or a caller gone for another reason is not a timeout.
        if deadline_passed():
            count_failure("timeout")
        raise
