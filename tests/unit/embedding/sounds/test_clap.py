"""The SHIPPED sounds model, loaded through load_embedder by its builtin name, on freshly generated clips.

Its held-out figures are recomputed with quality.py on the clips training.json names, and thresholds on a
fresh seed sit a little below what the model scores there, so they catch a broken model or broken loading,
not noise.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from services.embedding.clap import ClapEmbedder
from services.embedding.model import SOUNDS_MODEL_DIR
from services.embedding.sounds import quality, world


@pytest.fixture(scope="module")
def gallery(sounds_model: ClapEmbedder,
            held_out_sounds: list[world.SoundSample]) -> tuple[np.ndarray, np.ndarray]:
    vectors = sounds_model.embed_audio([s.audio for s in held_out_sounds])
    return vectors, np.array([s.label for s in held_out_sounds])


def test_the_shipped_figures_are_what_quality_py_measures(sounds_model: ClapEmbedder) -> None:
    recorded = json.loads((SOUNDS_MODEL_DIR / "training.json").read_text())
    config = recorded["config"]
    held_out = world.generate_balanced(config["eval_per_class"], seed=config["eval_seed"], split="val")
    measured = quality.evaluate(sounds_model, held_out).as_dict()
    # A near tie may rank differently on another CPU: allow one text query (1/28) of difference.
    assert measured == pytest.approx(recorded["held_out"], abs=0.04)


def test_the_shipped_model_is_small_and_hears_16_khz(sounds_model: ClapEmbedder) -> None:
    assert (SOUNDS_MODEL_DIR / "model.safetensors").stat().st_size < 4_000_000
    assert (sounds_model.sampling_rate, sounds_model.window, sounds_model.modalities) == (
        world.SAMPLING_RATE, 2 * world.SAMPLING_RATE, {"audio", "text"})


@pytest.mark.parametrize("query", ["a low hum", "a high buzz", "white noise", "brown noise", "a rising siren",
                                   "a falling siren", "silence"])
def test_text_query_ranks_its_class_first(sounds_model: ClapEmbedder, gallery: tuple[np.ndarray, np.ndarray],
                                          query: str) -> None:
    vectors, labels = gallery
    ranked = labels[np.argsort(-(vectors @ sounds_model.embed_texts([query])[0]))]
    assert list(ranked[:3]) == [query] * 3, ranked[:8]


def test_clip_neighbours_share_their_kind(gallery: tuple[np.ndarray, np.ndarray],
                                          held_out_sounds: list[world.SoundSample]) -> None:
    vectors, _ = gallery
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    kinds = np.array([s.sound.kind for s in held_out_sounds])
    assert np.mean(kinds[sims.argmax(axis=1)] == kinds) >= 0.9


def test_a_long_recording_stays_near_what_it_repeats(sounds_model: ClapEmbedder) -> None:
    clip = world.render(random.Random(3), world.Noise("white"), "loud")
    long = np.tile(clip, 4)  # several windows
    texts = sounds_model.embed_texts(["white noise", "brown noise", "a low hum"])
    assert int(np.argmax(texts @ sounds_model.embed_audio([long])[0])) == 0


def test_recall_at_1_on_fresh_clips_is_far_above_chance(sounds_model: ClapEmbedder,
                                                        held_out_sounds: list[world.SoundSample]) -> None:
    report = quality.evaluate(sounds_model, held_out_sounds)
    assert report.text_to_audio_r1 >= 10 * report.chance_r1
    assert report.audio_to_text_r1 >= 10 * report.chance_r1
    assert report.audio_to_audio_kind_r1 >= 0.9
