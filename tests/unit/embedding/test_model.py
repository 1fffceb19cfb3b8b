"""HFEmbedder on tiny random CLIP and SigLIP checkpoints: the real from_pretrained path, end to end."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.modeling_outputs import BaseModelOutputWithPooling

from services.config import BUILTIN_MODEL, BUILTIN_SOUNDS_MODEL, ModelSettings
from services.embedding.errors import ModalityNotSupported, ModelLoadError
from services.embedding.model import (
    SHAPES_MODEL_DIR,
    SOUNDS_MODEL_DIR,
    Embedder,
    HFEmbedder,
    builtin_model_dir,
    load_embedder,
    pooled_features,
    resolve_device,
    resolve_dtype,
    set_cpu_threads,
)
from services.errors import ConfigError
from tests.harness.tiny_models import save_tiny_random_model

TEXTS = ["a red circle", "a photo of a blue square", "something shaped like a star", "x"]


def _images() -> list[Image.Image]:
    return [
        Image.new("RGB", (64, 64), "red"),
        Image.new("RGB", (40, 90), "blue"),  # not square: resized and cropped by the processor
        Image.new("L", (20, 20), 128),  # grey scale: converted to RGB
        Image.new("RGBA", (32, 32), (0, 255, 0, 128)),
    ]


def _assert_unit_rows(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.shape == (n, dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_both_families_load_and_embed_unit_vectors(family: str, tiny_clip_dir: Path,
                                                   tiny_siglip_dir: Path) -> None:
    path = tiny_clip_dir if family == "clip" else tiny_siglip_dir
    emb = HFEmbedder.from_pretrained(path, space="clip", device="cpu")
    assert isinstance(emb, Embedder)
    assert (emb.device, emb.space, emb.model_id) == ("cpu", "clip", str(path))
    _assert_unit_rows(emb.embed_texts(TEXTS), len(TEXTS), emb.dim)
    _assert_unit_rows(emb.embed_images(_images()), 4, emb.dim)


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_batching_does_not_change_vectors(family: str, tiny_clip_dir: Path, tiny_siglip_dir: Path) -> None:
    emb = HFEmbedder.from_pretrained(tiny_clip_dir if family == "clip" else tiny_siglip_dir, space="clip",
                                     device="cpu")
    together = emb.embed_texts(TEXTS)
    alone = np.concatenate([emb.embed_texts([t]) for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    images = _images()
    np.testing.assert_allclose(emb.embed_images(images),
                               np.concatenate([emb.embed_images([im]) for im in images]), atol=1e-5)


def test_embeddings_are_deterministic_across_loads(tiny_clip_dir: Path, tiny_clip: HFEmbedder) -> None:
    again = HFEmbedder.from_pretrained(tiny_clip_dir, space="clip", device="cpu")
    np.testing.assert_array_equal(tiny_clip.embed_texts(TEXTS), again.embed_texts(TEXTS))
    np.testing.assert_array_equal(tiny_clip.embed_images(_images()), again.embed_images(_images()))


def test_tiny_models_are_seeded(tmp_path: Path, tiny_clip: HFEmbedder) -> None:
    same = HFEmbedder.from_pretrained(save_tiny_random_model("clip", tmp_path / "same"), space="clip",
                                      device="cpu")
    other = HFEmbedder.from_pretrained(save_tiny_random_model("clip", tmp_path / "other", seed=1),
                                       space="clip", device="cpu")
    np.testing.assert_array_equal(same.embed_texts(TEXTS), tiny_clip.embed_texts(TEXTS))
    assert not np.allclose(other.embed_texts(TEXTS), tiny_clip.embed_texts(TEXTS))


def test_different_inputs_give_different_vectors(tiny_clip: HFEmbedder) -> None:
    vectors = tiny_clip.embed_texts(TEXTS)
    assert np.linalg.matrix_rank(vectors) == len(TEXTS)


def test_empty_inputs_give_empty_arrays(tiny_clip: HFEmbedder) -> None:
    assert tiny_clip.embed_texts([]).shape == (0, tiny_clip.dim)
    assert tiny_clip.embed_images([]).shape == (0, tiny_clip.dim)


def test_siglip_text_is_padded_to_max_length_clip_text_to_longest(tiny_clip: HFEmbedder,
                                                                  tiny_siglip_dir: Path) -> None:
    siglip = HFEmbedder.from_pretrained(tiny_siglip_dir, space="clip", device="cpu")
    assert siglip.preprocessor.texts(["a"])["input_ids"].shape == (1, 16)  # the tiny models' max length
    assert tiny_clip.preprocessor.texts(["a"])["input_ids"].shape == (1, 3)  # <bos> a <eos>
    long = " ".join(["circle"] * 40)
    assert tiny_clip.preprocessor.texts([long])["input_ids"].shape == (1, 16)  # truncated, not an error


def test_checkpoint_without_processor_config_loads(tmp_path: Path, tiny_clip: HFEmbedder) -> None:
    path = save_tiny_random_model("clip", tmp_path / "bare", processor=False)
    assert not (path / "processor_config.json").exists()
    emb = HFEmbedder.from_pretrained(path, space="clip", device="cpu")
    np.testing.assert_array_equal(emb.embed_texts(TEXTS), tiny_clip.embed_texts(TEXTS))


def test_pooled_features_reads_4x_tensors_5x_outputs_and_tuples() -> None:
    vec = torch.ones(2, 3)
    hidden = torch.zeros(2, 4, 3)
    assert pooled_features(vec) is vec
    output = BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=vec)  # type: ignore[arg-type]
    assert pooled_features(output) is vec
    assert pooled_features((torch.zeros(2, 4, 3), vec)) is vec
    with pytest.raises(TypeError):
        pooled_features("not an output")


def test_device_and_dtype_resolution() -> None:
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda:0") == "cuda:0"
    else:
        with pytest.raises(ConfigError, match="XMODAL_SPACES__<NAME>__DEVICE"):
            resolve_device("cuda:1")
    assert resolve_device("cpu") == "cpu"
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "cuda") == torch.bfloat16
    assert resolve_dtype("float16", "cuda:0") == torch.float16
    with pytest.raises(ConfigError, match="XMODAL_SPACES__<NAME>__DTYPE"):
        resolve_dtype("float8", "cpu")


def test_missing_model_is_a_config_error_saying_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="XMODAL_SPACES__<NAME>__NAME") as info:
        load_embedder(ModelSettings(name=str(tmp_path / "no-such-model"), device="cpu"))
    assert not info.value.retriable


def test_a_model_without_feature_methods_is_refused(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=8)
    BertModel(config).save_pretrained(str(tmp_path))  # type: ignore[no-untyped-call]
    with pytest.raises(ModelLoadError, match="not a CLIP-family"):
        HFEmbedder.from_pretrained(tmp_path, space="clip", device="cpu")


def test_builtin_name_resolves_to_the_shipped_directory(shapes_model: HFEmbedder) -> None:
    assert ModelSettings().name == BUILTIN_MODEL
    assert shapes_model.model_id == BUILTIN_MODEL
    assert (SHAPES_MODEL_DIR / "model.safetensors").is_file()
    assert shapes_model.preprocessor.text_kwargs["padding"] is True


def test_a_clip_asked_for_audio_raises_the_modality_error(tiny_clip: HFEmbedder) -> None:
    assert (tiny_clip.modalities, tiny_clip.sampling_rate) == ({"image", "text"}, None)
    with pytest.raises(ModalityNotSupported, match="embeds image and text, not audio") as info:
        tiny_clip.embed_audio([np.zeros(16_000, dtype=np.float32)])
    assert isinstance(info.value, ConfigError) and not info.value.retriable
    with pytest.raises(ModalityNotSupported):
        tiny_clip.embed_audio([])  # a wrong route, whatever the batch


def test_both_builtin_names_resolve_and_others_are_refused() -> None:
    assert builtin_model_dir(BUILTIN_MODEL) == SHAPES_MODEL_DIR
    assert builtin_model_dir(BUILTIN_SOUNDS_MODEL) == SOUNDS_MODEL_DIR
    assert (SOUNDS_MODEL_DIR / "model.safetensors").is_file()
    with pytest.raises(ModelLoadError, match=r"unknown builtin model 'builtin:nope'.*builtin:sounds-clap"):
        load_embedder(ModelSettings(name="builtin:nope", device="cpu"))


def test_set_cpu_threads_sets_torch_for_the_process_and_zero_leaves_it() -> None:
    before = torch.get_num_threads()
    try:
        set_cpu_threads(1)
        seen: list[int] = []
        thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert (torch.get_num_threads(), seen) == (1, [1])  # the query batcher's thread gets it too
        set_cpu_threads(0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
