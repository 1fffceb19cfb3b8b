"""The training script end to end at toy size: it saves a loadable, reproducible checkpoint."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from services.embedding import vocab
from services.embedding.hf import AutoProcessor
from services.embedding.model import HFEmbedder
from services.embedding.shapes import scenes, world
from services.embedding.shapes.train import Batches, TrainConfig, _flipped, all_captions, build_processor, run

TOY = TrainConfig(train_images=48, scene_images=48, steps=2, batch_size=16, warmup_steps=1, eval_per_class=2,
                  eval_scene_classes=4, eval_scene_per_class=2)


def test_toy_training_saves_a_loadable_reproducible_model(tmp_path: Path) -> None:
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    result = run(TOY, tmp_path / "a")
    run(TOY, tmp_path / "b")
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, deterministic)
    a, b = ((tmp_path / d / "model.safetensors").read_bytes() for d in "ab")
    assert a == b
    assert set(result["held_out"]) >= {"image_to_text_r1", "text_to_image_r1"}
    assert set(result["held_out_scenes"]) == {"image_to_text_r1", "text_to_image_r1", "image_to_image_r1"}
    assert json.loads((tmp_path / "a" / "training.json").read_text())["config"]["steps"] == 2
    AutoProcessor.from_pretrained(str(tmp_path / "a"))
    emb = HFEmbedder.from_pretrained(tmp_path / "a", space="clip", device="cpu")
    assert emb.embed_texts(["a photo of a red circle"]).shape == (1, TOY.projection_dim)


def test_every_generated_caption_is_known_with_its_attributes() -> None:
    captions = all_captions()
    for s in world.generate(50, seed=9, split="train"):
        i = captions.index[s.caption]
        assert world.describes(captions.colors[i], captions.shapes[i], s.color, s.shape)


def test_a_batch_matches_every_image_with_every_caption_true_of_it(tmp_path: Path) -> None:
    tokenizer = vocab.clip_tokenizer(all_captions().texts + scenes.vocabulary(), max_length=TOY.max_text)
    batches = Batches(TOY, build_processor(TOY, tokenizer, tmp_path))
    pixels, ids, mask, match = batches.next()
    assert pixels.shape[0] == match.shape[0] == TOY.batch_size and ids.shape == mask.shape
    assert match.shape[1] == ids.shape[0]  # one column per distinct caption
    assert bool((match.sum(dim=1) >= 1).all()) and bool((match.sum(dim=0) >= 1).all())


def test_a_flip_mirrors_the_relation() -> None:
    scene = scenes.Scene((scenes.Thing("red", "circle", "small", False), scenes.Thing("blue", "star", "large", True)),
                         "left of")
    assert _flipped(scene, h=True, v=False).relation == "right of"
    assert _flipped(scene, h=False, v=True).relation == "left of"
    assert _flipped(replace(scene, relation="above"), h=True, v=True).relation == "below"
