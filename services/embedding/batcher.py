"""Query batching, in the manner of text-embeddings-inference's router: a small actor in front of a model.

Concurrent searches each need one embedding; a forward pass over 32 queries costs about as much as over
one, so single queries are queued and embedded together:

- the queue is bounded; when it is full `submit` raises `Overloaded` at once (the gateway answers 429);
- natural batching: when the model is idle, the queued queries go into it at once; while a batch runs,
  arrivals gather, and the next batch is formed when the model is free again or ``max_batch`` are queued.
  So a lone query never waits for company, and batches grow by themselves with the load;
- ``max_wait_s`` > 0 adds a wait to fill a batch even when the model is idle, counted from the batch's FIRST
  query (never restarted by later arrivals, so one query waits at most that long before its batch is
  formed); worth it only where a batch of one wastes the device (a large GPU), 0 (the gateway's default)
  otherwise;
- while one batch runs in the model, at most one more is formed and waits; the rest stay queued;
- callers that went away (their await was cancelled) are dropped before their batch runs;
- time comes from an injected clock and sleep, so tests drive it without real waiting;
- a `BatchObserver` hears what happens (queue depth, each batch's size and queue waits, inference time,
  refusals and model errors), which is where metrics are counted.

The batcher knows nothing of models, caches or metrics: it calls the ``embed`` function it is given once
per batch, with at most ``max_batch`` items (the only place that limit is applied on the query path).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from services.embedding.errors import BatcherClosed
from services.errors import Overloaded

T = TypeVar("T")
Vector = npt.NDArray[np.float32]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
EmbedBatch = Callable[[list[T]], Awaitable[npt.NDArray[np.float32]]]


class BatchObserver:
    """What a batcher reports as it works; this base ignores it all, subclasses count it.

    Every hook runs on the event loop, inside the batcher: it must be cheap and must not raise. Times are
    on the batcher's injected clock.
    """

    def queue_depth(self, depth: int) -> None:
        """The queue now holds ``depth`` queries (a formed batch waiting for the model is not counted)."""

    def batch_started(self, waited_s: Sequence[float]) -> None:
        """A batch of ``len(waited_s)`` queries goes into the model; each waited that long since `submit`."""

    def batch_done(self, size: int, seconds: float) -> None:
        """A batch of ``size`` came back from the model after ``seconds`` (failed batches do not count)."""

    def overloaded(self) -> None:
        """One query was refused because the queue was full."""

    def model_error(self, queries: int) -> None:
        """The model raised; the error went to the ``queries`` callers of the batch still waiting."""


@dataclass
class _Pending(Generic[T]):
    item: T
    queued_at: float
    future: asyncio.Future[Vector] = field(repr=False)


class QueryBatcher(Generic[T]):
    """Micro-batches single queries into calls of ``embed``; see the module docstring for the rules."""

    def __init__(self, embed: EmbedBatch[T], *, max_batch: int, max_wait_s: float, queue_max: int,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep, retry_after_s: float = 1.0,
                 observer: BatchObserver | None = None) -> None:
        if max_batch < 1 or queue_max < 1 or max_wait_s < 0:
            raise ValueError("max_batch and queue_max must be >= 1 and max_wait_s >= 0")
        self._embed = embed
        self.max_batch, self.max_wait_s, self.queue_max = max_batch, max_wait_s, queue_max
        self._clock, self._sleep = clock, sleep
        self._retry_after_s = retry_after_s
        self._observer = observer or BatchObserver()
        self._queue: deque[_Pending[T]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def depth(self) -> int:
        """Queries queued and not yet in a batch."""
        return len(self._queue)

    async def submit(self, item: T) -> Vector:
        """The vector of ``item`` once its batch ran; `Overloaded` at once when the queue is full."""
        if self._closed:
            raise BatcherClosed("the query batcher is closed")
        if len(self._queue) >= self.queue_max:
            self._observer.overloaded()
            raise Overloaded(f"{self.queue_max} queries already queued", retry_after=self._retry_after_s)
        future: asyncio.Future[Vector] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(item, self._clock(), future))
        self._depth_changed()
        self._wakeup.set()
        if self._task is None or self._task.done():  # first use, or the loop it ran on is gone
            self._task = asyncio.create_task(self._run(), name="xmodal-query-batcher")
        # Cancelling the caller cancels this future too, which is how the batcher sees it went away.
        try:
            return await future
        except asyncio.CancelledError:
            self._wakeup.set()  # drop it now: a caller gone must not hold a place in the queue
            raise

    async def close(self) -> None:
        """Stop batching; queued and waiting callers get `BatcherClosed` (a retriable error)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._fail(list(self._queue), BatcherClosed("the query batcher closed"))
        self._queue.clear()
        self._depth_changed()

    def _depth_changed(self) -> None:
        self._observer.queue_depth(len(self._queue))

    async def _run(self) -> None:
        running: asyncio.Task[None] | None = None
        batch: list[_Pending[T]] = []
        try:
            while True:
                batch = await self._next_batch(running)
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
            self._depth_changed()

    async def _next_batch(self, running: asyncio.Task[None] | None) -> list[_Pending[T]]:
        while True:
            self._drop_gone()
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # the model is busy: arrivals gather until it is free or a full batch is queued
            while running is not None and not running.done() and 0 < len(self._queue) < self.max_batch:
                await self._wait(None, running)
                self._drop_gone()
            if not self._queue:
                continue
            deadline = self._queue[0].queued_at + self.max_wait_s  # from the batch's first query
            while len(self._queue) < self.max_batch and (remaining := deadline - self._clock()) > 0:
                await self._wait(remaining)
                self._drop_gone()
            if self._queue:
                batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
                self._depth_changed()
                return batch

    async def _wait(self, seconds: float | None, running: asyncio.Task[None] | None = None) -> None:
        """Until a query arrives, ``seconds`` pass on the injected clock or ``running`` ends, whichever is
        first (None: not that one)."""
        self._wakeup.clear()
        arrival = asyncio.ensure_future(self._wakeup.wait())
        timer = asyncio.ensure_future(self._sleep(seconds)) if seconds is not None else None
        waits: set[asyncio.Future[Any]] = {arrival, *(w for w in (timer, running) if w is not None)}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            arrival.cancel()
            if timer is not None:
                timer.cancel()

    async def _execute(self, batch: list[_Pending[T]]) -> None:
        started = self._clock()
        self._observer.batch_started([started - p.queued_at for p in batch])
        try:
            vectors = await self._embed([p.item for p in batch])
            if len(vectors) != len(batch):
                raise RuntimeError(f"the model returned {len(vectors)} vectors for {len(batch)} queries")
        except asyncio.CancelledError:
            self._fail(batch, BatcherClosed("the query batcher closed"))
            raise
        except Exception as exc:  # noqa: BLE001 -- not swallowed: every caller of the batch gets it
            self._observer.model_error(self._fail(batch, exc))
            return
        self._observer.batch_done(len(batch), self._clock() - started)
        for pending, vector in zip(batch, vectors, strict=False):  # lengths checked above
            if not pending.future.done():
                pending.future.set_result(vector.copy())

    @staticmethod
    def _fail(batch: list[_Pending[T]], exc: BaseException) -> int:
        """Hand ``exc`` to the callers of ``batch`` still waiting; how many there were."""
        failed = 0
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(exc)
                failed += 1
        return failed
