"""QueryBatcher rules and what it reports to its observer, driven by an injected clock: no real waiting and
no timed assertions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest

from services.embedding.batcher import BatchObserver, QueryBatcher
from services.embedding.errors import BatcherClosed
from services.errors import Overloaded
from tests.unit.embedding.fakeclock import FakeClock, settle


class Model:
    """Stands in for the model call: records each batch, maps word n to a unit vector along axis n.

    ``gate`` holds batches in the "model" until the test opens it.
    """

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_with: Exception | None = None

    async def __call__(self, items: list[str]) -> np.ndarray:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return np.eye(64, dtype=np.float32)[[int(i) for i in items]]


class Seen(BatchObserver):
    """Everything the batcher reported, in order."""

    def __init__(self) -> None:
        self.depths: list[int] = []
        self.started: list[list[float]] = []
        self.done: list[tuple[int, float]] = []
        self.overloads = 0
        self.model_errors: list[int] = []

    def queue_depth(self, depth: int) -> None:
        self.depths.append(depth)

    def batch_started(self, waited_s: Sequence[float]) -> None:
        self.started.append(list(waited_s))

    def batch_done(self, size: int, seconds: float) -> None:
        self.done.append((size, seconds))

    def overloaded(self) -> None:
        self.overloads += 1

    def model_error(self, queries: int) -> None:
        self.model_errors.append(queries)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def model() -> Model:
    return Model()


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
async def batcher(clock: FakeClock, model: Model, seen: Seen) -> AsyncIterator[QueryBatcher[str]]:
    b: QueryBatcher[str] = QueryBatcher(model, max_batch=4, max_wait_s=1.0, queue_max=8, clock=clock,
                                        sleep=clock.sleep, observer=seen)
    yield b
    await b.close()


async def submit(batcher: QueryBatcher[str], *items: str) -> list[asyncio.Task[np.ndarray]]:
    """Callers of ``items``, each queued (at the current fake time) before this returns."""
    tasks = [asyncio.create_task(batcher.submit(i)) for i in items]
    await settle()
    return tasks


async def test_a_full_batch_flushes_without_waiting(batcher: QueryBatcher[str], model: Model) -> None:
    tasks = await submit(batcher, "0", "1", "2", "3")
    await settle()
    assert model.batches == [["0", "1", "2", "3"]]
    for n, task in enumerate(tasks):
        np.testing.assert_array_equal(await task, np.eye(64, dtype=np.float32)[n])


async def test_wait_counts_from_the_first_query_not_the_last(batcher: QueryBatcher[str], model: Model,
                                                              clock: FakeClock) -> None:
    first = await submit(batcher, "1")
    await clock.advance(0.5)
    second = await submit(batcher, "2")
    await clock.advance(0.25)
    assert model.batches == []  # 0.75 s after the first query: still waiting
    await clock.advance(0.25)  # 1.0 s after the first, 0.5 s after the second
    assert model.batches == [["1", "2"]]
    await asyncio.gather(*first, *second)


async def test_a_lone_query_waits_max_wait(batcher: QueryBatcher[str], model: Model, clock: FakeClock) -> None:
    task = await submit(batcher, "5")
    await clock.advance(0.75)
    assert model.batches == []
    await clock.advance(0.25)
    assert model.batches == [["5"]]
    assert int(np.argmax(await task[0])) == 5


async def test_full_queue_is_refused_at_once(batcher: QueryBatcher[str], model: Model) -> None:
    model.gate.clear()
    running = await submit(batcher, "0", "1", "2", "3")  # taken into the running batch
    await settle()
    waiting = await submit(batcher, "4", "5", "6", "7")  # formed into the one waiting batch
    await settle()
    queued = await submit(batcher, *(str(n) for n in range(8, 16)))  # fills the queue (queue_max 8)
    await settle()
    assert batcher.depth == 8
    with pytest.raises(Overloaded) as info:
        await batcher.submit("16")
    assert info.value.retriable and info.value.retry_after > 0
    model.gate.set()
    await asyncio.gather(*running, *waiting, *queued)


async def test_at_most_one_batch_waits_while_one_runs(batcher: QueryBatcher[str], model: Model,
                                                      clock: FakeClock) -> None:
    model.gate.clear()
    tasks = await submit(batcher, "0", "1", "2", "3")
    tasks += await submit(batcher, *(str(n) for n in range(4, 12)))
    await clock.advance(5.0)
    assert model.batches == [["0", "1", "2", "3"]]  # one batch in the model...
    assert batcher.depth == 4  # ...one formed and waiting (4-7), the rest still queued
    model.gate.set()
    await clock.advance(1.0)
    assert model.batches == [["0", "1", "2", "3"], ["4", "5", "6", "7"], ["8", "9", "10", "11"]]
    await asyncio.gather(*tasks)


async def test_callers_that_went_away_are_skipped(batcher: QueryBatcher[str], model: Model,
                                                  clock: FakeClock) -> None:
    tasks = await submit(batcher, "1", "2", "3")
    await settle()
    tasks[1].cancel()
    await clock.advance(1.0)
    assert model.batches == [["1", "3"]]
    await asyncio.gather(tasks[0], tasks[2])
    assert tasks[1].cancelled()


async def test_a_failed_batch_fails_its_callers_and_the_next_batch_runs(batcher: QueryBatcher[str],
                                                                        model: Model) -> None:
    model.fail_with = RuntimeError("device lost")
    tasks = await submit(batcher, "0", "1", "2", "3")
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    model.fail_with = None
    later = await asyncio.gather(*await submit(batcher, "4", "5", "6", "7"))
    assert int(np.argmax(later[0])) == 4


async def test_close_fails_queued_callers_with_a_retriable_error(batcher: QueryBatcher[str],
                                                                 model: Model) -> None:
    pending = await submit(batcher, "1")
    await settle()
    await batcher.close()
    with pytest.raises(BatcherClosed) as info:
        await pending[0]
    assert info.value.retriable
    with pytest.raises(BatcherClosed):
        await batcher.submit("2")
    assert model.batches == []


def test_bad_limits_are_refused(model: Model) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        QueryBatcher(model, max_batch=0, max_wait_s=0.1, queue_max=1)


# -- what the observer hears ----------------------------------------------------------------------------------


async def test_queue_depth_follows_the_queue(batcher: QueryBatcher[str], clock: FakeClock, seen: Seen) -> None:
    tasks = await submit(batcher, "1", "2", "3")
    assert seen.depths[-1] == 3 == batcher.depth  # queued, waiting for the batch to fill or max_wait
    await clock.advance(1.0)
    assert seen.depths[-1] == 0
    await asyncio.gather(*tasks)
    assert seen.depths == [1, 2, 3, 0]


async def test_batch_size_and_queue_wait_come_from_the_clock(batcher: QueryBatcher[str], clock: FakeClock,
                                                             seen: Seen) -> None:
    first = await submit(batcher, "1")
    await clock.advance(0.25)
    second = await submit(batcher, "2")
    await clock.advance(0.75)  # max_wait after the first query: the batch of 2 starts
    await asyncio.gather(*first, *second)
    assert seen.started == [[1.0, 0.75]]  # one batch of two; each query's own wait


async def test_inference_time_is_the_model_call_on_the_clock(batcher: QueryBatcher[str], model: Model,
                                                             clock: FakeClock, seen: Seen) -> None:
    model.gate.clear()
    tasks = await submit(batcher, "0", "1", "2", "3")  # full: starts at once
    assert seen.started == [[0.0, 0.0, 0.0, 0.0]] and seen.done == []
    await clock.advance(0.125)  # the model "takes" 0.125 s
    model.gate.set()
    await asyncio.gather(*tasks)
    assert seen.done == [(4, 0.125)]


async def test_a_full_queue_is_reported_as_overloaded(batcher: QueryBatcher[str], model: Model,
                                                      seen: Seen) -> None:
    model.gate.clear()
    tasks = await submit(batcher, "0", "1", "2", "3")  # the running batch
    tasks += await submit(batcher, "4", "5", "6", "7")  # the one waiting batch
    tasks += await submit(batcher, *(str(n) for n in range(8, 16)))  # a full queue
    assert seen.overloads == 0
    for _ in range(2):
        with pytest.raises(Overloaded):
            await batcher.submit("16")
    assert seen.overloads == 2
    model.gate.set()
    await asyncio.gather(*tasks)


async def test_a_model_error_is_reported_per_waiting_query(batcher: QueryBatcher[str], model: Model,
                                                           seen: Seen) -> None:
    model.gate.clear()
    model.fail_with = RuntimeError("device lost")
    tasks = await submit(batcher, "0", "1", "2", "3")
    tasks[0].cancel()  # gone while its batch runs: it gets no error, so it is not counted
    await settle()
    model.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [type(r) for r in results[1:]] == [RuntimeError] * 3
    assert seen.model_errors == [3] and seen.done == []


async def test_a_caller_gone_leaves_the_queue_at_once(batcher: QueryBatcher[str], clock: FakeClock,
                                                      model: Model, seen: Seen) -> None:
    tasks = await submit(batcher, "1", "2")
    tasks[0].cancel()
    await settle()  # no time passed: the batch is not due yet
    assert batcher.depth == 1 and seen.depths[-1] == 1
    await clock.advance(1.0)
    assert model.batches == [["2"]]
    await tasks[1]


@pytest.fixture
async def natural(clock: FakeClock, model: Model, seen: Seen) -> AsyncIterator[QueryBatcher[str]]:
    """The gateway's default: no wait to fill a batch (max_wait_s 0)."""
    b: QueryBatcher[str] = QueryBatcher(model, max_batch=4, max_wait_s=0.0, queue_max=16, clock=clock,
                                        sleep=clock.sleep, observer=seen)
    yield b
    await b.close()


