"""Built-in sample sets for `xmodal publish --sample` and `xmodal demo` (and the tests' catalogues).

The shapes sample is drawn by the generator the shipped shapes model was trained on
(services.embedding.shapes.world), from the held-out split, so that model finds it.
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime

from schemas.asset_event import AssetEvent
from services.embedding.shapes.world import COLORS, SHAPES, canonical_caption, generate_balanced


def shapes_sample(per_class: int = 4, *, seed: int = 2026, now: datetime | None = None) -> list[AssetEvent]:
    """The demo catalogue: per_class images of each of the 24 colour/shape pairs plus one text each.

    Every asset carries metadata color, shape, category (= shape) and split, so filters can use them.
    """
    when = now or datetime.now(UTC)
    events = []
    for i, s in enumerate(generate_balanced(per_class, seed=seed, split="val")):
        buf = io.BytesIO()
        s.image.save(buf, format="PNG")
        events.append(AssetEvent.model_validate({
            "schema_version": 1, "asset_id": f"shape-{s.color}-{s.shape}-{i:04d}", "op": "upsert",
            "modality": "image", "data": base64.b64encode(buf.getvalue()).decode(), "event_time": when,
            "metadata": {"color": s.color, "shape": s.shape, "category": s.shape, "split": s.split},
        }))
    for color in COLORS:
        for shape in SHAPES:
            events.append(AssetEvent.model_validate({
                "schema_version": 1, "asset_id": f"text-{color}-{shape}", "op": "upsert", "modality": "text",
                "text": canonical_caption(color, shape), "event_time": when,
                "metadata": {"color": color, "shape": shape, "category": shape, "split": "val"},
            }))
    return events


def sounds_sample(per_class: int = 3, *, seed: int = 2026, now: datetime | None = None) -> list[AssetEvent]:
    """The demo's sound library: per_class clips (16-bit WAV) of each of the sounds model's 28 classes, plus
    one caption text of each class, from the held-out split of the generator that model was trained on.

    Every asset carries metadata category (= kind: tone, beeps, siren, noise, silence), caption (the class's
    canonical caption), split, and the class's attributes (pitch, wave, count, length, direction, colour,
    loudness).
    """
    import soundfile as sf  # type: ignore[import-untyped]

    from services.embedding.sounds import world

    when = now or datetime.now(UTC)
    events = []
    for i, s in enumerate(world.generate_balanced(per_class, seed=seed, split="val")):
        buf = io.BytesIO()
        sf.write(buf, s.audio, world.SAMPLING_RATE, format="WAV", subtype="PCM_16")
        caption = s.label
        events.append(AssetEvent.model_validate({
            "schema_version": 1, "asset_id": f"sound-{caption.replace(' ', '-')}-{i:04d}", "op": "upsert",
            "modality": "audio", "data": base64.b64encode(buf.getvalue()).decode(), "event_time": when,
            "metadata": {**world.attributes(s.sound, s.loudness), "category": s.sound.kind, "caption": caption,
                         "split": s.split},
        }))
    for sound in world.sounds():
        caption = world.canonical_caption(sound)
        events.append(AssetEvent.model_validate({
            "schema_version": 1, "asset_id": f"text-{caption.replace(' ', '-')}", "op": "upsert",
            "modality": "text", "text": caption, "event_time": when,
            "metadata": {"category": sound.kind, "caption": caption, "split": "val"},
        }))
    return events
