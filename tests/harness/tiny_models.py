"""Tiny random CLIP, SigLIP, CLAP and BLIP-ITM checkpoints (a few hundred KB) for tests of the real loading path.

They are saved with ``save_pretrained`` like any hub checkpoint (config, safetensors weights, tokenizer,
processor config), so ``HFEmbedder.from_pretrained(path)`` (``ClapEmbedder`` for the CLAP, the re-ranking
``CrossEncoder`` for the BLIP image-text matcher) exercises exactly what a real model goes through. Weights
are random but seeded: the same call gives the same model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import (
    BertTokenizer,
    BlipConfig,
    BlipForImageTextRetrieval,
    ClapConfig,
    ClapModel,
    CLIPConfig,
    CLIPModel,
    SiglipConfig,
    SiglipModel,
)

from services.embedding import vocab
from services.embedding.hf import (
    AutoImageProcessor,
    BlipProcessor,
    ClapFeatureExtractor,
    ClapProcessor,
    CLIPProcessor,
    SiglipProcessor,
)
from services.embedding.shapes import world
from services.embedding.sounds import world as sounds_world

Family = Literal["clip", "siglip", "clap"]

IMAGE_SIZE = 32
_PATCH = 8
_MAX_TEXT = 16
_WIDTH = 32
_CLIP_MEAN, _CLIP_STD = [0.4815, 0.4578, 0.4082], [0.2686, 0.2613, 0.2758]
# The tiny CLAP hears 1 s windows at 8 kHz: 1 + 8000 // 128 = 63 frames of 16 mel bands, which HTSAT
# stretches to 64 and folds into a 32 x 32 image (freq_ratio 2); 4 x 4 patches make an 8 x 8 grid, then 4 x 4.
CLAP_SAMPLING_RATE = 8000
CLAP_WINDOW_S = 1


def _corpus() -> list[str]:
    return [world.canonical_caption(c, s) for c in world.COLORS for s in world.SHAPES]


def _tower(**extra: Any) -> dict[str, Any]:
    return {"hidden_size": _WIDTH, "intermediate_size": 2 * _WIDTH, "num_hidden_layers": 2,
            "num_attention_heads": 2, **extra}


def _image_processor(path: Path, config: dict[str, Any]) -> Any:
    # Written as a config file and loaded back so transformers picks the class of its own version and
    # backend (the torchvision or the PIL one), as it will when the checkpoint is loaded for real.
    (path / "preprocessor_config.json").write_text(json.dumps(config, indent=2))
    return AutoImageProcessor.from_pretrained(str(path))


def _save_clip(path: Path) -> None:
    tok = vocab.clip_tokenizer(_corpus(), max_length=_MAX_TEXT)
    text = _tower(vocab_size=len(tok), max_position_embeddings=_MAX_TEXT, bos_token_id=tok.bos_token_id,
                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config = CLIPConfig(text_config=text, vision_config=_tower(image_size=IMAGE_SIZE, patch_size=_PATCH),
                        projection_dim=16)
    CLIPModel(config).save_pretrained(str(path))
    ip = _image_processor(path, {
        "image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": IMAGE_SIZE},
        "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE}, "do_center_crop": True, "resample": 3,
        "image_mean": _CLIP_MEAN, "image_std": _CLIP_STD,
    })
    CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(str(path))


def _save_siglip(path: Path) -> None:
    tok = vocab.siglip_tokenizer(_corpus(), max_length=_MAX_TEXT)
    text = _tower(vocab_size=len(tok), max_position_embeddings=_MAX_TEXT, pad_token_id=tok.pad_token_id,
                  eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)
    # transformers 5 logs "bos_token_id must be ... got 49406" while saving: its diff against a DEFAULT
    # SigLIP config (whose own ids lie outside its vocabulary), not about these ids.
    config = SiglipConfig(text_config=text, vision_config=_tower(image_size=IMAGE_SIZE, patch_size=_PATCH))
    SiglipModel(config).save_pretrained(str(path))
    ip = _image_processor(path, {
        "image_processor_type": "SiglipImageProcessor", "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        "resample": 3, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
    })
    SiglipProcessor(image_processor=ip, tokenizer=tok).save_pretrained(str(path))


def _save_clap(path: Path) -> None:
    tok = vocab.clap_tokenizer([sounds_world.canonical_caption(s) for s in sounds_world.sounds()],
                               max_length=_MAX_TEXT)
    # RoBERTa positions start after the padding id: max_position_embeddings covers _MAX_TEXT tokens.
    text = _tower(vocab_size=len(tok), max_position_embeddings=_MAX_TEXT + tok.pad_token_id + 1,
                  pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    audio = {"spec_size": 32, "num_mel_bins": 16, "window_size": 4, "patch_size": 4, "patch_stride": [4, 4],
             "patch_embeds_hidden_size": 16, "hidden_size": 32, "depths": [1, 1], "num_attention_heads": [2, 2],
             "enable_fusion": False}
    ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=16)).save_pretrained(str(path))
    # LAION's padding ("repeatpad"); the shipped sounds model pads with silence instead.
    features = ClapFeatureExtractor(
        feature_size=16, sampling_rate=CLAP_SAMPLING_RATE, hop_length=128, max_length_s=CLAP_WINDOW_S,
        fft_window_size=256, frequency_min=0, frequency_max=CLAP_SAMPLING_RATE // 2, truncation="rand_trunc",
        padding="repeatpad",
    )
    features.save_pretrained(str(path))  # preprocessor_config.json too, for loaders without processor_config
    ClapProcessor(feature_extractor=features, tokenizer=tok).save_pretrained(str(path))


def save_tiny_random_model(family: Family, path: str | Path, *, seed: int = 0, processor: bool = True) -> Path:
    """Build a tiny random ``family`` model and save it, tokenizer and processor included, into ``path``.

    ``processor=False`` leaves out processor_config.json, as older checkpoints do; loaders then fall back
    to AutoTokenizer + AutoImageProcessor (AutoFeatureExtractor for the CLAP).
    """
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's RNG
        torch.manual_seed(seed)
        {"clip": _save_clip, "siglip": _save_siglip, "clap": _save_clap}[family](out)
    if not processor:
        (out / "processor_config.json").unlink(missing_ok=True)
    return out


def save_tiny_blip_itm(path: str | Path, *, seed: int = 0) -> Path:
    """A tiny random BLIP image-text matcher (``BlipForImageTextRetrieval`` + ``BlipProcessor``) in ``path``.

    Its tokenizer is a WordPiece BERT one, as BLIP's, over a vocabulary of the shapes captions' words (other
    words are ``[UNK]``); images are 32 x 32 in 8 x 8 patches.
    """
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    words = sorted({w for caption in _corpus() for w in caption.lower().split()})
    # BERT's specials first (pad 0), BLIP's decoder-start token [DEC] last.
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, "[DEC]"])}
    tok = BertTokenizer(vocab=vocab, model_max_length=_MAX_TEXT)
    text = _tower(vocab_size=len(vocab), encoder_hidden_size=_WIDTH, max_position_embeddings=_MAX_TEXT,
                  pad_token_id=vocab["[PAD]"], bos_token_id=vocab["[DEC]"], sep_token_id=vocab["[SEP]"],
                  eos_token_id=vocab["[SEP]"])
    config = BlipConfig(text_config=text, vision_config=_tower(image_size=IMAGE_SIZE, patch_size=_PATCH),
                        image_text_hidden_size=16, projection_dim=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        BlipForImageTextRetrieval(config).save_pretrained(str(out))
    ip = _image_processor(out, {
        "image_processor_type": "BlipImageProcessor", "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        "resample": 3, "do_rescale": True, "do_normalize": True, "do_convert_rgb": True,
        "image_mean": _CLIP_MEAN, "image_std": _CLIP_STD,
    })
    BlipProcessor(image_processor=ip, tokenizer=tok).save_pretrained(str(out))
    return out
