"""What `xmodal migrate plan` measures of the new model here: that it loads, what it embeds, its dimension,
and how fast it embeds a sample of texts and images (a floor under the migration's time: fetching, decoding
and writing come on top, and the new side re-embeds every space)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from PIL import Image

from services.config import ModelSettings
from services.embedding.model import load_embedder

_SAMPLE = 32  # of each modality the model embeds


@dataclass(frozen=True)
class ModelProbe:
    model_id: str
    dim: int
    modalities: frozenset[str]
    per_s: float  # inputs embedded per second over the sample (batches of the space's max_batch)


def probe(settings: ModelSettings) -> ModelProbe:
    embedder = load_embedder(settings)
    texts = [f"a photo of a thing number {i}" for i in range(_SAMPLE)]
    images = [Image.new("RGB", (224, 224), (i * 7 % 256, i * 31 % 256, i * 61 % 256)) for i in range(_SAMPLE)]
    embedder.embed_texts(texts[:2])  # warm-up: the first call pays for lazy set-up
    started, inputs = time.perf_counter(), 0
    for at in range(0, _SAMPLE, settings.max_batch):
        embedder.embed_texts(texts[at : at + settings.max_batch])
        inputs += len(texts[at : at + settings.max_batch])
        if "image" in embedder.modalities:
            embedder.embed_images(images[at : at + settings.max_batch])
            inputs += len(images[at : at + settings.max_batch])
    elapsed = max(time.perf_counter() - started, 1e-6)
    return ModelProbe(embedder.model_id, embedder.dim, frozenset(embedder.modalities), inputs / elapsed)
