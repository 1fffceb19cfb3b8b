"""Query batching for the gateway, in the manner of text-embeddings-inference's router.

Concurrent searches each need one embedding; a forward pass over 32 queries costs about as much as over
one, so single queries are queued and embedded together:

- the queue is bounded; when it is full `submit` raises `Overloaded` at once (the gateway answers 429);
- a batch is flushed when it holds ``max_batch`` queries, or ``max_wait_s`` after its FIRST query was
  queued (the wait is never restarted by later arrivals, so one query waits at most ``max_wait_s``);
- while one batch runs in the model, at most one more is formed and waits; the rest stay queued;
- callers that went away (their await was cancelled) are dropped before their batch runs;
- time comes from an injected clock and sleep, so tests drive it without real waiting.

`QueryEmbedder` puts the text and image batchers and an LRU cache of text vectors behind two calls.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt
from PIL import Image

from services.config import GatewaySettings
from services.embedding.errors import BatcherClosed
from services.embedding.runner import AsyncEmbedder
from services.errors import Overloaded

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Vector = npt.NDArray[np.float32]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
EmbedBatch = Callable[[list[T]], Awaitable[npt.NDArray[np.float32]]]
BatchHook = Callable[[int, float], None]  # (batch size, seconds in the model)


@dataclass
class _Pending(Generic[T]):
    item: T
    queued_at: float
    future: asyncio.Future[Vector] = field(repr=False)


class QueryBatcher(Generic[T]):
    """Micro-batches single queries into model calls; see the module docstring for the rules."""

    def __init__(self, embed: EmbedBatch[T], *, max_batch: int, max_wait_s: float, queue_max: int,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep, retry_after_s: float = 1.0,
                 on_batch: BatchHook | None = None) -> None:
        if max_batch < 1 or queue_max < 1 or max_wait_s < 0:
            raise ValueError("max_batch and queue_max must be >= 1 and max_wait_s >= 0")
        self._embed = embed
        self.max_batch, self.max_wait_s, self.queue_max = max_batch, max_wait_s, queue_max
        self._clock, self._sleep = clock, sleep
        self._retry_after_s = retry_after_s
        self._on_batch = on_batch
        self._queue: deque[_Pending[T]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def depth(self) -> int:
        """Queries queued and not yet in a batch (for a queue-depth gauge)."""
        return len(self._queue)

    async def submit(self, item: T) -> Vector:
        """The vector of ``item`` once its batch ran; `Overloaded` at once when the queue is full."""
        if self._closed:
            raise BatcherClosed("the query batcher is closed")
        if len(self._queue) >= self.queue_max:
            raise Overloaded(f"{self.queue_max} queries already queued", retry_after=self._retry_after_s)
        future: asyncio.Future[Vector] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(item, self._clock(), future))
        self._wakeup.set()
        if self._task is None or self._task.done():  # first use, or the loop it ran on is gone
            self._task = asyncio.create_task(self._run(), name="xmodal-query-batcher")
        # Cancelling the caller cancels this future too, which is how the batcher sees it went away.
        return await future

    async def close(self) -> None:
        """Stop batching; queued and waiting callers get `BatcherClosed` (a retriable error)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._fail(list(self._queue), BatcherClosed("the query batcher closed"))
        self._queue.clear()

    async def _run(self) -> None:
        running: asyncio.Task[None] | None = None
        batch: list[_Pending[T]] = []
        try:
            while True:
                batch = await self._next_batch()
                if running is not None:
                    await running  # this batch waits; no third one is formed meanwhile
                batch = [p for p in batch if not p.future.done()]
                running = asyncio.create_task(self._execute(batch)) if batch else None
        finally:
            if running is not None:
                running.cancel()
            self._fail(batch, BatcherClosed("the query batcher closed"))

    def _drop_gone(self) -> None:
        if any(p.future.done() for p in self._queue):
            self._queue = deque(p for p in self._queue if not p.future.done())

    async def _next_batch(self) -> list[_Pending[T]]:
        while True:
            self._drop_gone()
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            deadline = self._queue[0].queued_at + self.max_wait_s  # from the batch's first query
            while len(self._queue) < self.max_batch and (remaining := deadline - self._clock()) > 0:
                await self._wait(remaining)
                self._drop_gone()
            if self._queue:
                return [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]

    async def _wait(self, seconds: float) -> None:
        """Until a query arrives or ``seconds`` pass on the injected clock, whichever is first."""
        self._wakeup.clear()
        arrival = asyncio.ensure_future(self._wakeup.wait())
        timer = asyncio.ensure_future(self._sleep(seconds))
        try:
            await asyncio.wait({arrival, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            arrival.cancel()
            timer.cancel()

    async def _execute(self, batch: list[_Pending[T]]) -> None:
        started = self._clock()
        try:
            vectors = await self._embed([p.item for p in batch])
            if len(vectors) != len(batch):
                raise RuntimeError(f"the model returned {len(vectors)} vectors for {len(batch)} queries")
        except asyncio.CancelledError:
            self._fail(batch, BatcherClosed("the query batcher closed"))
            raise
        except Exception as exc:  # noqa: BLE001 -- not swallowed: every caller of the batch gets it
            self._fail(batch, exc)
            return
        if self._on_batch is not None:
            self._on_batch(len(batch), self._clock() - started)
        for pending, vector in zip(batch, vectors, strict=False):  # lengths checked above
            if not pending.future.done():
                pending.future.set_result(vector.copy())

    @staticmethod
    def _fail(batch: list[_Pending[T]], exc: BaseException) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(exc)


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


class QueryEmbedder:
    """The gateway's query side: cached, batched text queries and batched image queries."""

    def __init__(self, embedder: AsyncEmbedder, *, max_batch: int, max_wait_s: float, queue_max: int,
                 cache_size: int, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep,
                 on_batch: BatchHook | None = None, on_cache: Callable[[bool], None] | None = None) -> None:
        self.embedder = embedder

        def batcher(embed: EmbedBatch[T]) -> QueryBatcher[T]:
            return QueryBatcher(embed, max_batch=max_batch, max_wait_s=max_wait_s, queue_max=queue_max,
                                clock=clock, sleep=sleep, on_batch=on_batch)

        self.texts: QueryBatcher[str] = batcher(embedder.embed_texts)
        self.images: QueryBatcher[Image.Image] = batcher(embedder.embed_images)
        self.cache: LruCache[str, Vector] = LruCache(cache_size)
        self._on_cache = on_cache

    @classmethod
    def from_settings(cls, embedder: AsyncEmbedder, settings: GatewaySettings,
                      on_batch: BatchHook | None = None,
                      on_cache: Callable[[bool], None] | None = None) -> QueryEmbedder:
        return cls(embedder, max_batch=settings.query_batch_max, max_wait_s=settings.query_batch_wait_s,
                   queue_max=settings.query_queue_max, cache_size=settings.query_cache_size,
                   on_batch=on_batch, on_cache=on_cache)

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    @property
    def space(self) -> str:
        return self.embedder.space

    @property
    def dim(self) -> int:
        return self.embedder.dim

    async def embed_text(self, text: str) -> Vector:
        """The (read-only) vector of a text query, from the cache when it was asked before."""
        cached = self.cache.get(text)
        if self._on_cache is not None:
            self._on_cache(cached is not None)
        if cached is not None:
            return cached
        vector = await self.texts.submit(text)
        vector.flags.writeable = False  # shared by every later hit: nobody may change it
        self.cache.put(text, vector)
        return vector

    async def embed_image(self, image: Image.Image) -> Vector:
        return await self.images.submit(image)

    async def close(self) -> None:
        await self.texts.close()
        await self.images.close()
