"""The harder shapes world: scenes of one or two things, each with a size and a style, on textured grounds.

world.py draws one filled shape of one colour; a small model learns that almost perfectly. A scene adds what
such a model gets wrong often enough for quality to be seen to move (and re-ranking to matter):

- size: ``small`` or ``large``; style: ``filled`` or ``outlined``;
- one or two things; with two, where the first is relative to the second (``left of``, ``right of``,
  ``above``, ``below``): "a small red circle left of a large outlined blue star";
- background texture (flat, stripes, checks, dots), never named in a caption: a distractor.

A caption is a :class:`Claim`: what it says of one or two things (each attribute possibly unsaid) and,
with two, maybe their relation. A claim is true of a scene when its things can be matched to different
things of the scene (and the relation holds between them), so "a red circle" is true of any scene that has
a red circle in it. That truth is the relevance of the labelled sets (services/evaluation/demo.py) and the
targets of training.

>>> rng = random.Random(3)
>>> scene = Scene((Thing("red", "circle", "small", False), Thing("blue", "star", "large", True)), "left of")
>>> canonical_caption(scene)
'a photo of a small filled red circle left of a large outlined blue star'
>>> [parse(t).true_of(scene) for t in ("a red circle", "a blue star right of a red circle", "a red star")]
[True, True, False]
>>> parse("a small red circle above a blue star").true_of(scene)
False
>>> draw_scene(rng, scene).size
(64, 64)
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

from services.embedding.shapes.world import COLORS, IMAGE_SIZE, SHAPES, Split, _article, _jitter, _polygon, split_rng

SIZES: tuple[str, ...] = ("small", "large")
STYLES: tuple[str, ...] = ("filled", "outlined")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
TEXTURES: tuple[str, ...] = ("flat", "stripes", "checks", "dots")
_INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
_SUPERSAMPLE = 2
TWO_THINGS = 0.5  # share of scenes with two things

Texture = Literal["flat", "stripes", "checks", "dots"]


@dataclass(frozen=True)
class Thing:
    color: str
    shape: str
    size: str
    outline: bool

    @property
    def style(self) -> str:
        return "outlined" if self.outline else "filled"

    def words(self) -> str:
        """Every attribute, in caption order: ``small filled red circle``."""
        return f"{self.size} {self.style} {self.color} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """One or two things; with two, ``relation`` says where the first is relative to the second."""

    things: tuple[Thing, ...]
    relation: str | None = None
    texture: str = "flat"

    def relation_of(self, i: int, j: int) -> str | None:
        if len(self.things) < 2 or i == j:
            return None
        return self.relation if (i, j) == (0, 1) else _INVERSE[self.relation] if self.relation else None

    @property
    def key(self) -> str:
        """The scene's class: every attribute of every thing and the relation (texture left out)."""
        return canonical_caption(self).removeprefix("a photo of ")


@dataclass(frozen=True)
class Want:
    """What a caption says of one thing; None = not said."""

    color: str | None = None
    shape: str | None = None
    size: str | None = None
    style: str | None = None

    def fits(self, thing: Thing) -> bool:
        return (self.color in (None, thing.color) and self.shape in (None, thing.shape)
                and self.size in (None, thing.size) and self.style in (None, thing.style))


@dataclass(frozen=True)
class Claim:
    """What a caption says: one or two things, and maybe where the first is relative to the second."""

    wants: tuple[Want, ...]
    relation: str | None = None

    def true_of(self, scene: Scene) -> bool:
        n = len(scene.things)
        if len(self.wants) == 1:
            return any(self.wants[0].fits(t) for t in scene.things)
        first, second = self.wants
        return any(
            i != j and first.fits(scene.things[i]) and second.fits(scene.things[j])
            and (self.relation is None or scene.relation_of(i, j) == self.relation)
            for i in range(n) for j in range(n)
        )


# --- captions ---------------------------------------------------------------------------------------------

