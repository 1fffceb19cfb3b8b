"""Inference off the event loop: one dedicated thread per device, and an async face for an `Embedder`.

A model call blocks for milliseconds to seconds; running it in the loop would stall every other task
(Kafka heartbeats, HTTP requests). Each device gets exactly one thread: calls for one GPU or for the CPU
queue up there instead of contending for the same device from several threads.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar, TypeVar

import numpy as np
import numpy.typing as npt
from PIL import Image

from services.config import ModelSettings
from services.embedding.errors import ModalityNotSupported
from services.embedding.model import Embedder, Vectors

T = TypeVar("T")
Item = TypeVar("Item")


class InferenceThread:
    """A single-worker executor bound to one device; `for_device` hands out one per device per process."""

    _by_device: ClassVar[dict[str, InferenceThread]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, device: str) -> None:
        self.device = device
        self.name = f"xmodal-infer-{device}"  # prefix of the thread's name, as seen in stack dumps
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)

    @classmethod
    def for_device(cls, device: str) -> InferenceThread:
        """The process's thread for ``device``, started on first use."""
        with cls._lock:
            thread = cls._by_device.get(device)
            if thread is None:
                thread = cls._by_device[device] = cls(device)
            return thread

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on this device's thread; the caller's loop stays free meanwhile."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def close(self) -> None:
        """Finish queued calls and stop the thread (it is also joined at interpreter exit)."""
        with self._lock:
            if self._by_device.get(self.device) is self:
                del self._by_device[self.device]
        self._executor.shutdown(wait=True)


def chunks(items: Sequence[Item], size: int) -> list[Sequence[Item]]:
    """``items`` in slices of at most ``size``.

    >>> [list(c) for c in chunks([1, 2, 3, 4, 5], 2)]
    [[1, 2], [3, 4], [5]]
    """
    return [items[i : i + size] for i in range(0, len(items), size)]


class AsyncEmbedder:
    """An `Embedder` behind its device's inference thread, fed at most ``max_batch`` inputs per call.

    Chunks are separate thread calls, so a large request does not hold the device while a small one waits
    for all of it; results keep the input order. A modality the model lacks raises `ModalityNotSupported`,
    even for no inputs.

    The worker's pipeline embeds through this. The gateway's queries do not: its QueryBatcher already
    packs them up to the batch limit and calls `InferenceThread.run` itself.
    """

    def __init__(self, embedder: Embedder, *, max_batch: int = ModelSettings.model_fields["max_batch"].default,
                 thread: InferenceThread | None = None) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.embedder = embedder
        self.max_batch = max_batch
        self.thread = thread or InferenceThread.for_device(embedder.device)

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    @property
    def space(self) -> str:
        return self.embedder.space

    @property
    def dim(self) -> int:
        return self.embedder.dim

    @property
    def device(self) -> str:
        return self.embedder.device

    @property
    def modalities(self) -> frozenset[str]:
        return self.embedder.modalities

    @property
    def sampling_rate(self) -> int | None:
        return self.embedder.sampling_rate

    async def _embed(self, modality: str, fn: Callable[[Sequence[Item]], Vectors], items: Sequence[Item]) -> Vectors:
        if modality not in self.modalities:
            raise ModalityNotSupported(self.model_id, modality, self.modalities)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [await self.thread.run(fn, part) for part in chunks(items, self.max_batch)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    async def embed_texts(self, texts: Sequence[str]) -> Vectors:
        return await self._embed("text", self.embedder.embed_texts, texts)

    async def embed_images(self, images: Sequence[Image.Image]) -> Vectors:
        return await self._embed("image", self.embedder.embed_images, images)

    async def embed_audio(self, clips: Sequence[npt.NDArray[np.float32]]) -> Vectors:
        """Mono float32 clips at ``sampling_rate``; each clip counts as one input, however long it is."""
        return await self._embed("audio", self.embedder.embed_audio, clips)
