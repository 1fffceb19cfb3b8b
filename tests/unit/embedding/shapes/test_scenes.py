"""The harder shapes world: scenes, their captions and the truth of a caption about a scene."""

from __future__ import annotations

import random

import numpy as np
import pytest

from services.embedding.shapes import scenes
from services.embedding.shapes.scenes import Claim, Scene, Thing, Want

PAIR = Scene((Thing("red", "circle", "small", False), Thing("blue", "star", "large", True)), "left of", "dots")


@pytest.mark.parametrize(("text", "expected"), [
    ("a red circle", True), ("a small red circle", True), ("a large red circle", False),
    ("an outlined star", True), ("a filled star", False), ("a blue thing", True), ("a green thing", False),
    ("a red circle left of a blue star", True), ("a blue star right of a red circle", True),
    ("a red circle right of a blue star", False), ("a red circle above a blue star", False),
    ("a red circle and a blue star", True), ("a blue star and a red circle", True),
    ("a red circle and a red circle", False),  # two claims need two different things
])
def test_truth_of_a_caption(text: str, expected: bool) -> None:
    assert scenes.parse(text).true_of(PAIR) is expected


def test_every_random_caption_is_true_of_its_scene_and_parses_back() -> None:
    rng = random.Random(0)
    for _ in range(500):
        scene = scenes.random_scene(rng)
        text, claim = scenes.random_caption(rng, scene)
        assert claim.true_of(scene), (text, scene)
        assert scenes.parse(text) == claim, text
        assert "a a" not in text and "a o" not in text  # articles agree


def test_canonical_caption_says_everything_and_is_true_only_of_its_class() -> None:
    assert scenes.canonical_caption(PAIR) == "a photo of a small filled red circle left of a large outlined blue star"
    other = Scene((PAIR.things[0], Thing("blue", "star", "small", True)), "left of")
    assert scenes.full_claim(PAIR).true_of(PAIR) and not scenes.full_claim(PAIR).true_of(other)
    assert Claim((Want("red", "circle"),)).true_of(other)


def test_generation_is_deterministic_and_split_aware() -> None:
    a, b = scenes.generate(5, seed=1, split="train"), scenes.generate(5, seed=1, split="train")
    assert [s.scene for s in a] == [s.scene for s in b]
    assert all(np.array_equal(np.asarray(x.image), np.asarray(y.image)) for x, y in zip(a, b, strict=True))
    val = scenes.generate(5, seed=1, split="val")
    assert [s.scene for s in a] != [s.scene for s in val]


def test_classes_are_distinct_and_pictures_of_a_class_differ() -> None:
    classes = scenes.scene_classes(10, seed=3, split="val")
    assert len({c.key for c in classes}) == 10
    assert [len(c.things) for c in classes] == [1, 2] * 5
    pictures = scenes.generate_classes(4, 2, seed=3, split="val")
    assert [p.scene.key for p in pictures[::2]] == [c.key for c in classes[:4]]
    assert not np.array_equal(np.asarray(pictures[0].image), np.asarray(pictures[1].image))


def test_two_things_sit_where_their_relation_says() -> None:
    rng = random.Random(5)
    for relation in scenes.RELATIONS:
        scene = Scene((Thing("red", "square", "large", False), Thing("blue", "circle", "large", False)),
                      relation, "flat")
        image = np.asarray(scenes.draw_scene(rng, scene), dtype=np.float32)
        red = np.argwhere(np.linalg.norm(image - np.array([215, 35, 35]), axis=-1) < 60).mean(axis=0)
        blue = np.argwhere(np.linalg.norm(image - np.array([40, 80, 225]), axis=-1) < 60).mean(axis=0)
        dy, dx = red - blue  # rows, columns
        expected = {"left of": dx < 0, "right of": dx > 0, "above": dy < 0, "below": dy > 0}[relation]
        assert expected, (relation, dy, dx)


def test_unknown_words_parse_to_an_error() -> None:
    with pytest.raises(ValueError, match="names no colour"):
        scenes.parse("a photo of something")
