"""The cross-encoder (BLIP image-text matching) on tiny random weights, through the real from_pretrained path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from services.embedding.errors import ModelLoadError
from services.embedding.rerank import CrossEncoder
from tests.harness.tiny_models import save_tiny_blip_itm, save_tiny_random_model


@pytest.fixture(scope="module")
def tiny_blip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_blip_itm(tmp_path_factory.mktemp("tiny-blip"))


@pytest.fixture(scope="module")
def cross_encoder(tiny_blip_dir: Path) -> CrossEncoder:
    return CrossEncoder.from_pretrained(tiny_blip_dir, device="cpu", model_id="tiny-blip")


def test_loads_from_a_saved_checkpoint(tiny_blip_dir: Path, cross_encoder: CrossEncoder) -> None:
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= {
        p.name for p in tiny_blip_dir.iterdir()}
    assert (cross_encoder.model_id, cross_encoder.device) == ("tiny-blip", "cpu")
    assert type(cross_encoder.model).__name__ == "BlipForImageTextRetrieval"
    assert cross_encoder.max_text_length == 16  # the tiny text tower's positions


def test_scores_one_probability_per_pair(cross_encoder: CrossEncoder) -> None:
    images = [Image.new("RGB", (64, 64), "red"), Image.new("L", (20, 50), 90),  # grey, not square: converted
              Image.new("RGBA", (32, 32), (0, 0, 255, 100)), Image.new("RGB", (32, 32), "green")]
    texts = ["a photo of a red circle", "a blue square", "an unknown zebra word", "a green star " * 20]  # long
    scores = cross_encoder.match(images, texts)
    assert scores.shape == (4,)
    assert scores.dtype == np.float32
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    assert len(set(scores.tolist())) > 1  # the pairs are told apart, even by random weights
    # batching changes nothing: each pair is scored on its own
    alone = np.array([cross_encoder.match([im], [t])[0] for im, t in zip(images, texts, strict=True)])
    np.testing.assert_allclose(scores, alone, atol=1e-5)


def test_no_pairs_and_mismatched_pairs(cross_encoder: CrossEncoder) -> None:
    assert cross_encoder.match([], []).shape == (0,)
    with pytest.raises(ValueError, match="one text per image"):
        cross_encoder.match([Image.new("RGB", (8, 8))], ["a", "b"])


def test_a_dual_encoder_is_refused_with_what_to_set(tmp_path: Path) -> None:
    clip = save_tiny_random_model("clip", tmp_path / "clip")
    with pytest.raises(ModelLoadError, match=r"'clip' checkpoint.*XMODAL_RERANK__MODEL"):
        CrossEncoder.from_pretrained(clip, device="cpu")
    with pytest.raises(ModelLoadError, match="XMODAL_RERANK__MODEL"):
        CrossEncoder.from_pretrained(tmp_path / "nothing-here", device="cpu")
