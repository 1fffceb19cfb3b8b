"""ClapEmbedder on a tiny random CLAP checkpoint: the real from_pretrained path, windows, padding, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from services.config import ModelSettings
from services.embedding.clap import ClapEmbedder
from services.embedding.errors import ModalityNotSupported, ModelLoadError
from services.embedding.model import Embedder, HFEmbedder, load_embedder
from services.errors import ConfigError
from tests.harness.tiny_models import CLAP_SAMPLING_RATE, CLAP_WINDOW_S, save_tiny_random_model

TEXTS = ["a low hum", "three short high beeps", "a rising siren", "x"]
WINDOW = CLAP_SAMPLING_RATE * CLAP_WINDOW_S


def _tone(hz: float, samples: int, amplitude: float = 0.3) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * hz * np.arange(samples) / CLAP_SAMPLING_RATE)).astype(np.float32)


def _noise(samples: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.1, samples).astype(np.float32)


def _assert_unit_rows(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.shape == (n, dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_loads_and_embeds_texts_and_audio_in_one_space(tiny_clap_dir: Path, tiny_clap: ClapEmbedder) -> None:
    assert isinstance(tiny_clap, Embedder)
    assert (tiny_clap.device, tiny_clap.space, tiny_clap.model_id) == ("cpu", "clap", str(tiny_clap_dir))
    assert tiny_clap.modalities == {"audio", "text"}
    assert (tiny_clap.sampling_rate, tiny_clap.window) == (CLAP_SAMPLING_RATE, WINDOW)
    _assert_unit_rows(tiny_clap.embed_texts(TEXTS), len(TEXTS), tiny_clap.dim)
    clips = [_tone(220, WINDOW // 3), _noise(WINDOW), _tone(1500, 3 * WINDOW + 17), np.zeros(1, np.float32)]
    _assert_unit_rows(tiny_clap.embed_audio(clips), len(clips), tiny_clap.dim)
    assert tiny_clap.dim == 16  # the tiny model's projection_dim, for texts and audio alike


def test_a_long_clip_is_the_mean_of_its_windows(tiny_clap: ClapEmbedder) -> None:
    a, b = _tone(300, WINDOW), _noise(WINDOW)
    both = tiny_clap.embed_audio([np.concatenate([a, b])])[0]
    alone = tiny_clap.embed_audio([a, b])
    np.testing.assert_allclose(both, _unit(alone.sum(axis=0)), atol=1e-5)


def test_the_last_window_ends_where_the_clip_ends(tiny_clap: ClapEmbedder) -> None:
    clip = np.concatenate([_tone(300, WINDOW), _noise(WINDOW), _tone(900, WINDOW // 2)])
    windows = tiny_clap.windows(clip)
    assert [len(w) for w in windows] == [WINDOW] * 3
    np.testing.assert_array_equal(windows[2], clip[-WINDOW:])  # half noise, half tone: real audio, no padding
    parts = tiny_clap.embed_audio(windows)
    np.testing.assert_allclose(tiny_clap.embed_audio([clip])[0], _unit(parts.sum(axis=0)), atol=1e-5)


def test_a_short_clip_is_padded_as_the_feature_extractor_says(tiny_clap: ClapEmbedder) -> None:
    # The tiny model pads like LAION's ("repeatpad"): a quarter window is heard four times over.
    short = _tone(440, WINDOW // 4)
    np.testing.assert_allclose(tiny_clap.embed_audio([short]), tiny_clap.embed_audio([np.tile(short, 4)]),
                               atol=1e-5)
    assert tiny_clap.windows(short)[0] is short  # one window, given to the feature extractor as it is


def test_batching_does_not_change_vectors(tiny_clap: ClapEmbedder) -> None:
    clips = [_tone(220, WINDOW // 2), _noise(2 * WINDOW + 5, seed=1), _tone(2000, WINDOW)]
    together = tiny_clap.embed_audio(clips)
    alone = np.concatenate([tiny_clap.embed_audio([c]) for c in clips])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(tiny_clap.embed_texts(TEXTS),
                               np.concatenate([tiny_clap.embed_texts([t]) for t in TEXTS]), atol=1e-5)


def test_vectors_are_deterministic_across_loads_and_differ_by_input(tiny_clap_dir: Path,
                                                                    tiny_clap: ClapEmbedder) -> None:
    again = ClapEmbedder.from_pretrained(tiny_clap_dir, space="clap", device="cpu")
    clips = [_tone(220, WINDOW), _noise(3 * WINDOW)]
    np.testing.assert_array_equal(again.embed_audio(clips), tiny_clap.embed_audio(clips))
    np.testing.assert_array_equal(again.embed_texts(TEXTS), tiny_clap.embed_texts(TEXTS))
    assert np.linalg.matrix_rank(tiny_clap.embed_texts(TEXTS)) == len(TEXTS)


def test_empty_inputs_give_empty_arrays(tiny_clap: ClapEmbedder) -> None:
    assert tiny_clap.embed_texts([]).shape == (0, tiny_clap.dim)
    assert tiny_clap.embed_audio([]).shape == (0, tiny_clap.dim)


@pytest.mark.parametrize(("clip", "message"), [
    (np.zeros(0, np.float32), "shape"),
    (np.zeros((2, 100), np.float32), "mono"),
    (np.zeros(100, np.int16), "float samples"),
    (np.full(100, np.nan, np.float32), "NaN"),
])
def test_bad_clips_are_value_errors(tiny_clap: ClapEmbedder, clip: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_clap.embed_audio([_tone(220, 100), clip])


def test_a_clap_asked_for_images_raises_the_modality_error(tiny_clap: ClapEmbedder) -> None:
    with pytest.raises(ModalityNotSupported, match="embeds audio and text, not image") as info:
        tiny_clap.embed_images([Image.new("RGB", (32, 32))])
    assert isinstance(info.value, ConfigError) and not info.value.retriable


def test_load_embedder_picks_the_class_from_the_model_type(tiny_clap_dir: Path, tiny_clip_dir: Path) -> None:
    clap = load_embedder(ModelSettings(name=str(tiny_clap_dir), space="clap", device="cpu"))
    clip = load_embedder(ModelSettings(name=str(tiny_clip_dir), device="cpu"))
    assert isinstance(clap, ClapEmbedder) and isinstance(clip, HFEmbedder)
    assert (clap.model_id, clap.space, clip.space) == (str(tiny_clap_dir), "clap", "clip")


def test_checkpoint_without_processor_config_loads(tmp_path: Path, tiny_clap: ClapEmbedder) -> None:
    path = save_tiny_random_model("clap", tmp_path / "bare", processor=False)
    assert not (path / "processor_config.json").exists()
    emb = ClapEmbedder.from_pretrained(path, space="clap", device="cpu")
    np.testing.assert_array_equal(emb.embed_texts(TEXTS), tiny_clap.embed_texts(TEXTS))
    np.testing.assert_array_equal(emb.embed_audio([_noise(WINDOW)]), tiny_clap.embed_audio([_noise(WINDOW)]))


def test_tiny_clap_is_seeded(tmp_path: Path, tiny_clap: ClapEmbedder) -> None:
    other = ClapEmbedder.from_pretrained(save_tiny_random_model("clap", tmp_path / "other", seed=1), space="clap",
                                         device="cpu")
    assert not np.allclose(other.embed_audio([_noise(WINDOW)]), tiny_clap.embed_audio([_noise(WINDOW)]))


def test_a_clip_checkpoint_is_refused_with_advice(tiny_clip_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="not an audio-text dual encoder"):
        ClapEmbedder.from_pretrained(tiny_clip_dir, space="clap", device="cpu")
