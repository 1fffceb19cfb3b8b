"""Train the shipped "shapes" CLIP: ``python -m services.embedding.shapes.train [--out <dir>]``.

A small CLIPModel learns coloured shapes from generated images and captions with a contrastive loss, on the
CPU, seeded and with deterministic algorithms, so the same torch on the same machine gives the same
weights. The result is saved with ``save_pretrained`` (model, tokenizer, processor) and evaluated through
the same loading path the services use; the Recall@1 figures are printed and kept in ``training.json``.

Captions may name the colour, the shape or both; an image counts as a match of every caption that is
true of it, so "green" is trained towards every green thing (what composed queries rely on).
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
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

from services.embedding import vocab
from services.embedding.hf import AutoImageProcessor, CLIPProcessor
from services.embedding.model import SHAPES_MODEL_DIR, HFEmbedder, pooled_features
from services.embedding.shapes import quality, world
from services.embedding.training import deterministic, train_steps

_CLIP_MEAN, _CLIP_STD = [0.4815, 0.4578, 0.4082], [0.2686, 0.2613, 0.2758]


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    train_images: int = 8000  # x8 with flips and right-angle turns
    steps: int = 3000
    batch_size: int = 128
    lr: float = 4e-3  # high for a transformer, but these are tiny and warmed up; 2e-3 learned shape slower
    warmup_steps: int = 200
    weight_decay: float = 0.05
    threads: int = 2  # fixed, because float reductions (and so the weights) depend on the thread count
    # 64 px in 16 px patches: 16 tokens keep a step cheap (more steps beat more tokens here: 32 px in 4 px
    # patches, 64 tokens, learned shapes more slowly per second of CPU).
    image_size: int = 64
    patch_size: int = 16
    width: int = 64
    layers: int = 2
    heads: int = 4
    projection_dim: int = 64
    max_text: int = 16
    eval_per_class: int = 10
    eval_seed: int = 1


@dataclass(frozen=True)
class Captions:
    """Every caption the generator can write, tokenized once, with the attributes each one names."""

    texts: list[str]
    colors: list[str | None]
    shapes: list[str | None]
    index: dict[str, int]


def all_captions() -> Captions:
    named: dict[str, tuple[str | None, str | None]] = {}
    for c in world.COLORS:
        for s in world.SHAPES:
            named.update({world.caption(t, c, s): (c, s) for t in world.FULL_TEMPLATES})
        named.update({world.caption(t, c, None): (c, None) for t in world.COLOR_TEMPLATES})
    for s in world.SHAPES:
        named.update({world.caption(t, None, s): (None, s) for t in world.SHAPE_TEMPLATES})
    texts = sorted(named)
    return Captions(texts, [named[t][0] for t in texts], [named[t][1] for t in texts],
                    {t: i for i, t in enumerate(texts)})


def build_model(cfg: TrainConfig, tokenizer: CLIPTokenizer) -> CLIPModel:
    tower = {"hidden_size": cfg.width, "intermediate_size": 2 * cfg.width, "num_hidden_layers": cfg.layers,
             "num_attention_heads": cfg.heads}
    text = {**tower, "vocab_size": len(tokenizer), "max_position_embeddings": cfg.max_text,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id}
    vision = {**tower, "image_size": cfg.image_size, "patch_size": cfg.patch_size}
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=cfg.projection_dim)
    return CLIPModel(config)


def build_processor(cfg: TrainConfig, tokenizer: CLIPTokenizer, workdir: Path) -> Any:
    # Loaded from a written config so transformers picks its own class for this version and backend.
    size = cfg.image_size
    config = {"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": size},
              "crop_size": {"height": size, "width": size}, "do_center_crop": True, "resample": 3,
              "image_mean": _CLIP_MEAN, "image_std": _CLIP_STD}
    (workdir / "preprocessor_config.json").write_text(json.dumps(config, indent=2))
    image_processor = AutoImageProcessor.from_pretrained(str(workdir))
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


class Batches:
    """Training batches: pre-processed images, a fresh random caption per image and step, random flips."""

    def __init__(self, cfg: TrainConfig, processor: Any, captions: Captions) -> None:
        samples = world.generate(cfg.train_images, seed=cfg.seed, split="train")
        self.pixels: torch.Tensor = processor(images=[s.image for s in samples],
                                              return_tensors="pt")["pixel_values"]
        self.colors = [s.color for s in samples]
        self.shapes = [s.shape for s in samples]
        # Padded to the longest caption, not max_text: the padding would only cost time (it is masked).
        tokens = processor.tokenizer(captions.texts, padding="longest", max_length=cfg.max_text,
                                     truncation=True, return_tensors="pt")
        self.ids: torch.Tensor = tokens["input_ids"]
        self.mask: torch.Tensor = tokens["attention_mask"]
        self.captions = captions
        self.size = cfg.batch_size
        self.rng = random.Random(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """pixels, input ids, attention mask, and the (image, caption) match matrix of one batch."""
        rows = self.rng.sample(range(len(self.colors)), self.size)
        # Each caption once: the text tower runs on fewer rows, and a caption drawn for several images
        # is one column whose targets are all the images it is true of.
        picks = sorted({self.captions.index[world.random_caption(self.rng, self.colors[r], self.shapes[r])[0]]
                        for r in rows})
        match = torch.tensor([
            [world.describes(self.captions.colors[p], self.captions.shapes[p], self.colors[r], self.shapes[r])
             for p in picks]
            for r in rows
        ], dtype=torch.float32)
        return self._augment(self.pixels[rows]), self.ids[picks], self.mask[picks], match

    def _augment(self, pixels: torch.Tensor) -> torch.Tensor:
        # Shapes keep their class under the 8 flips/right-angle turns: free variety for a small dataset.
        turns = torch.randint(0, 4, (len(pixels),), generator=self.gen)
        flips = torch.rand(len(pixels), generator=self.gen) < 0.5
        for k in range(4):
            for flip in (False, True):
                chosen = (turns == k) & (flips == flip)
                view = pixels[chosen].rot90(k, dims=(-2, -1))
                pixels[chosen] = view.flip(-1) if flip else view
        return pixels


def contrastive_loss(model: CLIPModel, pixels: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                     match: torch.Tensor) -> torch.Tensor:
    """Symmetric CLIP loss with several positives per row: every caption true of an image is a target."""
    img = F.normalize(pooled_features(model.get_image_features(pixel_values=pixels)), dim=-1)
    txt = F.normalize(pooled_features(model.get_text_features(input_ids=ids, attention_mask=mask)), dim=-1)
    logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T
    to_text = -(match / match.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
    to_image = -(match / match.sum(0, keepdim=True) * logits.log_softmax(0)).sum(0).mean()
    return (to_text + to_image) / 2


def train(cfg: TrainConfig, model: CLIPModel, batches: Batches, log_every: int = 100) -> None:
    train_steps(model, lambda: contrastive_loss(model, *batches.next()), lr=cfg.lr, weight_decay=cfg.weight_decay,
                warmup_steps=cfg.warmup_steps, steps=cfg.steps, log_every=log_every)


def run(cfg: TrainConfig, out: Path) -> dict[str, Any]:
    """Train, save into ``out`` and evaluate the saved model on held-out images."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with deterministic(cfg.seed, cfg.threads):
        captions = all_captions()
        tokenizer = vocab.clip_tokenizer(captions.texts + list(world.COLORS) + list(world.SHAPES),
                                         max_length=cfg.max_text)
        processor = build_processor(cfg, tokenizer, out)
        model = build_model(cfg, tokenizer)
        train(cfg, model, Batches(cfg, processor, captions))
    model.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    for saved in out.iterdir():
        saved.chmod(0o644)  # save_pretrained leaves the weights owner-only; package data must be readable
    seconds = time.monotonic() - started
    held_out = world.generate_balanced(cfg.eval_per_class, seed=cfg.eval_seed, split="val")
    report = quality.evaluate(HFEmbedder.from_pretrained(out, space="clip", device="cpu"), held_out)
    summary = {"config": asdict(cfg), "held_out": report.as_dict()}
    (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return {**summary, "train_seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=SHAPES_MODEL_DIR, help="directory to save the model into")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps, help="optimizer steps")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed, help="seed of data and weights")
    args = parser.parse_args(argv)
    result = run(TrainConfig(steps=args.steps, seed=args.seed), args.out)
    r = result["held_out"]
    print(f"trained in {result['train_seconds']} s; held-out Recall@1 image->text {r['image_to_text_r1']:.3f}, "
          f"text->image {r['text_to_image_r1']:.3f}; image->image {r['image_to_image_r1']:.3f}; "
          f"composed {r['composed_ok']:.3f}")


if __name__ == "__main__":
    main()
