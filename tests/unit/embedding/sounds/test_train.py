"""The training script end to end at toy size: it saves a loadable, reproducible checkpoint."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from services.embedding.clap import ClapEmbedder
from services.embedding.hf import AutoProcessor
from services.embedding.sounds import world
from services.embedding.sounds.train import TrainConfig, all_captions, check_geometry, run

TOY = TrainConfig(train_clips=32, steps=2, batch_size=8, warmup_steps=1, eval_per_class=1)


def test_toy_training_saves_a_loadable_reproducible_model(tmp_path: Path) -> None:
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    result = run(TOY, tmp_path / "a")
    run(TOY, tmp_path / "b")
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, deterministic)
    for name in ("model.safetensors", "config.json", "preprocessor_config.json", "processor_config.json",
                 "tokenizer.json", "training.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert set(result["held_out"]) >= {"audio_to_text_r1", "text_to_audio_r1", "audio_to_audio_r1"}
    assert json.loads((tmp_path / "a" / "training.json").read_text())["config"]["steps"] == 2
    processor = AutoProcessor.from_pretrained(str(tmp_path / "a"))
    assert (processor.feature_extractor.sampling_rate, processor.feature_extractor.padding) == (16_000, "pad")
    emb = ClapEmbedder.from_pretrained(tmp_path / "a", space="clap", device="cpu")
    clip = world.generate(1, seed=0, split="val")[0].audio
    assert emb.embed_texts(["three short high beeps"]).shape == emb.embed_audio([clip]).shape == (1, 64)
    assert emb.window == 2 * world.SAMPLING_RATE


def test_every_generated_caption_is_known_with_its_attributes() -> None:
    captions = all_captions()
    for s in world.generate(60, seed=9, split="train"):
        i = captions.index[s.caption]
        assert world.describes(captions.named[i], world.attributes(s.sound, s.loudness))


def test_the_shipped_geometry_fits_and_a_wrong_one_is_explained() -> None:
    check_geometry(TrainConfig())
    with pytest.raises(ValueError, match="frames exceed"):
        check_geometry(replace(TrainConfig(), hop=128))
    with pytest.raises(ValueError, match="smaller than a window"):
        check_geometry(replace(TrainConfig(), depths=(2, 2, 2), audio_heads=(2, 4, 8)))
    assert np.isclose(1 / len(world.sounds()), 1 / 28)
