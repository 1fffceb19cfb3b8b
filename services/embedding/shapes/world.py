"""Synthetic "coloured shapes" images and captions: the training and test data of the shipped shapes model.

Everything is generated from a seed, so a dataset is reproducible and a held-out set is just another seed
(the ``split`` takes part in the seed, so ``val`` images never repeat ``train`` ones).

>>> [s.color for s in generate(3, seed=7, split="val")] == [s.color for s in generate(3, seed=7, split="val")]
True
>>> sample = generate(1, seed=7, split="val")[0]
>>> sample.image.size, sample.split
((64, 64), 'val')
>>> describes("green", None, "green", "circle"), describes("green", None, "red", "circle")
(True, False)
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

Split = Literal["train", "val"]

# Hues far enough apart to survive jitter, noise and a 32 px model input.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 165, 60),
    "blue": (40, 80, 225),
    "yellow": (240, 220, 40),
    "orange": (250, 135, 20),
    "purple": (140, 55, 190),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
IMAGE_SIZE = 64
_SUPERSAMPLE = 2  # draw at 2x and downscale: anti-aliased edges, like photos of shapes

# Captions naming both attributes, one attribute, or the other: single-attribute captions teach the model
# that "green" means "any green thing", which is what makes composed queries (image + "green") work.
FULL_TEMPLATES: tuple[str, ...] = (
    "a photo of {ac} {s}",
    "{ac} {s}",
    "a picture of {ac} {s}",
    "{c} {s}",
    "a drawing of {ac} {s}",
    "an image of {ac} {s}",
    "{as} that is {c}",
    "{ac} colored {s}",
)
COLOR_TEMPLATES: tuple[str, ...] = ("{c}", "something {c}", "{ac} thing", "{ac} object", "the color {c}")
SHAPE_TEMPLATES: tuple[str, ...] = ("{as}", "{s}", "a photo of {as}", "{as} shape", "something shaped like {as}")


@dataclass(frozen=True)
class ShapeSample:
    """One generated image with the caption it was drawn for and its labels."""

    image: Image.Image
    color: str
    shape: str
    split: Split
    caption: str


def _article(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def caption(template: str, color: str | None, shape: str | None) -> str:
    """Fill a template; ``{ac}``/``{as}`` are the colour/shape with their article."""
    c, s = color or "", shape or ""
    ac = _article(c) if c else ""
    as_ = _article(s) if s else ""
    return template.format(c=c, s=s, ac=ac, **{"as": as_})


def canonical_caption(color: str, shape: str) -> str:
    """The caption used as the text query of a class, e.g. ``a photo of a red circle``."""
    return caption(FULL_TEMPLATES[0], color, shape)


def describes(text_color: str | None, text_shape: str | None, color: str, shape: str) -> bool:
    """Whether a caption about (text_color, text_shape), either possibly unnamed, is true of an image."""
    return text_color in (None, color) and text_shape in (None, shape)


def random_caption(rng: random.Random, color: str, shape: str) -> tuple[str, str | None, str | None]:
    """A caption of an image of ``color`` ``shape``: the text and the attributes it names."""
    kind = rng.random()
    if kind < 0.6:
        return caption(rng.choice(FULL_TEMPLATES), color, shape), color, shape
    if kind < 0.8:
        return caption(rng.choice(COLOR_TEMPLATES), color, None), color, None
    return caption(rng.choice(SHAPE_TEMPLATES), None, shape), None, shape


def _jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int) -> tuple[int, int, int]:
    r, g, b = (min(255, max(0, v + rng.randint(-amount, amount))) for v in rgb)
    return r, g, b


def _background(rng: random.Random, size: int) -> Image.Image:
    """Neutral, slightly tinted backgrounds (flat or a gradient): never one of the shape colours."""
    low = rng.randint(0, 200)
    high = min(255, low + rng.randint(0, 90))
    tint = np.array([rng.randint(-12, 12) for _ in range(3)], dtype=np.float32)
    ramp = np.linspace(low, high, size, dtype=np.float32)
    plane = np.tile(ramp, (size, 1))
    if rng.random() < 0.5:
        plane = plane.T
    pixels = np.clip(plane[:, :, None] + tint[None, None, :], 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _polygon(cx: float, cy: float, radii: list[float], angle: float) -> list[tuple[float, float]]:
    step = 2 * math.pi / len(radii)
    return [
        (cx + r * math.cos(angle + i * step), cy + r * math.sin(angle + i * step)) for i, r in enumerate(radii)
    ]


def _draw(draw: ImageDraw.ImageDraw, shape: str, *, cx: float, cy: float, r: float, angle: float,
          fill: tuple[int, int, int]) -> None:
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        draw.polygon(_polygon(cx, cy, [r] * 4, angle), fill=fill)
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy, [r] * 3, angle), fill=fill)
    elif shape == "star":
        draw.polygon(_polygon(cx, cy, [r, 0.45 * r] * 5, angle), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def draw_image(rng: random.Random, color: str, shape: str, size: int = IMAGE_SIZE) -> Image.Image:
    """One image: a ``color`` ``shape`` of random size, place and rotation on a random background, plus noise."""
    big = size * _SUPERSAMPLE
    canvas = _background(rng, big)
    r = big * rng.uniform(0.2, 0.4)
    cx, cy = rng.uniform(r, big - r), rng.uniform(r, big - r)
    return draw_on(canvas, rng, color, shape, x=cx / big, y=cy / big, radius=r / big,
                   angle=rng.uniform(0, 2 * math.pi), size=size)


def background(rng: random.Random, size: int = IMAGE_SIZE) -> Image.Image:
    """A background of the kind :func:`draw_image` draws on, at the supersampled size :func:`draw_on` takes."""
    return _background(rng, size * _SUPERSAMPLE)


def draw_on(canvas: Image.Image, rng: random.Random, color: str, shape: str, *, x: float, y: float,
            radius: float, angle: float, size: int = IMAGE_SIZE) -> Image.Image:
    """A ``color`` ``shape`` drawn on a copy of ``canvas`` (from :func:`background`) at (x, y) with ``radius``,
    all as fractions of the side, scaled down to ``size`` with noise: a frame of a moving shape."""
    big = canvas.size[0]
    canvas = canvas.copy()
    _draw(ImageDraw.Draw(canvas), shape, cx=x * big, cy=y * big, r=radius * big, angle=angle,
          fill=_jitter(COLORS[color], rng, 18))
    small = np.asarray(canvas.resize((size, size), Image.Resampling.LANCZOS), dtype=np.float32)
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0.0, 6.0, small.shape)
    return Image.fromarray(np.clip(small + noise, 0, 255).astype(np.uint8), "RGB")


def split_rng(seed: int, split: Split) -> random.Random:
    """The generator of one (seed, split): train and val never share a random stream."""
    return random.Random(zlib.crc32(f"{split}:{seed}".encode()))


def sample(rng: random.Random, split: Split, color: str | None = None, shape: str | None = None) -> ShapeSample:
    """One sample; colour and shape are random unless given."""
    color = color or rng.choice(list(COLORS))
    shape = shape or rng.choice(SHAPES)
    text, _, _ = random_caption(rng, color, shape)
    return ShapeSample(draw_image(rng, color, shape), color, shape, split, text)


def generate(n: int, *, seed: int, split: Split) -> list[ShapeSample]:
    """``n`` samples with colour and shape drawn at random."""
    rng = split_rng(seed, split)
    return [sample(rng, split) for _ in range(n)]


def generate_balanced(per_class: int, *, seed: int, split: Split) -> list[ShapeSample]:
    """``per_class`` samples of every (colour, shape) pair, in class order."""
    rng = split_rng(seed, split)
    return [
        sample(rng, split, color, shape)
        for color in COLORS
        for shape in SHAPES
        for _ in range(per_class)
    ]