async def test_a_lone_query_goes_at_once_when_the_model_is_idle(natural: QueryBatcher[str], model: Model,
                                                               seen: Seen) -> None:
    task = await submit(natural, "5")
    await settle()
    assert model.batches == [["5"]]  # no fake time passed
    assert int(np.argmax(await task[0])) == 5
    assert seen.started == [[0.0]]


async def test_arrivals_while_the_model_runs_form_the_next_batch(natural: QueryBatcher[str], model: Model,
                                                                 clock: FakeClock) -> None:
    model.gate.clear()
    first = await submit(natural, "0")
    await clock.advance(0.01)
    later = await submit(natural, "1")
    await clock.advance(0.01)
    later += await submit(natural, "2", "3")
    await clock.advance(0.01)
    assert model.batches == [["0"]]  # the model is busy: the three wait together, not one by one
    assert natural.depth == 3
    model.gate.set()
    await settle()
    assert model.batches == [["0"], ["1", "2", "3"]]
    await asyncio.gather(*first, *later)


async def test_a_full_batch_is_formed_while_the_model_runs(natural: QueryBatcher[str], model: Model,
                                                          clock: FakeClock) -> None:
    model.gate.clear()
    tasks = await submit(natural, "0")
    tasks += await submit(natural, *(str(n) for n in range(1, 7)))
    await clock.advance(0.01)
    assert model.batches == [["0"]]
    assert natural.depth == 2  # 1-4 formed into the one waiting batch, 5-6 still queued
    model.gate.set()
    await settle()
    assert model.batches == [["0"], ["1", "2", "3", "4"], ["5", "6"]]
    await asyncio.gather(*tasks)