def _phrase(want: Want) -> str:
    words = [w for w in (want.size, want.style, want.color, want.shape) if w]
    if want.shape is None:
        words.append("thing")
    text = " ".join(words)
    return _article(text)


def caption_of(claim: Claim, prefix: str = "") -> str:
    """The words of a claim: ``a small red circle left of an outlined star``."""
    if len(claim.wants) == 1:
        body = _phrase(claim.wants[0])
    elif claim.relation is None:
        body = f"{_phrase(claim.wants[0])} and {_phrase(claim.wants[1])}"
    else:
        body = f"{_phrase(claim.wants[0])} {claim.relation} {_phrase(claim.wants[1])}"
    return f"{prefix}{body}"


def full_want(thing: Thing) -> Want:
    return Want(thing.color, thing.shape, thing.size, thing.style)


def full_claim(scene: Scene) -> Claim:
    return Claim(tuple(full_want(t) for t in scene.things), scene.relation)


def canonical_caption(scene: Scene) -> str:
    """The text query of a scene's class: every attribute said, ``a photo of ...``."""
    return caption_of(full_claim(scene), "a photo of ")


_PREFIXES = ("", "a photo of ", "a picture of ", "an image of ")


def _partial_want(rng: random.Random, thing: Thing) -> Want:
    """A thing with some attributes said: colour and shape most often, never nothing."""
    kind = rng.random()
    if kind < 0.3:
        return Want(thing.color, thing.shape)
    if kind < 0.45:
        return Want(thing.color, thing.shape, size=thing.size)
    if kind < 0.6:
        return Want(thing.color, thing.shape, style=thing.style)
    if kind < 0.7:
        return Want(color=thing.color)
    if kind < 0.8:
        return Want(shape=thing.shape)
    if kind < 0.9:
        return Want(shape=thing.shape, size=thing.size)
    return Want(shape=thing.shape, style=thing.style)


def random_claim(rng: random.Random, scene: Scene) -> Claim:
    """A true claim about ``scene``: the whole scene, part of it, or one of its things."""
    things = scene.things
    kind = rng.random()
    if kind < 0.35:
        return full_claim(scene) if len(things) == 1 or rng.random() < 0.7 else Claim(
            (full_want(things[1]), full_want(things[0])), scene.relation_of(1, 0))
    if len(things) == 1 or kind < 0.6:
        return Claim((_partial_want(rng, rng.choice(things)),))
    i, j = (0, 1) if rng.random() < 0.5 else (1, 0)
    wants = (_partial_want(rng, things[i]), _partial_want(rng, things[j]))
    return Claim(wants, scene.relation_of(i, j) if rng.random() < 0.75 else None)


def random_caption(rng: random.Random, scene: Scene) -> tuple[str, Claim]:
    claim = random_claim(rng, scene)
    return caption_of(claim, rng.choice(_PREFIXES)), claim


_WORDS = {**dict.fromkeys(COLORS, "color"), **dict.fromkeys(SHAPES, "shape"), **dict.fromkeys(SIZES, "size"),
          **dict.fromkeys(STYLES, "style")}


def parse(text: str) -> Claim:
    """The claim of a caption this module writes (or a query in the same words); unknown words are ignored.

    >>> parse("a photo of a small red circle left of an outlined star")
    Claim(wants=(Want(color='red', shape='circle', size='small', style=None), \
Want(color=None, shape='star', size=None, style='outlined')), relation='left of')
    """
    lowered = text.lower()
    relation = next((r for r in RELATIONS if f" {r} " in f" {lowered} "), None)
    parts = re.split(r"\b(?:left of|right of|above|below|and)\b", lowered)
    wants = []
    for part in parts:
        attrs = {_WORDS[w]: w for w in re.findall(r"[a-z]+", part) if w in _WORDS}
        if attrs:
            wants.append(Want(**attrs))
    if not wants:
        raise ValueError(f"{text!r} names no colour, shape, size or style")
    return Claim(tuple(wants[:2]), relation if len(wants) >= 2 else None)


