"""Train the shipped "sounds" CLAP: ``python -m services.embedding.sounds.train [--out <dir>]``.

A small ClapModel (a RoBERTa-style text tower and an HTSAT audio tower, no fusion) learns generated sounds
and captions with a contrastive loss, on the CPU, seeded and with deterministic algorithms, so the same
torch on the same machine gives the same weights. The result is saved with ``save_pretrained`` (model,
tokenizer, feature extractor) and evaluated through the loading path the services use; the Recall@1
figures are printed and kept in ``training.json``.

Captions may name the whole class, part of it ("three beeps", "a siren") or only a generic attribute
("a loud sound"); a clip counts as a match of every caption that is true of it.

The audio geometry, which HTSAT and the feature extractor must agree on: a 2 s window at 16 kHz gives
1 + 32000 // 256 = 126 frames of 32 mel bands. HTSAT takes ``spec_size * freq_ratio`` frames (128, the
126 are stretched to it) with ``freq_ratio = spec_size // num_mel_bins`` (2) and folds them into a
``spec_size``-square image (64 x 64), cut into 8 x 8 patches (an 8 x 8 grid: 8 mel bands by 128 ms each);
each stage halves the grid, and every grid must be at least ``window_size`` (8, then 4, with windows of 4).
(4 x 4 patches, a 16 x 16 grid, made a training step about six times slower on 2 CPU cores.)
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import ClapConfig, ClapModel

from services.embedding import vocab
from services.embedding.clap import ClapEmbedder
from services.embedding.hf import ClapFeatureExtractor, ClapProcessor
from services.embedding.loading import pooled_features
from services.embedding.model import SOUNDS_MODEL_DIR
from services.embedding.sounds import quality, world
from services.embedding.training import deterministic, train_steps

_FEATURE_CHUNK = 512  # clips per feature-extractor call while preparing the training set


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    train_clips: int = 6000
    steps: int = 2000
    batch_size: int = 128
    lr: float = 2e-3
    warmup_steps: int = 150
    weight_decay: float = 0.05
    threads: int = 2  # fixed, because float reductions (and so the weights) depend on the thread count
    # Features (see the module's docstring): windows of window_s seconds, mel_bins bands every hop samples.
    window_s: int = 2  # the feature extractor's max_length_s, an int there
    mel_bins: int = 32
    hop: int = 256
    fft: int = 512
    # HTSAT audio tower
    spec_size: int = 64
    patch: int = 8
    window: int = 4
    patch_width: int = 32  # the first stage's width; each later stage doubles it
    depths: tuple[int, ...] = (2, 2)
    audio_heads: tuple[int, ...] = (2, 4)
    # Text tower and the shared space
    text_width: int = 64
    text_layers: int = 2
    text_heads: int = 4
    projection_dim: int = 64
    max_text: int = 16
    eval_per_class: int = 10
    eval_seed: int = 1


@dataclass(frozen=True)
class Captions:
    """Every caption the generator can write, tokenized once, with the attributes each one names."""

    texts: list[str]
    named: list[dict[str, str]]
    index: dict[str, int]


def all_captions() -> Captions:
    captions = world.all_captions()
    texts = list(captions)
    return Captions(texts, [captions[t] for t in texts], {t: i for i, t in enumerate(texts)})


def corpus(captions: Captions) -> list[str]:
    """The tokenizer's corpus: every caption, and every attribute word on its own."""
    words = [*world.PITCHES, *world.WAVES, *world.WAVE_NOUNS.values(), *world.COUNT_WORDS.values(),
             *world.BEEP_LENGTHS, *world.DIRECTIONS, *world.COLOURS, *world.LOUDNESSES]
    return [*captions.texts, *words]


