"""The training script end to end at toy size: it saves a loadable, reproducible checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from services.embedding.hf import AutoProcessor
from services.embedding.model import HFEmbedder
from services.embedding.shapes import world
from services.embedding.shapes.train import TrainConfig, all_captions, run

TOY = TrainConfig(train_images=48, steps=2, batch_size=16, warmup_steps=1, eval_per_class=2)


def test_toy_training_saves_a_loadable_reproducible_model(tmp_path: Path) -> None:
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    result = run(TOY, tmp_path / "a")
    run(TOY, tmp_path / "b")
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, deterministic)
    a, b = ((tmp_path / d / "model.safetensors").read_bytes() for d in "ab")
    assert a == b
    assert set(result["held_out"]) >= {"image_to_text_r1", "text_to_image_r1"}
    assert json.loads((tmp_path / "a" / "training.json").read_text())["config"]["steps"] == 2
    AutoProcessor.from_pretrained(str(tmp_path / "a"))
    emb = HFEmbedder.from_pretrained(tmp_path / "a", space="clip", device="cpu")
    assert emb.embed_texts(["a photo of a red circle"]).shape == (1, TOY.projection_dim)


def test_every_generated_caption_is_known_with_its_attributes() -> None:
    captions = all_captions()
    for s in world.generate(50, seed=9, split="train"):
        i = captions.index[s.caption]
        assert world.describes(captions.colors[i], captions.shapes[i], s.color, s.shape)
