"""Retrieval quality of a model on held-out shapes images: what train.py prints and the tests check.

Queries are class-level. Single shapes (world.py): the text of a class is its canonical caption ("a photo of
a red circle"), and a hit is an image of the same colour and shape. Scenes (scenes.py): the text of a class
names every attribute of every thing and the relation, and a hit is anything that text is true of.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from services.embedding.model import Embedder, Vectors
from services.embedding.shapes import scenes, world


@dataclass(frozen=True)
class ShapesReport:
    image_to_text_r1: float  # images whose best caption (of all classes) is their own class
    text_to_image_r1: float  # class captions whose best image is of that class
    text_to_image_p10: float  # share of the 10 best images that are of the queried class
    image_to_image_r1: float  # images whose nearest other image has the same colour and shape
    composed_ok: float  # (image of c1 s) + text "c2": images of c2 s score above images of c1 s

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}


def classes() -> list[tuple[str, str]]:
    return [(c, s) for c in world.COLORS for s in world.SHAPES]


def compose(image_vector: Vectors, text_vector: Vectors, weight: float = 0.5) -> Vectors:
    """normalize((1 - weight) * image + weight * text): an image query nudged towards a text."""
    mixed = (1 - weight) * image_vector + weight * text_vector
    unit: Vectors = (mixed / np.linalg.norm(mixed, axis=-1, keepdims=True)).astype(np.float32)
    return unit


def _composed_ok(vectors: Vectors, labels: list[tuple[str, str]], color_vectors: dict[str, Vectors]) -> float:
    """Share of (image, other colour) pairs where the composed query prefers the other colour's images."""
    label_arr = np.array([f"{c}/{s}" for c, s in labels])
    outcomes = []
    for i, (color, shape) in enumerate(labels):
        source = label_arr == f"{color}/{shape}"
        source[i] = False  # the query image itself would always win
        for other in world.COLORS:
            target = label_arr == f"{other}/{shape}"
            if other == color or not target.any() or not source.any():
                continue
            scores = vectors @ compose(vectors[i], color_vectors[other])
            outcomes.append(float(scores[target].mean() > scores[source].mean()))
    return float(np.mean(outcomes)) if outcomes else 0.0


def evaluate(embedder: Embedder, samples: list[world.ShapeSample]) -> ShapesReport:
    """Class-level retrieval metrics of ``embedder`` on ``samples`` (use held-out ones)."""
    labels = [(s.color, s.shape) for s in samples]
    vectors = embedder.embed_images([s.image for s in samples])
    names = classes()
    texts = embedder.embed_texts([world.canonical_caption(c, s) for c, s in names])
    label_idx = np.array([names.index(lab) for lab in labels])

    i2t = float(np.mean((vectors @ texts.T).argmax(axis=1) == label_idx))
    t2i_scores = texts @ vectors.T
    ranked = np.argsort(-t2i_scores, axis=1)
    t2i = float(np.mean(label_idx[ranked[:, 0]] == np.arange(len(names))))
    p10 = float(np.mean(label_idx[ranked[:, :10]] == np.arange(len(names))[:, None]))
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    i2i = float(np.mean(label_idx[sims.argmax(axis=1)] == label_idx))
    color_vectors = dict(zip(world.COLORS, embedder.embed_texts(list(world.COLORS)), strict=True))
    return ShapesReport(i2t, t2i, p10, i2i, _composed_ok(vectors, labels, color_vectors))


@dataclass(frozen=True)
class ScenesReport:
    """Class-level figures on held-out scenes (scenes.generate_classes): a class is every attribute of every
    thing and the relation; a hit is any image or caption the query's claim is true of."""

    image_to_text_r1: float  # images whose best class caption is true of them
    text_to_image_r1: float  # class captions whose best image they are true of
    image_to_image_r1: float  # images whose nearest other image is of the same class

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}


def evaluate_scenes(embedder: Embedder, samples: list[scenes.SceneSample]) -> ScenesReport:
    """The scenes' figures of ``embedder`` (use held-out samples of several pictures per class)."""
    vectors = embedder.embed_images([s.image for s in samples])
    classes_ = list(dict.fromkeys(s.scene.key for s in samples))
    first = {s.scene.key: s.scene for s in reversed(samples)}
    claims = [scenes.full_claim(first[k]) for k in classes_]
    texts = embedder.embed_texts([scenes.canonical_caption(first[k]) for k in classes_])
    truth = np.array([[c.true_of(s.scene) for c in claims] for s in samples])  # (images, classes)
    i2t = float(np.mean(truth[np.arange(len(samples)), (vectors @ texts.T).argmax(axis=1)]))
    t2i = float(np.mean(truth[(texts @ vectors.T).argmax(axis=1), np.arange(len(classes_))]))
    keys = np.array([s.scene.key for s in samples])
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    i2i = float(np.mean(keys[sims.argmax(axis=1)] == keys))
    return ScenesReport(i2t, t2i, i2i)
