"""AsyncEmbedder and InferenceThread: model calls leave the event loop, one thread per device, in chunks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest
from PIL import Image

from services.embedding.clap import ClapEmbedder
from services.embedding.errors import ModalityNotSupported
from services.embedding.model import Embedder, HFEmbedder, Vectors
from services.embedding.runner import AsyncEmbedder, InferenceThread


class Recording:
    """A tiny model, noting each call's size and the thread it ran on."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_id, self.space, self.dim, self.device = inner.model_id, inner.space, inner.dim, "cpu"
        self.modalities, self.sampling_rate = inner.modalities, inner.sampling_rate
        self.calls: list[tuple[int, str]] = []

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        self.calls.append((len(texts), threading.current_thread().name))
        return self.inner.embed_texts(texts)

    def embed_images(self, images: Sequence[Image.Image]) -> Vectors:
        self.calls.append((len(images), threading.current_thread().name))
        return self.inner.embed_images(images)

    def embed_audio(self, clips: Sequence[np.ndarray]) -> Vectors:
        self.calls.append((len(clips), threading.current_thread().name))
        return self.inner.embed_audio(clips)


TEXTS = [f"a photo of {n} circles" for n in range(7)]


async def test_inputs_are_chunked_and_run_on_the_device_thread(tiny_clip: HFEmbedder) -> None:
    rec = Recording(tiny_clip)
    emb = AsyncEmbedder(rec, max_batch=3)
    vectors = await emb.embed_texts(TEXTS)
    np.testing.assert_allclose(vectors, tiny_clip.embed_texts(TEXTS), atol=1e-5)
    assert [n for n, _ in rec.calls] == [3, 3, 1]
    names = {name for _, name in rec.calls}
    assert len(names) == 1 and names.pop().startswith(emb.thread.name)
    assert (emb.model_id, emb.space, emb.dim, emb.device) == (rec.model_id, "clip", rec.dim, "cpu")


async def test_images_and_empty_inputs(tiny_clip: HFEmbedder) -> None:
    emb = AsyncEmbedder(tiny_clip, max_batch=2)
    images = [Image.new("RGB", (32, 32), c) for c in ("red", "green", "blue")]
    np.testing.assert_allclose(await emb.embed_images(images), tiny_clip.embed_images(images), atol=1e-5)
    assert (await emb.embed_texts([])).shape == (0, tiny_clip.dim)


def test_one_thread_per_device() -> None:
    cpu = InferenceThread.for_device("cpu")
    assert InferenceThread.for_device("cpu") is cpu
    assert InferenceThread.for_device("cuda:7") is not cpu
    InferenceThread.for_device("cuda:7").close()
    assert InferenceThread.for_device("cpu") is cpu


async def test_concurrent_callers_share_the_thread(tiny_clip: HFEmbedder) -> None:
    rec = Recording(tiny_clip)
    emb = AsyncEmbedder(rec, max_batch=64)
    results = await asyncio.gather(*(emb.embed_texts([t]) for t in TEXTS))
    assert len({name for _, name in rec.calls}) == 1
    np.testing.assert_allclose(np.concatenate(results), tiny_clip.embed_texts(TEXTS), atol=1e-5)



async def test_audio_is_chunked_by_clips_and_the_rate_passes_through(tiny_clap: ClapEmbedder) -> None:
    rec = Recording(tiny_clap)
    emb = AsyncEmbedder(rec, max_batch=2)
    rate = tiny_clap.sampling_rate
    assert rate is not None
    clips = [np.zeros(rate // 2, np.float32), np.ones(3 * rate, np.float32) * 0.1, np.zeros(rate, np.float32)]
    np.testing.assert_allclose(await emb.embed_audio(clips), tiny_clap.embed_audio(clips), atol=1e-5)
    assert [n for n, _ in rec.calls] == [2, 1]  # a long clip is one input, however many windows it has
    assert (emb.modalities, emb.sampling_rate) == ({"audio", "text"}, rate)


async def test_a_modality_the_model_lacks_is_refused_even_empty(tiny_clip: HFEmbedder) -> None:
    emb = AsyncEmbedder(tiny_clip)
    assert (emb.modalities, emb.sampling_rate) == ({"image", "text"}, None)
    with pytest.raises(ModalityNotSupported):
        await emb.embed_audio([])