def vocabulary() -> list[str]:
    """Every word a scene caption can use (the tokenizer's corpus)."""
    words = [*COLORS, *SHAPES, *SIZES, *STYLES, *RELATIONS, "and", "thing", *_PREFIXES]
    return [w for w in words if w] + ["a", "an"]


# --- drawing ----------------------------------------------------------------------------------------------

def _texture(rng: random.Random, size: int, texture: str) -> Image.Image:
    """A neutral ground (never a thing colour): flat or a gradient, with low-contrast stripes, checks or dots."""
    low = rng.randint(20, 200)
    high = min(255, low + rng.randint(0, 60))
    plane = np.tile(np.linspace(low, high, size, dtype=np.float32), (size, 1))
    if rng.random() < 0.5:
        plane = plane.T
    period = rng.randint(6, 14) * _SUPERSAMPLE
    contrast = rng.choice((-1, 1)) * rng.uniform(14, 30)
    yy, xx = np.mgrid[0:size, 0:size]
    if texture == "stripes":
        axis = xx if rng.random() < 0.5 else yy
        plane = plane + contrast * ((axis // (period // 2)) % 2)
    elif texture == "checks":
        plane = plane + contrast * (((xx // period) + (yy // period)) % 2)
    elif texture == "dots":
        dot = ((xx % period) - period / 2) ** 2 + ((yy % period) - period / 2) ** 2 < (period / 5) ** 2
        plane = plane + contrast * dot
    tint = np.array([rng.randint(-10, 10) for _ in range(3)], dtype=np.float32)
    pixels = np.clip(plane[:, :, None] + tint[None, None, :], 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _radius(rng: random.Random, thing: Thing, big: int, pair: bool) -> float:
    if thing.size == "small":
        return big * rng.uniform(0.08, 0.12)
    return big * (rng.uniform(0.18, 0.23) if pair else rng.uniform(0.25, 0.36))


def _centres(rng: random.Random, scene: Scene, radii: list[float], big: int) -> list[tuple[float, float]]:
    """Where the things go: anywhere for one; for two, clearly apart along the relation's axis."""
    if len(radii) == 1:
        r = radii[0]
        return [(rng.uniform(r, big - r), rng.uniform(r, big - r))]
    # first thing before the second along the axis ("left of": smaller x; "above": smaller y)
    before = scene.relation in ("left of", "above")
    r1, r2 = radii
    half = big / 2
    a = rng.uniform(r1, half - r1 * 0.2) if before else rng.uniform(half + r1 * 0.2, big - r1)
    b = rng.uniform(half + r2 * 0.2, big - r2) if before else rng.uniform(r2, half - r2 * 0.2)
    # the other axis: near each other, so "left of" never also reads as "above"
    mid = rng.uniform(max(r1, r2), big - max(r1, r2))
    a2 = min(big - r1, max(r1, mid + rng.uniform(-0.06, 0.06) * big))
    b2 = min(big - r2, max(r2, mid + rng.uniform(-0.06, 0.06) * big))
    horizontal = scene.relation in ("left of", "right of")
    return [(a, a2), (b, b2)] if horizontal else [(a2, a), (b2, b)]


def _draw_thing(draw: ImageDraw.ImageDraw, rng: random.Random, thing: Thing, *, cx: float, cy: float,
                r: float) -> None:
    fill = _jitter(COLORS[thing.color], rng, 18)
    width = max(3, round(r * 0.28))
    kw: dict[str, object] = {"outline": fill, "width": width} if thing.outline else {"fill": fill}
    angle = rng.uniform(0, 2 * math.pi)
    if thing.shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), **kw)  # type: ignore[arg-type]
        return
    radii = {"square": [r] * 4, "triangle": [r] * 3, "star": [r, 0.45 * r] * 5}.get(thing.shape)
    if radii is None:
        raise ValueError(f"unknown shape {thing.shape!r}; known: {', '.join(SHAPES)}")
    points = _polygon(cx, cy, radii, angle)
    if thing.outline:
        draw.line([*points, points[0], points[1]], fill=fill, width=width, joint="curve")
    else:
        draw.polygon(points, fill=fill)


def draw_scene(rng: random.Random, scene: Scene, size: int = IMAGE_SIZE) -> Image.Image:
    big = size * _SUPERSAMPLE
    canvas = _texture(rng, big, scene.texture)
    radii = [_radius(rng, t, big, len(scene.things) > 1) for t in scene.things]
    draw = ImageDraw.Draw(canvas)
    for thing, (cx, cy), r in zip(scene.things, _centres(rng, scene, radii, big), radii, strict=True):
        _draw_thing(draw, rng, thing, cx=cx, cy=cy, r=r)
    small = np.asarray(canvas.resize((size, size), Image.Resampling.LANCZOS), dtype=np.float32)
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0.0, 5.0, small.shape)
    return Image.fromarray(np.clip(small + noise, 0, 255).astype(np.uint8), "RGB")


# --- samples ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SceneSample:
    image: Image.Image
    scene: Scene
    split: Split
    caption: str

    @property
    def color(self) -> str:
        return self.scene.things[0].color

    @property
    def shape(self) -> str:
        return self.scene.things[0].shape


def random_thing(rng: random.Random, color: str | None = None, shape: str | None = None) -> Thing:
    return Thing(color or rng.choice(list(COLORS)), shape or rng.choice(SHAPES), rng.choice(SIZES),
                 rng.random() < 0.5)


def random_scene(rng: random.Random, color: str | None = None, shape: str | None = None,
                 things: int | None = None) -> Scene:
    """A scene whose first thing is ``color`` ``shape`` when given; one or two things."""
    first = random_thing(rng, color, shape)
    texture = rng.choice(TEXTURES)
    count = things or (2 if rng.random() < TWO_THINGS else 1)
    if count == 1:
        return Scene((first,), None, texture)
    second = random_thing(rng)
    while (second.color, second.shape) == (first.color, first.shape):
        second = random_thing(rng)
    return Scene((first, second), rng.choice(RELATIONS), texture)


def scene_sample(rng: random.Random, split: Split, scene: Scene) -> SceneSample:
    text, _ = random_caption(rng, scene)
    return SceneSample(draw_scene(rng, scene), scene, split, text)


def generate(n: int, *, seed: int, split: Split) -> list[SceneSample]:
    rng = split_rng(seed + 1_000_003, split)  # never the stream of world.generate with the same seed
    return [scene_sample(rng, split, random_scene(rng)) for _ in range(n)]


def generate_balanced(per_class: int, *, seed: int, split: Split) -> list[SceneSample]:
    """``per_class`` scenes whose first thing is each (colour, shape), in class order; the rest random."""
    rng = split_rng(seed + 1_000_003, split)
    return [scene_sample(rng, split, random_scene(rng, color, shape))
            for color in COLORS for shape in SHAPES for _ in range(per_class)]


def scene_classes(n: int, *, seed: int, split: Split) -> list[Scene]:
    """``n`` different scene classes (half with one thing, half with two), in a seeded order."""
    rng = split_rng(seed + 2_000_003, split)
    seen: dict[str, Scene] = {}
    while len(seen) < n:
        scene = random_scene(rng, things=1 + len(seen) % 2)
        seen.setdefault(scene.key, scene)
    return list(seen.values())


def generate_classes(n_classes: int, per_class: int, *, seed: int, split: Split) -> list[SceneSample]:
    """``per_class`` pictures of each of ``n_classes`` scene classes: the same things and relation, each
    time drawn anew (place, size within its range, rotation, ground, texture). Class order."""
    rng = split_rng(seed + 3_000_003, split)
    out = []
    for scene in scene_classes(n_classes, seed=seed, split=split):
        for _ in range(per_class):
            drawn = Scene(scene.things, scene.relation, rng.choice(TEXTURES))
            out.append(scene_sample(rng, split, drawn))
    return out