def check_geometry(cfg: TrainConfig) -> None:
    """ValueError unless HTSAT's input and grids fit the feature extractor's frames (see the docstring)."""
    frames = 1 + cfg.window_s * world.SAMPLING_RATE // cfg.hop
    ratio = cfg.spec_size // cfg.mel_bins
    grid = cfg.spec_size // cfg.patch
    last = grid // 2 ** (len(cfg.depths) - 1)
    problems = [
        (ratio < 1 or ratio * cfg.mel_bins != cfg.spec_size, "spec_size must be a multiple of mel_bins"),
        (frames > cfg.spec_size * ratio, f"{frames} frames exceed the {cfg.spec_size * ratio} HTSAT takes"),
        (cfg.spec_size % cfg.patch or grid % 2 ** (len(cfg.depths) - 1), "patches must halve evenly"),
        (last < cfg.window, f"the last grid ({last}) is smaller than a window ({cfg.window})"),
        (last < ratio or last % ratio, f"the last grid ({last}) must be a multiple of freq_ratio ({ratio})"),
        (len(cfg.audio_heads) != len(cfg.depths), "one head count per stage"),
    ]
    errors = [message for failed, message in problems if failed]
    if errors:
        raise ValueError(f"audio geometry does not fit: {'; '.join(errors)}")


def build_feature_extractor(cfg: TrainConfig) -> Any:
    # "rand_trunc" is the no-fusion path (it never crops: no clip is longer than the window), and "pad" pads
    # with silence: LAION's "repeatpad" would turn one beep into several.
    return ClapFeatureExtractor(
        feature_size=cfg.mel_bins, sampling_rate=world.SAMPLING_RATE, hop_length=cfg.hop,
        max_length_s=cfg.window_s, fft_window_size=cfg.fft, frequency_min=50, frequency_max=8000,
        truncation="rand_trunc", padding="pad", return_attention_mask=False,
    )


def build_model(cfg: TrainConfig, tokenizer: Any) -> ClapModel:
    check_geometry(cfg)
    text = {"vocab_size": len(tokenizer), "hidden_size": cfg.text_width, "intermediate_size": 2 * cfg.text_width,
            "num_hidden_layers": cfg.text_layers, "num_attention_heads": cfg.text_heads,
            # RoBERTa positions start after the padding id
            "max_position_embeddings": cfg.max_text + tokenizer.pad_token_id + 1,
            "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    audio = {"spec_size": cfg.spec_size, "num_mel_bins": cfg.mel_bins, "window_size": cfg.window,
             "patch_size": cfg.patch, "patch_stride": [cfg.patch, cfg.patch],
             "patch_embeds_hidden_size": cfg.patch_width, "depths": list(cfg.depths),
             # the width of the last stage, which the projection reads
             "hidden_size": cfg.patch_width * 2 ** (len(cfg.depths) - 1),
             "num_attention_heads": list(cfg.audio_heads), "mlp_ratio": 2.0, "enable_fusion": False,
             "hidden_dropout_prob": 0.0}
    config = ClapConfig(text_config=text, audio_config=audio, projection_dim=cfg.projection_dim)
    return ClapModel(config)


