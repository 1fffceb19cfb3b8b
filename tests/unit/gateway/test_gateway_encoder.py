"""The gateway's QueryEncoder over the tiny real model: the text cache, and every xmodal_query_* series moving
as it should. Time comes from a fake clock (the batcher's injected one): no real waiting, no timed
assertions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image
from prometheus_client import REGISTRY

from services.embedding.model import Embedder, HFEmbedder, Vectors
from services.errors import Overloaded
from services.gateway.deadline import request_deadline
from services.gateway.encoder import QueryEncoder
from tests.unit.embedding.fakeclock import FakeClock, settle

WAIT_S = 1.0  # the batcher's max_wait_s on the fake clock


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass
class Figures:
    """The query series of one modality (and the failure counters) at one moment."""

    depth: float
    batches: float
    batched: float
    waits: float
    waited: float
    inferences: float
    inferred: float
    overloaded: float
    model_error: float
    timeout: float

    @classmethod
    def now(cls, modality: str = "text") -> Figures:
        m = {"modality": modality}
        return cls(
            depth=value("xmodal_query_queue_depth", **m),
            batches=value("xmodal_query_batch_size_count", **m), batched=value("xmodal_query_batch_size_sum", **m),
            waits=value("xmodal_query_queue_seconds_count", **m), waited=value("xmodal_query_queue_seconds_sum", **m),
            inferences=value("xmodal_query_inference_seconds_count", **m),
            inferred=value("xmodal_query_inference_seconds_sum", **m),
            overloaded=value("xmodal_query_failures_total", cause="overloaded"),
            model_error=value("xmodal_query_failures_total", cause="model_error"),
            timeout=value("xmodal_query_failures_total", cause="timeout"),
        )


class Timed:
    """The tiny model, taking ``seconds`` of the fake clock per call (or raising ``fail_with``)."""

    def __init__(self, inner: Embedder, clock: FakeClock, seconds: float = 0.0) -> None:
        self.inner, self.clock, self.seconds = inner, clock, seconds
        self.model_id, self.space, self.dim, self.device = inner.model_id, inner.space, inner.dim, inner.device
        self.modalities, self.sampling_rate = inner.modalities, inner.sampling_rate
        self.fail_with: Exception | None = None
        self.calls: list[int] = []

    def _run(self, n: int) -> None:
        self.calls.append(n)
        self.clock.now += self.seconds  # runs on the inference thread while the loop awaits it
        if self.fail_with is not None:
            raise self.fail_with

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        self._run(len(texts))
        return self.inner.embed_texts(texts)

    def embed_images(self, images: Sequence[Image.Image]) -> Vectors:
        self._run(len(images))
        return self.inner.embed_images(images)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def model(tiny_embedder: HFEmbedder, clock: FakeClock) -> Timed:
    return Timed(tiny_embedder, clock, seconds=0.125)


@pytest.fixture
async def encoder(model: Timed, clock: FakeClock) -> AsyncIterator[QueryEncoder]:
    enc = QueryEncoder(model, max_batch=4, max_wait_s=WAIT_S, queue_max=2, cache_size=8, clock=clock,
                       sleep=clock.sleep)
    yield enc
    await enc.close()


async def queued(tasks: Sequence[asyncio.Task[list[float]]]) -> None:
    await settle()
    assert all(not t.done() for t in tasks)


async def test_text_vectors_are_cached_and_fresh_lists(encoder: QueryEncoder, model: Timed, clock: FakeClock,
                                                       tiny_embedder: HFEmbedder) -> None:
    hits, misses = value("xmodal_query_cache_total", result="hit"), value("xmodal_query_cache_total", result="miss")
    first = asyncio.create_task(encoder.encode_text("a red circle"))
    await settle()
    await clock.advance(WAIT_S)
    vector = await first
    again = await encoder.encode_text("a red circle")  # no batch, no model call
    assert again == vector and again is not vector
    assert model.calls == [1]
    np.testing.assert_allclose(vector, tiny_embedder.embed_texts(["a red circle"])[0], atol=1e-5)
    assert value("xmodal_query_cache_total", result="miss") == misses + 1
    assert value("xmodal_query_cache_total", result="hit") == hits + 1
    assert (encoder.model_id, encoder.space) == (tiny_embedder.model_id, "clip")


async def test_queue_depth_batch_size_queue_wait_and_inference_time(encoder: QueryEncoder,
                                                                    clock: FakeClock) -> None:
    before = Figures.now()
    first = asyncio.create_task(encoder.encode_text("first"))
    await settle()
    await clock.advance(0.25)
    second = asyncio.create_task(encoder.encode_text("second"))
    await settle()
    assert Figures.now().depth == 2  # both queued, the batch not yet due
    await clock.advance(0.75)  # max_wait after the first: one batch of two goes to the model
    await asyncio.gather(first, second)
    after = Figures.now()
    assert after.depth == 0
    assert (after.batches - before.batches, after.batched - before.batched) == (1, 2)
    assert after.waits - before.waits == 2
    assert after.waited - before.waited == pytest.approx(1.0 + 0.75)  # each query's own wait
    assert after.inferences - before.inferences == 1
    assert after.inferred - before.inferred == pytest.approx(0.125)  # the model's time on the clock


async def test_images_are_counted_under_their_modality(encoder: QueryEncoder, clock: FakeClock,
                                                       tiny_embedder: HFEmbedder) -> None:
    before, text_before = Figures.now("image"), Figures.now("text")
    task = asyncio.create_task(encoder.encode_image(Image.new("RGB", (32, 32), "red")))
    await settle()
    assert Figures.now("image").depth == 1
    await clock.advance(WAIT_S)
    assert len(await task) == tiny_embedder.dim
    after = Figures.now("image")
    assert after.batches - before.batches == 1
    assert after.waited - before.waited == pytest.approx(WAIT_S)
    assert Figures.now("text").batches == text_before.batches


async def test_a_full_queue_counts_overloaded(encoder: QueryEncoder, clock: FakeClock) -> None:
    before = Figures.now()
    tasks = [asyncio.create_task(encoder.encode_text(t)) for t in ("a", "b")]  # queue_max 2
    await queued(tasks)
    with pytest.raises(Overloaded):
        await encoder.encode_text("c")
    assert Figures.now().overloaded == before.overloaded + 1
    await clock.advance(WAIT_S)
    await asyncio.gather(*tasks)


async def test_a_model_error_counts_each_query_it_failed(encoder: QueryEncoder, model: Timed,
                                                         clock: FakeClock) -> None:
    before = Figures.now()
    model.fail_with = RuntimeError("device lost")
    tasks = [asyncio.create_task(encoder.encode_text(t)) for t in ("x", "y")]
    await queued(tasks)
    await clock.advance(WAIT_S)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
    after = Figures.now()
    assert after.model_error == before.model_error + 2
    assert after.inferences == before.inferences  # a failed batch has no inference time
    assert not encoder.cache.get("x")


async def request(encoder: QueryEncoder, text: str) -> list[float]:
    """A search request's part of the work: embed ``text`` under the request's deadline (as the error
    middleware sets it), which passes while the query is queued."""
    async with request_deadline(None) as deadline:
        deadline.reschedule(asyncio.get_running_loop().time())  # due now: fires at the query's first wait
        return await encoder.encode_text(text)


async def test_a_deadline_passing_while_queued_counts_a_timeout(encoder: QueryEncoder) -> None:
    before = Figures.now()
    with pytest.raises(TimeoutError):
        await request(encoder, "too late")
    await settle()
    after = Figures.now()
    assert after.timeout == before.timeout + 1
    assert after.depth == 0 and encoder.texts.depth == 0  # dropped from the queue at once
    assert after.batches == before.batches  # never reached the model


async def test_a_cancel_that_is_not_the_deadline_is_no_timeout(encoder: QueryEncoder) -> None:
    before = Figures.now()
    task = asyncio.create_task(encoder.encode_text("gone"))
    await queued([task])
    task.cancel()
    await settle()
    assert task.cancelled()
    assert Figures.now().timeout == before.timeout
