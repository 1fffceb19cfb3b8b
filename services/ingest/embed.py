"""Run the model over a group of inputs; isolate the input that crashes it instead of failing the batch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np

from services.errors import XmodalError

EmbedFn = Callable[[list[Any]], Awaitable[np.ndarray]]


async def embed_isolating_poison(
    run: EmbedFn, inputs: Sequence[Any]
) -> tuple[list[list[float] | None], dict[int, str]]:
    """Embed ``inputs``; on a crash, split the group in halves until the crashing inputs stand alone.

    Returns the vectors (None where an input is poison) and index -> error text of the poison inputs.
    Retriable errors (the device is busy, the queue is full) propagate: they are not the input's fault.
    """
    vectors: list[list[float] | None] = [None] * len(inputs)
    poisoned: dict[int, str] = {}
    await _embed_range(run, list(inputs), 0, vectors, poisoned)
    return vectors, poisoned


async def _embed_range(
    run: EmbedFn, inputs: list[Any], start: int, out: list[list[float] | None], poisoned: dict[int, str]
) -> None:
    try:
        result = await run(inputs)
    except XmodalError as exc:
        if exc.retriable:
            raise
        error: Exception = exc
    except Exception as exc:  # noqa: BLE001 (a model or decoder crash is the input's fault: isolate it)
        error = exc
    else:
        for i, row in enumerate(np.asarray(result, dtype=np.float32)):
            out[start + i] = row.tolist()
        return
    if len(inputs) == 1:
        poisoned[start] = f"the model failed on this input, also alone: {type(error).__name__}: {error}"
        return
    mid = len(inputs) // 2
    await _embed_range(run, inputs[:mid], start, out, poisoned)
    await _embed_range(run, inputs[mid:], start + mid, out, poisoned)