class Batches:
    """Training batches: pre-computed spectrograms and a fresh random caption per clip and step."""

    def __init__(self, cfg: TrainConfig, processor: Any, captions: Captions) -> None:
        samples = world.generate(cfg.train_clips, seed=cfg.seed, split="train")
        extractor = processor.feature_extractor
        self.features: torch.Tensor = torch.cat([
            extractor([s.audio for s in samples[at : at + _FEATURE_CHUNK]], sampling_rate=world.SAMPLING_RATE,
                      return_tensors="pt")["input_features"].float()
            for at in range(0, len(samples), _FEATURE_CHUNK)
        ])
        self.sounds = [(s.sound, s.loudness) for s in samples]
        self.true_of = [world.attributes(s.sound, s.loudness) for s in samples]
        # Padded to the longest caption, not max_text: the padding would only cost time (it is masked).
        tokens = processor.tokenizer(captions.texts, padding="longest", max_length=cfg.max_text, truncation=True,
                                     return_tensors="pt")
        self.ids: torch.Tensor = tokens["input_ids"]
        self.mask: torch.Tensor = tokens["attention_mask"]
        self.captions = captions
        self.size = cfg.batch_size
        self.rng = random.Random(cfg.seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Spectrograms, input ids, attention mask, and the (clip, caption) match matrix of one batch."""
        rows = self.rng.sample(range(len(self.sounds)), self.size)
        # Each caption once: a caption drawn for several clips is one column, whose targets are all the
        # clips it is true of.
        picks = sorted({self.captions.index[world.random_caption(self.rng, *self.sounds[r])[0]] for r in rows})
        match = torch.tensor([[world.describes(self.captions.named[p], self.true_of[r]) for p in picks]
                              for r in rows], dtype=torch.float32)
        return self.features[rows], self.ids[picks], self.mask[picks], match


def contrastive_loss(model: ClapModel, features: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                     match: torch.Tensor) -> torch.Tensor:
    """Symmetric CLAP loss with several positives per row: every caption true of a clip is a target."""
    audio = F.normalize(pooled_features(model.get_audio_features(input_features=features)), dim=-1)
    text = F.normalize(pooled_features(model.get_text_features(input_ids=ids, attention_mask=mask)), dim=-1)
    per_audio = model.logit_scale_a.exp().clamp(max=100) * audio @ text.T
    per_text = model.logit_scale_t.exp().clamp(max=100) * text @ audio.T
    to_text = -(match / match.sum(1, keepdim=True) * per_audio.log_softmax(1)).sum(1).mean()
    to_audio = -(match.T / match.T.sum(1, keepdim=True) * per_text.log_softmax(1)).sum(1).mean()
    return (to_text + to_audio) / 2


def train(cfg: TrainConfig, model: ClapModel, batches: Batches, log_every: int = 100) -> None:
    train_steps(model, lambda: contrastive_loss(model, *batches.next()), lr=cfg.lr, weight_decay=cfg.weight_decay,
                warmup_steps=cfg.warmup_steps, steps=cfg.steps, log_every=log_every)


def run(cfg: TrainConfig, out: Path) -> dict[str, Any]:
    """Train, save into ``out`` and evaluate the saved model on held-out clips."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with deterministic(cfg.seed, cfg.threads):
        captions = all_captions()
        tokenizer = vocab.clap_tokenizer(corpus(captions), max_length=cfg.max_text)
        processor = ClapProcessor(feature_extractor=build_feature_extractor(cfg), tokenizer=tokenizer)
        model = build_model(cfg, tokenizer)
        train(cfg, model, Batches(cfg, processor, captions))
    model.save_pretrained(str(out))
    # preprocessor_config.json as well: transformers 4 reads the feature extractor from there, 5 from
    # processor_config.json.
    processor.feature_extractor.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    for saved in out.iterdir():
        saved.chmod(0o644)  # save_pretrained leaves the weights owner-only; package data must be readable
    seconds = time.monotonic() - started
    held_out = world.generate_balanced(cfg.eval_per_class, seed=cfg.eval_seed, split="val")
    report = quality.evaluate(ClapEmbedder.from_pretrained(out, space="clap", device="cpu"), held_out)
    summary = {"config": asdict(cfg), "held_out": report.as_dict()}
    (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return {**summary, "train_seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=SOUNDS_MODEL_DIR, help="directory to save the model into")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps, help="optimizer steps")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed, help="seed of data and weights")
    args = parser.parse_args(argv)
    result = run(TrainConfig(steps=args.steps, seed=args.seed), args.out)
    r = result["held_out"]
    print(f"trained in {result['train_seconds']} s; held-out Recall@1 audio->text {r['audio_to_text_r1']:.3f}, "
          f"text->audio {r['text_to_audio_r1']:.3f} (chance {r['chance_r1']:.3f}); audio->audio "
          f"{r['audio_to_audio_r1']:.3f} (same kind {r['audio_to_audio_kind_r1']:.3f}); "
          f"loudness {r['loudness_ok']:.3f}")


if __name__ == "__main__":
    main()
