"""The SHIPPED re-ranking model (builtin:shapes-clip-large) against the small retrieval model, on held-out
scenes of the harder world (services/embedding/shapes/scenes.py) drawn from a seed training never used.

Thresholds sit a little below what the shipped models score (their training.json): the large model reads
sizes, outlines and relations; the small one never learned them, which is why the demo re-ranks.
"""

from __future__ import annotations

import pytest

from services.config import BUILTIN_LARGE_MODEL, ModelSettings
from services.embedding.model import HFEmbedder, load_embedder
from services.embedding.shapes import quality, scenes, world


@pytest.fixture(scope="module")
def large_model() -> HFEmbedder:
    model = load_embedder(ModelSettings(name=BUILTIN_LARGE_MODEL, device="cpu"))
    assert isinstance(model, HFEmbedder)
    return model


@pytest.fixture(scope="module")
def held_out_scenes() -> list[scenes.SceneSample]:
    return scenes.generate_classes(64, 3, seed=20_240_601, split="val")


def test_the_large_model_reads_scenes(large_model: HFEmbedder, held_out_scenes: list[scenes.SceneSample]) -> None:
    report = quality.evaluate_scenes(large_model, held_out_scenes)
    assert report.text_to_image_r1 >= 0.85
    assert report.image_to_text_r1 >= 0.75
    assert report.image_to_image_r1 >= 0.75


def test_the_small_model_does_not_and_the_large_one_still_knows_single_shapes(
        large_model: HFEmbedder, shapes_model: HFEmbedder, held_out_scenes: list[scenes.SceneSample],
        held_out: list[world.ShapeSample]) -> None:
    small = quality.evaluate_scenes(shapes_model, held_out_scenes)
    assert small.text_to_image_r1 < 0.5 and small.image_to_text_r1 < 0.5
    single = quality.evaluate(large_model, held_out)
    assert single.text_to_image_r1 >= 0.95 and single.image_to_text_r1 >= 0.85


def test_its_name_and_size(large_model: HFEmbedder, shapes_model: HFEmbedder) -> None:
    assert large_model.model_id == BUILTIN_LARGE_MODEL and large_model.modalities == {"image", "text"}
    assert large_model.dim == 128 and shapes_model.dim == 64
