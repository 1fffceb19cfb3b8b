"""Retrieval quality of a model on held-out sounds: what train.py prints and the tests check.

Queries are class-level: the text of a class is its canonical caption ("three short high beeps"), and a hit
is a clip of that class. With 28 classes a model that guesses scores a Recall@1 of 1/28 (``chance_r1``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from services.embedding.model import Embedder
from services.embedding.sounds import world


@dataclass(frozen=True)
class SoundsReport:
    audio_to_text_r1: float  # clips whose best caption (of all classes) is their own class
    text_to_audio_r1: float  # class captions whose best clip is of that class
    text_to_audio_p10: float  # share of the 10 best clips that are of the queried class
    audio_to_audio_r1: float  # clips whose nearest other clip is of the same class
    audio_to_audio_kind_r1: float  # clips whose nearest other clip is of the same kind (tone, beeps, noise...)
    loudness_ok: float  # clips (silence aside) nearer to "a loud sound" than to "a quiet sound" iff loud
    chance_r1: float  # Recall@1 of a guess: 1 / number of classes

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}


def evaluate(embedder: Embedder, samples: list[world.SoundSample]) -> SoundsReport:
    """Class-level retrieval metrics of ``embedder`` on ``samples`` (use held-out ones)."""
    names = [world.canonical_caption(s) for s in world.sounds()]
    vectors = embedder.embed_audio([s.audio for s in samples])
    texts = embedder.embed_texts(names)
    label_idx = np.array([names.index(s.label) for s in samples])

    a2t = float(np.mean((vectors @ texts.T).argmax(axis=1) == label_idx))
    ranked = np.argsort(-(texts @ vectors.T), axis=1)
    queried = np.arange(len(names))
    t2a = float(np.mean(label_idx[ranked[:, 0]] == queried))
    p10 = float(np.mean(label_idx[ranked[:, :10]] == queried[:, None]))
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(axis=1)
    a2a = float(np.mean(label_idx[nearest] == label_idx))
    kinds = np.array([s.sound.kind for s in samples])
    a2a_kind = float(np.mean(kinds[nearest] == kinds))
    return SoundsReport(a2t, t2a, p10, a2a, a2a_kind, _loudness_ok(embedder, samples, vectors), 1 / len(names))


def _loudness_ok(embedder: Embedder, samples: list[world.SoundSample], vectors: np.ndarray) -> float:
    loud, quiet = embedder.embed_texts(["a loud sound", "a quiet sound"])
    audible = np.array([s.loudness != "silent" for s in samples])
    is_loud = np.array([s.loudness == "loud" for s in samples])
    says_loud = vectors @ loud > vectors @ quiet
    return float(np.mean(says_loud[audible] == is_loud[audible])) if audible.any() else 0.0
