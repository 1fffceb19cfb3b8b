"""The shapes generator: deterministic, labelled, split-aware, with captions that match the labels."""

from __future__ import annotations

import random

import numpy as np
import pytest

from services.embedding.shapes import world


def test_same_seed_same_samples_other_split_other_samples() -> None:
    a = world.generate(6, seed=3, split="train")
    b = world.generate(6, seed=3, split="train")
    val = world.generate(6, seed=3, split="val")
    assert [(s.color, s.shape, s.caption) for s in a] == [(s.color, s.shape, s.caption) for s in b]
    assert all(np.array_equal(np.asarray(x.image), np.asarray(y.image)) for x, y in zip(a, b, strict=True))
    assert not any(np.array_equal(np.asarray(x.image), np.asarray(y.image)) for x, y in zip(a, val, strict=True))
    assert {s.split for s in a} == {"train"} and {s.split for s in val} == {"val"}


def test_balanced_set_has_every_colour_and_shape() -> None:
    samples = world.generate_balanced(2, seed=0, split="val")
    assert len(samples) == 2 * len(world.COLORS) * len(world.SHAPES)
    assert {(s.color, s.shape) for s in samples} == {(c, s) for c in world.COLORS for s in world.SHAPES}
    assert {"red", "green", "blue", "yellow"} <= set(world.COLORS)
    assert {"circle", "square", "triangle", "star"} <= set(world.SHAPES)


def test_images_are_rgb_of_the_fixed_size_and_show_their_colour() -> None:
    for s in world.generate(20, seed=5, split="val"):
        assert s.image.mode == "RGB" and s.image.size == (world.IMAGE_SIZE, world.IMAGE_SIZE)
        pixels = np.asarray(s.image, dtype=np.float32).reshape(-1, 3)
        target = np.array(world.COLORS[s.color], dtype=np.float32)
        # a good share of the pixels (the shape) sits near the named colour
        assert np.mean(np.linalg.norm(pixels - target, axis=1) < 60) > 0.03


def test_captions_name_only_true_attributes() -> None:
    rng = random.Random(0)
    for _ in range(200):
        text, color, shape = world.random_caption(rng, "orange", "star")
        assert color in (None, "orange") and shape in (None, "star") and (color or shape)
        assert (color is None or color in text) and (shape is None or shape in text)
        assert "a orange" not in text
    assert world.canonical_caption("red", "circle") == "a photo of a red circle"
    assert world.canonical_caption("orange", "star") == "a photo of an orange star"


@pytest.mark.parametrize(("text_color", "text_shape", "expected"), [
    ("red", "circle", True), ("red", None, True), (None, "circle", True),
    ("green", None, False), ("red", "square", False), (None, "star", False),
])
def test_describes(text_color: str | None, text_shape: str | None, expected: bool) -> None:
    assert world.describes(text_color, text_shape, "red", "circle") is expected


def test_unknown_shape_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown shape"):
        world.draw_image(random.Random(0), "red", "hexagon")
