"""Train the shipped shapes CLIPs: ``python -m services.embedding.shapes.train [--size small|large]``.

A CLIPModel learns coloured shapes from generated images and captions with a contrastive loss, on the CPU,
seeded and with deterministic algorithms, so the same torch on the same machine gives the same weights. Two
sizes come from the same script: ``small`` is the retrieval model (builtin:shapes-clip, fast), ``large``
the re-ranking model (builtin:shapes-clip-large: finer patches, wider and deeper). The result is saved with
``save_pretrained`` (model, tokenizer, processor) and evaluated through the same loading path the services
use; the Recall@1 figures are printed and kept in ``training.json``.

The data mixes world.py's single filled shapes with scenes.py's harder scenes (sizes, outlines, two things
and their relation, textured grounds). Captions may say any part of what is in the picture; an image counts
as a match of every caption that is true of it (scenes.Claim.true_of), so "green" is trained towards every
green thing (what composed queries rely on).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

from services.embedding import vocab
from services.embedding.hf import AutoImageProcessor, CLIPProcessor
from services.embedding.model import SHAPES_LARGE_MODEL_DIR, SHAPES_MODEL_DIR, HFEmbedder, pooled_features
from services.embedding.shapes import quality, scenes, world
from services.embedding.training import deterministic, train_steps

_CLIP_MEAN, _CLIP_STD = [0.4815, 0.4578, 0.4082], [0.2686, 0.2613, 0.2758]


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    train_images: int = 8000  # single shapes (world.py); x8 with flips and right-angle turns
    scene_images: int = 16000  # scenes (scenes.py); flipped (left/right, up/down) with their relation
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
    max_text: int = 24
    eval_per_class: int = 10
    eval_seed: int = 1
    eval_scene_classes: int = 96
    eval_scene_per_class: int = 3


#: The two shipped sizes: the small retrieval model and the larger re-ranking one (same family and data).
#: The small one learns single shapes only: trained on the scenes too (16k of them beside the 8k shapes,
#: 3000 steps) it fell to Recall@1 0.58 on single shapes (from 0.96) at 0.69-0.76 on scenes, too small to
#: learn both. So retrieval is fast and good at colour and shape, and the large model, which learns the
#: scenes as well (sizes, outlines, relations), re-ranks its top candidates.
SIZES: dict[str, TrainConfig] = {
    "small": TrainConfig(scene_images=0),
    "large": TrainConfig(patch_size=8, width=128, layers=4, heads=4, projection_dim=128, lr=2e-3),
}
OUT_DIRS = {"small": SHAPES_MODEL_DIR, "large": SHAPES_LARGE_MODEL_DIR}


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


_HFLIP = {"left of": "right of", "right of": "left of"}
_VFLIP = {"above": "below", "below": "above"}


def _flipped(scene: scenes.Scene, h: bool, v: bool) -> scenes.Scene:
    """The scene as a flipped picture shows it: a left/right flip swaps "left of" and "right of"."""
    relation = scene.relation
    if relation is not None and h:
        relation = _HFLIP.get(relation, relation)
    if relation is not None and v:
        relation = _VFLIP.get(relation, relation)
    return scenes.Scene(scene.things, relation, scene.texture)


class Batches:
    """Training batches: pre-processed images, a fresh random caption per image and step, random flips.

    Rows are single shapes (world.py: also turned by right angles, which keep their class) or scenes
    (scenes.py: flipped only, with the relation flipped along). Each caption's targets are the rows it is
    true of (scenes.Claim.true_of), so a batch has several positives per row and column.
    """

    def __init__(self, cfg: TrainConfig, processor: Any) -> None:
        singles = world.generate(cfg.train_images, seed=cfg.seed, split="train")
        pictures = scenes.generate(cfg.scene_images, seed=cfg.seed, split="train")
        images = [s.image for s in singles] + [s.image for s in pictures]
        self.pixels: torch.Tensor = processor(images=images, return_tensors="pt")["pixel_values"]
        self.scenes = [scenes.Scene((scenes.Thing(s.color, s.shape, "large", False),)) for s in singles]
        self.scenes += [s.scene for s in pictures]
        self.singles = len(singles)
        self.tokenizer = processor.tokenizer
        self.max_text = cfg.max_text
        self.size = cfg.batch_size
        self.rng = random.Random(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)

    def _caption(self, row: int, scene: scenes.Scene) -> tuple[str, scenes.Claim]:
        if row < self.singles and self.rng.random() < 0.5:
            thing = scene.things[0]
            text, color, shape = world.random_caption(self.rng, thing.color, thing.shape)
            return text, scenes.Claim((scenes.Want(color, shape),))
        return scenes.random_caption(self.rng, scene)

    def next(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """pixels, input ids, attention mask, and the (image, caption) match matrix of one batch."""
        rows = self.rng.sample(range(len(self.scenes)), self.size)
        pixels, shown = self._augment(rows)
        # Each caption once: the text tower runs on fewer rows, and a caption drawn for several images
        # is one column whose targets are all the images it is true of.
        claims: dict[str, scenes.Claim] = {}
        for row, scene in zip(rows, shown, strict=True):
            text, claim = self._caption(row, scene)
            claims.setdefault(text, claim)
        texts = sorted(claims)
        match = torch.tensor([[claims[t].true_of(scene) for t in texts] for scene in shown], dtype=torch.float32)
        # Padded to the longest caption, not max_text: the padding would only cost time (it is masked).
        tokens = self.tokenizer(texts, padding="longest", max_length=self.max_text, truncation=True,
                                return_tensors="pt")
        return pixels, tokens["input_ids"], tokens["attention_mask"], match

    def _augment(self, rows: list[int]) -> tuple[torch.Tensor, list[scenes.Scene]]:
        pixels = self.pixels[rows]
        single = torch.tensor([r < self.singles for r in rows])
        turns = torch.randint(0, 4, (len(rows),), generator=self.gen) * single
        hflips = torch.rand(len(rows), generator=self.gen) < 0.5
        vflips = (torch.rand(len(rows), generator=self.gen) < 0.5) & ~single
        for k in range(4):
            chosen = turns == k
            if k and chosen.any():
                pixels[chosen] = pixels[chosen].rot90(k, dims=(-2, -1))
        pixels[hflips] = pixels[hflips].flip(-1)
        pixels[vflips] = pixels[vflips].flip(-2)
        shown = [_flipped(self.scenes[r], bool(h), bool(v)) for r, h, v in zip(rows, hflips, vflips, strict=True)]
        return pixels, shown


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
        tokenizer = vocab.clip_tokenizer(all_captions().texts + scenes.vocabulary(), max_length=cfg.max_text)
        processor = build_processor(cfg, tokenizer, out)
        model = build_model(cfg, tokenizer)
        train(cfg, model, Batches(cfg, processor))
    model.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    for saved in out.iterdir():
        saved.chmod(0o644)  # save_pretrained leaves the weights owner-only; package data must be readable
    seconds = time.monotonic() - started
    held_out = world.generate_balanced(cfg.eval_per_class, seed=cfg.eval_seed, split="val")
    held_out_scenes = scenes.generate_classes(cfg.eval_scene_classes, cfg.eval_scene_per_class,
                                              seed=cfg.eval_seed, split="val")
    saved_model = HFEmbedder.from_pretrained(out, space="clip", device="cpu")
    summary = {"config": asdict(cfg), "held_out": quality.evaluate(saved_model, held_out).as_dict(),
               "held_out_scenes": quality.evaluate_scenes(saved_model, held_out_scenes).as_dict()}
    (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return {**summary, "train_seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", choices=sorted(SIZES), default="small",
                        help="small: the retrieval model (builtin:shapes-clip); large: the re-ranking model "
                        "(builtin:shapes-clip-large)")
    parser.add_argument("--out", type=Path, default=None,
                        help="directory to save the model into (default: the shipped model of --size)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the size's)")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed, help="seed of data and weights")
    args = parser.parse_args(argv)
    cfg = SIZES[args.size]
    cfg = replace(cfg, steps=args.steps or cfg.steps, seed=args.seed)
    result = run(cfg, args.out or OUT_DIRS[args.size])
    r, sc = result["held_out"], result["held_out_scenes"]
    print(f"trained in {result['train_seconds']} s; held-out Recall@1 single shapes: image->text "
          f"{r['image_to_text_r1']:.3f}, text->image {r['text_to_image_r1']:.3f}, image->image "
          f"{r['image_to_image_r1']:.3f}, composed {r['composed_ok']:.3f}; scenes: image->text "
          f"{sc['image_to_text_r1']:.3f}, text->image {sc['text_to_image_r1']:.3f}, image->image "
          f"{sc['image_to_image_r1']:.3f}")


if __name__ == "__main__":
    main()
