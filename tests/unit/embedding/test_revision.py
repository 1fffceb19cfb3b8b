"""Every vector records the model that made it, with its revision when the checkpoint has one."""

from __future__ import annotations

from pathlib import Path

from services.config import ModelSettings
from services.embedding.model import load_embedder


def test_a_pinned_revision_is_recorded_with_the_model_id(tiny_clip_dir: Path, tiny_clap_dir: Path) -> None:
    clip = load_embedder(ModelSettings(name=str(tiny_clip_dir), revision="v2", device="cpu"))
    assert clip.model_id == f"{tiny_clip_dir}@v2"
    clap = load_embedder(ModelSettings(name=str(tiny_clap_dir), space="clap", revision="a1b2c3", device="cpu"))
    assert clap.model_id == f"{tiny_clap_dir}@a1b2c3"


def test_a_local_or_builtin_model_without_a_revision_is_recorded_by_its_name(tiny_clip_dir: Path) -> None:
    assert load_embedder(ModelSettings(name=str(tiny_clip_dir), device="cpu")).model_id == str(tiny_clip_dir)
    assert load_embedder(ModelSettings(device="cpu")).model_id == "builtin:shapes-clip"
