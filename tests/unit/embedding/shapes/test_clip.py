"""The SHIPPED shapes model, loaded through load_embedder(ModelSettings()), on freshly generated images.

The held-out images come from a seed and split the training never used. Thresholds sit a little below what
the shipped model scores (see services/embedding/shapes/clip/training.json), so they catch a broken model
or broken loading, not noise.
"""

from __future__ import annotations

import numpy as np
import pytest

from services.embedding.model import HFEmbedder
from services.embedding.shapes import quality, world


@pytest.fixture(scope="module")
def gallery(shapes_model: HFEmbedder, held_out: list[world.ShapeSample]) -> tuple[np.ndarray, np.ndarray]:
    vectors = shapes_model.embed_images([s.image for s in held_out])
    labels = np.array([f"{s.color} {s.shape}" for s in held_out])
    return vectors, labels


@pytest.mark.parametrize(("query", "label"), [
    ("a photo of a red circle", "red circle"),
    ("a photo of a blue square", "blue square"),
    ("a photo of a yellow star", "yellow star"),
    ("a photo of a green triangle", "green triangle"),
])
def test_text_query_ranks_its_class_first(shapes_model: HFEmbedder, gallery: tuple[np.ndarray, np.ndarray],
                                          query: str, label: str) -> None:
    vectors, labels = gallery
    per_class = int(np.sum(labels == label))
    ranked = labels[np.argsort(-(vectors @ shapes_model.embed_texts([query])[0]))]
    assert list(ranked[:per_class]) == [label] * per_class, ranked[: per_class + 3]


def test_single_attribute_queries_find_that_attribute(shapes_model: HFEmbedder,
                                                      held_out: list[world.ShapeSample],
                                                      gallery: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, _ = gallery
    for word, attr in [("green", "color"), ("purple", "color"), ("a circle", "shape"), ("a star", "shape")]:
        top = np.argsort(-(vectors @ shapes_model.embed_texts([word])[0]))[:10]
        wanted = word.removeprefix("a ")
        assert all(getattr(held_out[i], attr) == wanted for i in top), word


def test_image_neighbours_share_colour_and_shape(gallery: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, labels = gallery
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    nearest = labels[sims.argmax(axis=1)]
    assert np.mean(nearest == labels) >= 0.85
    assert np.mean([a.split()[0] == b.split()[0] for a, b in zip(nearest, labels, strict=True)]) >= 0.98


def test_image_plus_colour_word_moves_to_that_colour(shapes_model: HFEmbedder,
                                                     gallery: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, labels = gallery
    green = shapes_model.embed_texts(["green"])[0]
    for i in np.flatnonzero(labels == "red circle"):
        scores = vectors @ quality.compose(vectors[i], green)
        assert scores[labels == "green circle"].mean() > scores[labels == "red circle"].mean()
        assert labels[np.argmax(scores)] == "green circle"


def test_recall_at_1_on_held_out_images(shapes_model: HFEmbedder, held_out: list[world.ShapeSample]) -> None:
    report = quality.evaluate(shapes_model, held_out)
    assert report.image_to_text_r1 >= 0.9
    assert report.text_to_image_r1 >= 0.95
    assert report.composed_ok >= 0.9
