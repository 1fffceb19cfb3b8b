"""Fixtures of the embedding tests: tiny random checkpoints of every family, the shipped shapes and sounds models."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.config import BUILTIN_SOUNDS_MODEL, ModelSettings
from services.embedding.clap import ClapEmbedder
from services.embedding.model import HFEmbedder, load_embedder
from services.embedding.shapes import world
from services.embedding.sounds import world as sounds_world
from tests.harness.tiny_models import save_tiny_random_model


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_random_model("clip", tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_random_model("siglip", tmp_path_factory.mktemp("tiny-siglip"))


@pytest.fixture(scope="session")
def tiny_clap_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_random_model("clap", tmp_path_factory.mktemp("tiny-clap"))


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_dir: Path) -> HFEmbedder:
    return HFEmbedder.from_pretrained(tiny_clip_dir, space="clip", device="cpu")


@pytest.fixture(scope="session")
def tiny_clap(tiny_clap_dir: Path) -> ClapEmbedder:
    return ClapEmbedder.from_pretrained(tiny_clap_dir, space="clap", device="cpu")


@pytest.fixture(scope="session")
def shapes_model() -> HFEmbedder:
    """The shipped model, loaded the way the services load it (default settings, on the CPU)."""
    model = load_embedder(ModelSettings(device="cpu"))
    assert isinstance(model, HFEmbedder)
    return model


@pytest.fixture(scope="session")
def sounds_model() -> ClapEmbedder:
    """The shipped sounds model, loaded the way the services load it (by its builtin name, on the CPU)."""
    model = load_embedder(ModelSettings(name=BUILTIN_SOUNDS_MODEL, space="clap", device="cpu"))
    assert isinstance(model, ClapEmbedder)
    return model


@pytest.fixture(scope="session")
def held_out() -> list[world.ShapeSample]:
    """Fresh validation images (a seed the training never used), 5 of every colour and shape."""
    return world.generate_balanced(5, seed=20_240_601, split="val")


@pytest.fixture(scope="session")
def held_out_sounds() -> list[sounds_world.SoundSample]:
    """Fresh validation clips (a seed the training never used), 5 of every class."""
    return sounds_world.generate_balanced(5, seed=20_240_601, split="val")
