"""Built-in sample sets for `xmodal publish --sample` and `xmodal demo` (and the tests' catalogues).

Each set is drawn by the generator its shipped model was trained on, from the held-out split, so that model
finds it:

- ``shapes``: single filled shapes (services.embedding.shapes.world), 4 of each of the 24 colour/shape pairs,
  plus one text of each pair;
- ``scenes``: the harder shapes world (services.embedding.shapes.scenes: sizes, outlines, two things and
  their relation), 3 pictures of each of 48 scene classes, plus the text of each class;
- ``sounds``: 3 clips of each of the sounds model's 28 classes, plus one caption text of each.

The ``*_entries`` functions also return what each asset truly shows (a Scene, a sound class), which the
demo's labelled sets (services.evaluation.demo) turn into relevance judgements.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.asset_event import AssetEvent
from services.embedding.shapes import scenes
from services.embedding.shapes.world import COLORS, SHAPES, canonical_caption, generate_balanced

SEED = 2026
SCENE_CLASSES = 48
SCENES_PER_CLASS = 3


@dataclass(frozen=True)
class Entry:
    """One published asset and what it truly is: a Scene (image or text of the shapes sets) or a sound
    class label (audio or text of the sounds set)."""

    event: AssetEvent
    scene: scenes.Scene | None = None
    claim: scenes.Claim | None = None  # what a text asset says (shapes sets)
    sound: str | None = None  # the sound class label (sounds set)


def _png(image: Any) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _event(**fields: Any) -> AssetEvent:
    return AssetEvent.model_validate({"schema_version": 1, "op": "upsert", **fields})


def single(color: str, shape: str) -> scenes.Scene:
    """The scene of one of world.py's pictures: one large filled shape."""
    return scenes.Scene((scenes.Thing(color, shape, "large", False),))


def scene_metadata(scene: scenes.Scene) -> dict[str, Any]:
    """Filterable metadata of a shapes picture: what it shows in words (``description``, e.g. "a small filled
    red square right of a large filled blue star"), its first thing's attributes, and what else is in it."""
    first = scene.things[0]
    meta: dict[str, Any] = {"description": scene.key, "color": first.color, "shape": first.shape,
                            "category": first.shape, "size": first.size, "style": first.style,
                            "things": len(scene.things),
                            "colors": sorted({t.color for t in scene.things}),
                            "shapes": sorted({t.shape for t in scene.things})}
    if scene.relation is not None:
        meta["relation"] = scene.relation
    return meta


def shapes_entries(per_class: int = 4, *, seed: int = SEED, now: datetime | None = None) -> list[Entry]:
    when = now or datetime.now(UTC)
    entries = []
    for i, s in enumerate(generate_balanced(per_class, seed=seed, split="val")):
        entries.append(Entry(_event(
            asset_id=f"shape-{s.color}-{s.shape}-{i:04d}", modality="image", data=_png(s.image), event_time=when,
            metadata={"color": s.color, "shape": s.shape, "category": s.shape, "split": s.split},
        ), scene=single(s.color, s.shape)))
    for color in COLORS:
        for shape in SHAPES:
            entries.append(Entry(_event(
                asset_id=f"text-{color}-{shape}", modality="text", text=canonical_caption(color, shape),
                event_time=when, metadata={"color": color, "shape": shape, "category": shape, "split": "val"},
            ), claim=scenes.Claim((scenes.Want(color, shape),))))
    return entries


def shapes_sample(per_class: int = 4, *, seed: int = SEED, now: datetime | None = None) -> list[AssetEvent]:
    """The demo catalogue's single shapes: per_class images of each of the 24 colour/shape pairs plus one
    text each. Every asset carries metadata color, shape, category (= shape) and split, so filters can use
    them."""
    return [e.event for e in shapes_entries(per_class, seed=seed, now=now)]


def scenes_entries(classes: int = SCENE_CLASSES, per_class: int = SCENES_PER_CLASS, *, seed: int = SEED,
                   now: datetime | None = None) -> list[Entry]:
    when = now or datetime.now(UTC)
    entries = []
    pictures = scenes.generate_classes(classes, per_class, seed=seed, split="val")
    for i, s in enumerate(pictures):
        entries.append(Entry(_event(
            asset_id=f"scene-{i // per_class:03d}-{i % per_class}", modality="image", data=_png(s.image),
            event_time=when, metadata={**scene_metadata(s.scene), "split": s.split, "set": "scenes"},
        ), scene=s.scene))
    for k, scene in enumerate(scenes.scene_classes(classes, seed=seed, split="val")):
        entries.append(Entry(_event(
            asset_id=f"text-scene-{k:03d}", modality="text", text=scenes.canonical_caption(scene),
            event_time=when, metadata={**scene_metadata(scene), "split": "val", "set": "scenes"},
        ), claim=scenes.full_claim(scene)))
    return entries


def scenes_sample(classes: int = SCENE_CLASSES, per_class: int = SCENES_PER_CLASS, *, seed: int = SEED,
                  now: datetime | None = None) -> list[AssetEvent]:
    """The demo catalogue's harder scenes: per_class pictures of each of ``classes`` scene classes plus the
    text of each class. Metadata: description (the scene in words); the first thing's color, shape, size and
    style; things (1 or 2); colors
    and shapes (of all things); relation (with two things); split; set=scenes."""
    return [e.event for e in scenes_entries(classes, per_class, seed=seed, now=now)]


def sounds_entries(per_class: int = 3, *, seed: int = SEED, now: datetime | None = None) -> list[Entry]:
    import soundfile as sf  # type: ignore[import-untyped]

    from services.embedding.sounds import world

    when = now or datetime.now(UTC)
    entries = []
    for i, s in enumerate(world.generate_balanced(per_class, seed=seed, split="val")):
        buf = io.BytesIO()
        sf.write(buf, s.audio, world.SAMPLING_RATE, format="WAV", subtype="PCM_16")
        caption = s.label
        entries.append(Entry(_event(
            asset_id=f"sound-{caption.replace(' ', '-')}-{i:04d}", modality="audio",
            data=base64.b64encode(buf.getvalue()).decode(), event_time=when,
            metadata={**world.attributes(s.sound, s.loudness), "category": s.sound.kind, "caption": caption,
                      "split": s.split},
        ), sound=caption))
    for sound in world.sounds():
        caption = world.canonical_caption(sound)
        entries.append(Entry(_event(
            asset_id=f"text-{caption.replace(' ', '-')}", modality="text", text=caption, event_time=when,
            metadata={"category": sound.kind, "caption": caption, "split": "val"},
        ), sound=caption))
    return entries


def sounds_sample(per_class: int = 3, *, seed: int = SEED, now: datetime | None = None) -> list[AssetEvent]:
    """The demo's sound library: per_class clips (16-bit WAV) of each of the sounds model's 28 classes, plus
    one caption text of each class, from the held-out split of the generator that model was trained on.

    Every asset carries metadata category (= kind: tone, beeps, siren, noise, silence), caption (the class's
    canonical caption), split, and the class's attributes (pitch, wave, count, length, direction, colour,
    loudness).
    """
    return [e.event for e in sounds_entries(per_class, seed=seed, now=now)]
