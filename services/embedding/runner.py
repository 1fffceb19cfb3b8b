"""Inference off the event loop: one dedicated thread per device, and an async face for the model.

torch releases the GIL inside its kernels, so one thread per device keeps the device busy while the event
loop keeps consuming, fetching and writing; more threads per device would only contend for it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from services.embedding.model import Embedder

T = TypeVar("T")

_threads: dict[str, InferenceThread] = {}
_threads_lock = threading.Lock()


class InferenceThread:
    """A single worker thread bound to one device; every model call for that device runs on it."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"inference-{device}")

    @classmethod
    def for_device(cls, device: str) -> InferenceThread:
        """The process-wide thread of ``device`` (created on first use)."""
        with _threads_lock:
            if device not in _threads:
                _threads[device] = cls(device)
            return _threads[device]

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


class AsyncEmbedder:
    """Awaitable embeddings, chunked to ``max_batch`` inputs per forward pass."""

    def __init__(self, embedder: Embedder, *, max_batch: int = 64) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self.thread = InferenceThread.for_device(embedder.device)

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

    async def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return await self._chunked(self.embedder.embed_texts, list(texts))

    async def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return await self._chunked(self.embedder.embed_images, list(images))

    async def _chunked(self, fn: Callable[[Sequence[Any]], np.ndarray], items: list[Any]) -> np.ndarray:
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [await self.thread.run(fn, items[i:i + self.max_batch])
                 for i in range(0, len(items), self.max_batch)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
